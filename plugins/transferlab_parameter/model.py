"""Moved to the core's public training API: use :class:`transferlab.training.TransferModel`.

``transferlab_parameter.model.TransferModel`` still works but warns
(:class:`transferlab.deprecation.TransferlabDeprecationWarning`) until its removal in 0.3.
"""

from transferlab.deprecation import deprecated_alias

__all__: list[str] = []

deprecated_alias(globals(), "TransferModel", "transferlab.training.model.TransferModel",
                 replacement="transferlab.training.TransferModel", since="0.1", removal="0.3")
