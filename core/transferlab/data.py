"""Reading inputs: images from paths or arrays, with errors that name the bad file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferlab.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def load_image(item: Any) -> Any:
    """Return an RGB ``PIL.Image`` from a path, a ``HxW``/``HxWxC`` uint8 array or an image."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        if item.ndim not in (2, 3):
            raise DataError(f"image array has shape {item.shape}; expected HxW or HxWxC")
        return Image.fromarray(np.ascontiguousarray(item).astype(np.uint8)).convert("RGB")
    path = Path(item)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image file {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"image file {path} is unreadable or corrupt ({exc}); remove or"
                        " replace it") from None
