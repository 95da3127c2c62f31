"""Continual strategies (``naive``, ``ewc``, ``lwf``, ``replay``, ``joint``), registered
through the ``register_strategies`` hook like a third-party plugin's."""
