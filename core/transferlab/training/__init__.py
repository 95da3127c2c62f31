"""The training loop every gradient-based method and objective shares.

Modules, one job each: :mod:`~transferlab.training.config` (declared parameters, budget;
torch-free), :mod:`~transferlab.training.data` (validation split, batching),
:mod:`~transferlab.training.schedule` (AdamW, warm-up + cosine),
:mod:`~transferlab.training.stopping` (early stopping), :mod:`~transferlab.training.accelerator`
(device and precision via Accelerate), :mod:`~transferlab.training.loop` (the loop),
:mod:`~transferlab.training.evaluate` (validation and prediction),
:mod:`~transferlab.training.objectives` (objectives from the objective hook).

Importing this package does not import torch; import the modules inside ``fit``.
"""

from transferlab.training.config import TrainConfig, check_budget, training_params

__all__ = ["TrainConfig", "check_budget", "training_params"]
