"""Relational transfer: what is known about how things relate (samples in a representation,
source categories to target ones). For now, transferability scores that rank backbones for
a task before any training (``transferlab rank``)."""
