"""Build the small flowers photo set shipped for ``make demo`` (task ``flowers_demo``).

Takes a seeded choice of 40 training and 20 test photos per class (5 classes, 300 photos)
from the flower_photos copy in ``../shared/data/flowers`` (shorter side 128 px already) and
writes them, unchanged, with an attribution file, to
``plugins/transferlab_tasks/flowers_demo/``::

    python tools/make_flowers_demo.py --source ../shared/data/flowers

The photos are CC BY 2.0 (TensorFlow's flower_photos archive, whose LICENSE.txt credits each
photographer by Flickr photo id); every file name starts with its Flickr photo id, and
ATTRIBUTION.md lists each photo with its Flickr short link.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

PER_SPLIT = {"train": 40, "test": 20}
OUT = Path(__file__).resolve().parents[1] / "plugins" / "transferlab_tasks" / "flowers_demo"
BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"

HEADER = """# flowers_demo: attribution

300 photos (5 classes; 40 training and 20 test photos per class) chosen with a fixed seed by
`tools/make_flowers_demo.py` from TensorFlow's `flower_photos` archive
(<http://download.tensorflow.org/example_images/flower_photos.tgz>, as redistributed in
Oldpel/flower_photos @140ff6f), unchanged (shorter side 128 px).

**Licence:** the photos are licensed under the Creative Commons Attribution 2.0 licence
(CC BY 2.0, <https://creativecommons.org/licenses/by/2.0/>). The archive's `LICENSE.txt`
credits each photographer by Flickr photo id. Each file name below starts with that photo
id, and the link is the photo's Flickr short URL, which leads to its author and page.

| split | class | file | photo |
|---|---|---|---|
"""


def flickr_short(photo_id: int) -> str:
    """Flickr's short link of a photo id (base-58 encoded)."""
    digits = []
    while photo_id:
        photo_id, rest = divmod(photo_id, 58)
        digits.append(BASE58[rest])
    return "https://flic.kr/p/" + "".join(reversed(digits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data/flowers"))
    args = parser.parse_args()
    if OUT.exists():
        shutil.rmtree(OUT)
    rows = []
    for split, count in PER_SPLIT.items():
        for class_dir in sorted((args.source / split).iterdir()):
            files = sorted(class_dir.glob("*.jpg"))
            chosen = sorted(random.Random(f"{split}/{class_dir.name}").sample(files, count))
            target = OUT / split / class_dir.name
            target.mkdir(parents=True)
            for path in chosen:
                shutil.copyfile(path, target / path.name)
                photo_id = int(path.name.split("_")[0])
                rows.append(f"| {split} | {class_dir.name} | {path.name} |"
                            f" {flickr_short(photo_id)} |")
    (OUT / "ATTRIBUTION.md").write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} photos to {OUT}")


if __name__ == "__main__":
    main()
