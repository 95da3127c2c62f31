"""transferlab: a plugin-based registry and benchmark harness for transfer learning.

Everything is a mapping: a backbone maps inputs to representations, a transfer method turns
that mapping into a predictor for a new task, and the harness scores every combination alike.
"""

from importlib.metadata import PackageNotFoundError, version

from transferlab.hookspecs import hookimpl

try:
    __version__ = version("transferlab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "hookimpl"]
