"""Exceptions whose message is one line that names the problem and the fix."""

from __future__ import annotations

__all__ = [
    "CheckpointError", "DataError", "DuplicateNameError", "IncompatibleError", "ParamError",
    "RegistrationError", "TransferlabError", "UnknownNameError",
]


class TransferlabError(Exception):
    """Base class for user-facing errors; the CLI prints ``str(error)`` as one line."""


class UnknownNameError(TransferlabError, KeyError):
    """A backbone, task, method, objective or executor name that no plugin registered."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0])


class DuplicateNameError(TransferlabError):
    """Two plugins registered the same name."""


class RegistrationError(TransferlabError):
    """A plugin called ``register`` with something the host cannot accept."""


class ParamError(TransferlabError, ValueError):
    """An unknown or ill-typed hyper-parameter."""


class DataError(TransferlabError, ValueError):
    """A dataset that is missing, malformed or inconsistent."""


class IncompatibleError(TransferlabError, ValueError):
    """A method that cannot be applied to this backbone or task."""


class CheckpointError(TransferlabError, ValueError):
    """A checkpoint that is corrupt or does not match the backbone."""
