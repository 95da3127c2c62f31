"""Overhead of the harness's training loop over a plain hand-written PyTorch loop.

Both fine-tune the same backbone with the same new head, batch size, optimizer (AdamW, same
parameter groups and rates, warm-up + cosine schedule, gradient clipping at 1.0) and data
(digits, preprocessed once, shuffled) for a fixed number of steps. The harness side is a real
``finetune`` cell through :func:`transferlab.harness.cell.run_cell`; its loop throughput is the
one the loop reports (``train_examples_per_s``: optimizer steps only, like the plain timer).
Runs alternate harness / plain and the median of ``--repeats`` is reported, because other
processes on a small machine make single timings noisy.

    python benchmarks/finetune_overhead.py                      # lite0 @ 96 px, 30 steps
    python benchmarks/finetune_overhead.py --steps 60 --repeats 5

Prints both throughputs and the ratio plain / harness (target <= 1.10).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from transferlab.harness.cell import Cell, run_cell
from transferlab.plugins import get_registries
from transferlab.training.schedule import build_scheduler, decay_groups
from transferlab_tasks.digits import DigitsTask
from transferlab_timm.backbone import TimmBackbone

LR, HEAD_LR, WEIGHT_DECAY, WARMUP, CLIP = 1e-4, 1e-3, 0.01, 0.1, 1.0


def harness_run(backbone: str, img_size: int, steps: int, batch_size: int) -> tuple[float, float]:
    """(loop examples/s, end-to-end fit seconds) of one ``finetune`` cell."""
    params = {"max_steps": steps, "batch_size": batch_size, "val_fraction": 0.0, "lr": LR,
              "head_lr": HEAD_LR, "weight_decay": WEIGHT_DECAY, "warmup": WARMUP,
              "grad_clip": CLIP}
    cell = Cell(backbone, "digits", "finetune", params, {"img_size": img_size})
    result = run_cell(cell, get_registries(), device="cpu", progress=False)
    if result.status != "ok":
        raise SystemExit(f"harness run failed: {result.error}")
    assert result.extra["steps"] == steps
    return result.extra["train_examples_per_s"], result.fit_seconds


def plain_run(backbone_name: str, img_size: int, steps: int, batch_size: int,
              seed: int = 0) -> float:
    """Examples/s of a hand-written loop doing the same work."""
    torch.manual_seed(seed)
    backbone = TimmBackbone(backbone_name, img_size=img_size)
    task = DigitsTask()
    train = task.split("train")
    images = torch.cat([backbone.preprocess(train.inputs[i : i + batch_size])
                        for i in range(0, len(train), batch_size)])
    labels = torch.as_tensor(train.labels)
    model = backbone.model
    head = nn.Linear(backbone.feature_dim, len(task.label_names))
    classifier = model.get_classifier()
    source = {id(p) for p in classifier.parameters()}
    body = [(n, p) for n, p in model.named_parameters() if id(p) not in source]
    for p in classifier.parameters():
        p.requires_grad_(False)
    groups = (decay_groups(body, LR, WEIGHT_DECAY, "backbone")
              + decay_groups(head.named_parameters(), HEAD_LR, WEIGHT_DECAY, "head"))
    optimizer = torch.optim.AdamW(groups)
    scheduler = build_scheduler(optimizer, steps, WARMUP)
    trained = [p for g in groups for p in g["params"]]
    model.train()
    head.train()
    order = np.random.default_rng(seed).permutation(len(labels))
    done = 0
    start = time.perf_counter()
    for step in range(steps):
        index = torch.from_numpy(order[(step * batch_size) % len(labels):][:batch_size])
        x = images[index].contiguous(memory_format=torch.channels_last)
        y = labels[index]
        logits = head(model.forward_head(model.forward_features(x), pre_logits=True))
        loss = F.cross_entropy(logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        done += len(y)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="timm:efficientnet_lite0@random")
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.steps * args.batch_size > 1347:
        parser.error("steps x batch size must fit in one epoch of digits (1,347 images)")
    plain_run(args.backbone, args.img_size, 3, args.batch_size)  # warm up kernels, allocator
    harness, plain, fit = [], [], []
    for repeat in range(args.repeats):
        rate, seconds = harness_run(args.backbone, args.img_size, args.steps, args.batch_size)
        harness.append(rate)
        fit.append(seconds)
        plain.append(plain_run(args.backbone, args.img_size, args.steps, args.batch_size))
        print(f"repeat {repeat + 1}: harness {harness[-1]:.1f} examples/s, plain"
              f" {plain[-1]:.1f} examples/s, harness fit end to end {fit[-1]:.1f} s")
    h, p = statistics.median(harness), statistics.median(plain)
    print(f"{args.backbone} @ {args.img_size} px, batch {args.batch_size}, {args.steps} steps,"
          f" {torch.get_num_threads()} threads, median of {args.repeats}:")
    print(f"  harness loop  {h:8.1f} examples/s")
    print(f"  plain PyTorch {p:8.1f} examples/s")
    print(f"  ratio plain/harness = {p / h:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
