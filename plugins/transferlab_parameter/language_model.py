"""``lm-finetune``: fine-tune a causal language model on a language-modelling task's training
text with the ``clm`` objective, then score test perplexity. ``max_steps=0`` scores the
backbone as it is (a pretrained model without fine-tuning, or a random one).

Training and scoring reuse the ``clm`` objective's own pretraining setup, so the text is cut
into tokens the same way for both: the split's lines joined in order, tokenised, and cut into
non-overlapping blocks of ``max_length`` tokens (the remainder shorter than a block is
dropped). Test perplexity is ``exp`` of the mean next-token cross-entropy over every block
(each block predicts ``max_length - 1`` tokens, with no context carried across blocks;
overlapping windows would give lower, more flattering numbers).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.api import Backbone, Budget, Predictor, RunContext, Task, TransferMethod
from transferlab.errors import IncompatibleError
from transferlab.params import Param
from transferlab.pretraining.data import UnlabeledData

if TYPE_CHECKING:
    import numpy as np


def _clm(ctx: RunContext) -> Any:
    if ctx.registries is None:
        raise IncompatibleError("lm-finetune needs the objective registry (run it through the"
                                " harness, which passes it in the run context)")
    return ctx.registries.objectives.create("clm")


def _setup(backbone: Backbone, lines: Sequence[str], objective: Any, seed: int) -> Any:
    data = UnlabeledData("text", {"train": ["\n".join(lines)]}, "task", "")
    return objective.build_pretraining(backbone, data, [(objective, 1.0)], seed)


class LanguageModelPredictor(Predictor):
    """Scores perplexity; it predicts no labels."""

    def __init__(self, backbone: Backbone, objective: Any, batch_size: int, trained: int
                 ) -> None:
        self.backbone, self.objective, self.batch_size = backbone, objective, batch_size
        self.total_params = backbone.num_parameters()
        self.trainable_params = trained

    def predict(self, inputs: Sequence[Any], ctx: RunContext) -> np.ndarray:
        raise IncompatibleError("a language model predicts no labels; score a"
                                " language-modelling task (corpus:...) instead")

    def language_model_metrics(self, task: Task, split: str, ctx: RunContext
                               ) -> dict[str, float]:
        import torch

        from transferlab.training.data import to_device

        setup = _setup(self.backbone, task.split(split).inputs, self.objective, ctx.seed)
        setup.module.to(ctx.device).eval()
        total_loss, tokens = 0.0, 0
        with torch.no_grad(), ctx.progress_bar(setup.train.count, f"perplexity {split}") as tick:
            for start in range(0, setup.train.count, self.batch_size):
                rows = list(range(start, min(setup.train.count, start + self.batch_size)))
                batch = to_device(setup.train.batch(rows, torch.Generator()), ctx.device)
                loss = float(self.objective(setup.forward(batch), batch))
                predicted = len(rows) * (batch["labels"].shape[1] - 1)
                total_loss, tokens = total_loss + loss * predicted, tokens + predicted
                tick(len(rows))
        mean = total_loss / tokens
        return {"perplexity": math.exp(mean), "loss": mean, "tokens": float(tokens)}


class LanguageModelFinetune(TransferMethod):
    """Fine-tune every weight of a causal LM on the task's training text (``clm``)."""

    name = "lm-finetune"
    family = "parameter"
    summary = "causal-LM fine-tuning on a language-modelling task; scores test perplexity"
    modalities = ("text",)
    task_kinds: ClassVar[tuple[str, ...]] = ("language-modelling",)
    needs_module = True
    params = (
        Param("max_steps", int, 200, "optimizer steps (0: score the backbone as it is)",
              min=0),
        Param("lr", float, 5e-4, "peak learning rate (AdamW, warm-up then cosine)", gt=0.0),
        Param("batch_size", int, 16, "blocks of max_length tokens per step", min=1),
        Param("warmup", float, 0.05, "fraction of the steps spent warming up", min=0.0,
              max=0.5),
    )

    def fit(self, backbone: Backbone, task: Task, ctx: RunContext) -> Predictor:
        from transferlab.pretraining.loop import PretrainConfig, Term, run_pretraining

        objective = _clm(ctx)
        steps = self.hparams["max_steps"]
        predictor = LanguageModelPredictor(backbone, objective, self.hparams["batch_size"],
                                           backbone.num_parameters() if steps else 0)
        if steps == 0:
            predictor.extra = {"steps": 0}
            return predictor
        setup = _setup(backbone, task.split("train").inputs, objective, ctx.seed)
        config = PretrainConfig(Budget(steps=steps, seconds=ctx.budget.seconds),
                                batch_size=self.hparams["batch_size"], lr=self.hparams["lr"],
                                warmup=self.hparams["warmup"], checkpoint_every=steps,
                                seed=ctx.seed, validation_batches=0)
        with tempfile.TemporaryDirectory(prefix="lm-finetune-") as run_dir:
            result = run_pretraining(setup, [Term("clm", objective)], config, Path(run_dir),
                                     device=ctx.device)
        predictor.extra = {"steps": result.steps, "final_loss": result.final_loss,
                           "train_seconds": round(result.train_seconds, 3),
                           "train_tokens_per_s": round(result.units_per_second, 1)}
        return predictor
