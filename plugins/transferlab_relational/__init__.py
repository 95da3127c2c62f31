"""Relational transfer: what is known about how things relate (samples in a representation,
source categories to target ones): transferability scores that rank backbones for a task
before any training (``transferlab rank``); ``co-tuning``, which fine-tunes with the
source classifier against the learned source-to-target category relationship; and knowledge
distillation from a teacher backbone (``kd``, ``rkd``, ``spkd``: methods, and their losses
as objectives)."""
