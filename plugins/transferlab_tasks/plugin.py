"""Registers the built-in tasks; imports nothing heavy (data loads when a task is used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferlab.hookspecs import hookimpl
from transferlab.registry import RegisterCallback


def _digits(name: str) -> Any:
    from transferlab_tasks.digits import DigitsTask

    return DigitsTask(name)


def _flowers_demo(name: str) -> Any:
    from transferlab_tasks.folders import ImageFolderTask

    return ImageFolderTask(name, Path(__file__).with_name("flowers_demo"))


def _csv(name: str) -> Any:
    from transferlab_tasks.folders import CsvTextTask

    return CsvTextTask(name, Path(name.split(":", 1)[1]))


def _imagefolder(name: str) -> Any:
    from transferlab_tasks.folders import ImageFolderTask

    return ImageFolderTask(name, Path(name.split(":", 1)[1]))


def _check_folder(name: str) -> None:
    from transferlab.errors import DataError

    folder = Path(name.split(":", 1)[1])
    if not folder.is_dir():
        raise DataError(f"task {name!r}: data folder {folder} does not exist")


def _from_data_dir(folder: Path, layout: str) -> Any:
    def factory(name: str) -> Any:
        from transferlab_tasks.folders import CsvTextTask, ImageFolderTask

        cls = CsvTextTask if layout == "csv" else ImageFolderTask
        return cls(name, folder)

    return factory


def _corpus(data_dirs: list[Path]) -> Any:
    def factory(name: str) -> Any:
        from transferlab_tasks.corpus import CorpusTask, resolve_corpus

        return CorpusTask(name, resolve_corpus(name, data_dirs))

    return factory


def _check_corpus(data_dirs: list[Path]) -> Any:
    def validate(name: str) -> None:
        from transferlab_tasks.corpus import resolve_corpus

        resolve_corpus(name, data_dirs)

    return validate


@hookimpl
def register_tasks(register: RegisterCallback, data_dirs: list[Path]) -> None:
    register("digits", _digits, modality="image", classes=10, source="scikit-learn load_digits",
             summary="8x8 handwritten digits (1,797 images), fixed 75/25 stratified split")
    register("flowers_demo", _flowers_demo, modality="image", classes=5,
             source="TensorFlow flower_photos, CC BY 2.0 (see flowers_demo/ATTRIBUTION.md)",
             summary="300 real flower photos (5 classes, 40 train / 20 test each, shorter"
             " side 128 px), shipped in the package: the demo's task")
    register("csv:*", _csv, validate=_check_folder, modality="text",
             summary="text classification from DIR/{train,test}[,val].csv (text,label)")
    register("imagefolder:*", _imagefolder, validate=_check_folder, modality="image",
             summary="images from DIR/{train,test}[/val]/<class>/*.{jpg,png}")
    register("corpus:*", _corpus(list(data_dirs)), validate=_check_corpus(list(data_dirs)),
             modality="text", kind="language-modelling",
             summary="language modelling (perplexity) on a text file or a data dir's"
             " corpora/NAME.txt, cut into contiguous 80/10/10% blocks")
    from transferlab_tasks.folders import detect_layout

    for data_dir in data_dirs:
        for folder in sorted(Path(data_dir).iterdir()):
            layout = detect_layout(folder) if folder.is_dir() else None
            if layout is not None:
                register(folder.name, _from_data_dir(folder, layout), source=str(folder),
                         modality="text" if layout == "csv" else "image",
                         summary=f"{layout} task in {folder}")
