"""Moved to the core's public training API: :mod:`transferlab.training.model`."""

from transferlab.training.model import TransferModel

__all__ = ["TransferModel"]
