"""What every command that writes a figure checks before any work: the file's suffix picks
PNG or SVG, and matplotlib (the ``report`` extra) must be installed."""

from __future__ import annotations

from pathlib import Path

from transferlab.errors import IncompatibleError, ParamError

__all__ = ["PLOT_SUFFIXES", "check_plot_path"]

PLOT_SUFFIXES = (".png", ".svg")


def check_plot_path(path: str | Path, figure: str = "the figure") -> Path:
    """Refuse, before any work, a plot file not ending in .png or .svg, or a missing
    matplotlib (``figure`` names what would be drawn, for the message)."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ParamError(f"plot file {path} must end in .png or .svg; the suffix picks the"
                         " format")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise IncompatibleError(f"{figure} needs matplotlib; pip install"
                                " 'transferlab[report]' or leave out --plot") from None
    return path
