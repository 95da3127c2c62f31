"""Early stopping on a validation score, keeping the best weights seen so far.

Only tensors that training can change are copied (trainable parameters and buffers such as
batch-norm statistics), so LoRA or BitFit runs do not copy a frozen backbone each epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class EarlyStopping:
    """Track ``(accuracy, -loss)`` per epoch; stop after ``patience`` epochs without a better
    one (``patience=0`` never stops, but still remembers the best epoch)."""

    patience: int
    best: tuple[float, float] | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    _state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def update(self, epoch: int, accuracy: float, loss: float, model: nn.Module) -> bool:
        """Record one epoch's validation result; return True when training should stop."""
        score = (accuracy, -loss)
        if self.best is None or score > self.best:
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
            self._state = _changeable_state(model)
            return False
        self.bad_epochs += 1
        return 0 < self.patience <= self.bad_epochs

    def restore(self, model: nn.Module) -> bool:
        """Load the best epoch's weights back into ``model``; False when none was recorded."""
        if not self._state:
            return False
        with torch.no_grad():
            current = dict(model.named_parameters())
            current.update(dict(model.named_buffers()))
            for key, value in self._state.items():
                current[key].copy_(value)
        return True


def _changeable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    state = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}
    state.update({k: b.detach().clone() for k, b in model.named_buffers()})
    return state
