"""Precision: ``-B precision=auto`` against fp32, measured in one run, on this machine.

For ``timm:efficientnet_lite0`` at 128 and 224 px (batch 16, channels-last) and
``sbert:all-MiniLM-L6-v2`` (256 sentences, batch 64) it prints:

- the precision ``auto`` resolves to here, for inference and for training;
- the model forward alone (preprocessed batches, as inside the harness's extraction) in fp32
  and in ``auto``, and their ratio (the target on a CPU with bf16 matrix units: >= 1.6x);
- end-to-end extraction (``Backbone.encode``: image decoding and resizing or tokenising
  included, which bf16 does not speed up) in both, and the ratio;
- one training step (forward, backward, AdamW) in fp32 and in ``auto``'s training precision,
  and the ratio (``auto`` must never be slower);
- GFLOP/s of each forward (FLOPs from ``torch.utils.flop_counter``) as a fraction of a large
  matrix multiply's, timed in the same run in fp32 and bf16: the machine's measured peak.

Explicit bf16 is also timed (one batch) when the CPU has no bf16 units, to show why ``auto``
does not pick it there. Quiet machine only: the last line says what other processes used.

    python benchmarks/precision.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from quiet import OthersMeter
from torch.utils.flop_counter import FlopCounterMode

from transferlab.plugins import get_registries
from transferlab.precision import autocast, cpu_has_bf16_units, resolve_precision

FLOWERS = Path(__file__).resolve().parents[1] / "plugins/transferlab_tasks/flowers_demo"
SENTENCE = ("the model maps every input to a representation and transfer learning reuses it"
            " for a new task with few labels while the harness scores each method alike")
WORDS = SENTENCE.split(" ")


def sentences(n: int) -> list[str]:
    """``n`` sentences of 8 to 31 words (deterministic), like short classification texts."""
    return [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(8 + (i * 13) % 24))
            for i in range(n)]


def images(n: int) -> list[str]:
    paths = sorted(str(p) for p in FLOWERS.rglob("*.jpg"))
    return (paths * (n // max(len(paths), 1) + 1))[:n]


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_gflops(dtype: torch.dtype, size: int = 2048) -> float:
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    seconds = best_seconds(lambda: a @ b, 3)
    return 2 * size**3 / seconds / 1e9


def forward_flops(backbone, batch) -> int:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        backbone.features(batch)
    return counter.get_total_flops()


def forward(backbone, batches, precision: str) -> None:
    with torch.inference_mode(), autocast(precision, "cpu"):
        for batch in batches:
            backbone.features(batch)


def train_step(backbone, batch, precision: str, steps: int = 1) -> None:
    module = backbone.module
    module.train()
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], 1e-5)
    for _ in range(steps):
        with autocast(precision, "cpu"):
            loss = backbone.features(batch).float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    module.eval()


def measure(name: str, params: dict, inputs: list, batch: int, repeats: int,
            peaks: dict[str, float]) -> None:
    registries = get_registries()
    inference = resolve_precision("auto", backbone=name, device="cpu", training=False)
    training = resolve_precision("auto", backbone=name, device="cpu", training=True)
    backbone = registries.backbones.create(name, {**params, "batch_size": batch,
                                                  "precision": "fp32"})
    ordered = sorted(inputs, key=len, reverse=True) if isinstance(inputs[0], str) else inputs
    # texts in batches of similar length, as Backbone.encode forms them (less padding)
    chunks = [ordered[i : i + batch] for i in range(0, len(ordered), batch)]
    batches = [backbone.preprocess(c) for c in chunks]
    label = f"{name} {params.get('img_size', '')}".strip()
    print(f"\n{label}: auto = {inference} for inference, {training} for training"
          f" ({len(inputs)} inputs, batch {batch})")
    rates = {}
    for precision in dict.fromkeys(("fp32", inference)):
        seconds = best_seconds(lambda p=precision: forward(backbone, batches, p), repeats)
        backbone.precision = precision
        end_to_end = best_seconds(lambda: backbone.encode(inputs), repeats)
        rates[precision] = (len(inputs) / seconds, len(inputs) / end_to_end)
    flops = sum(forward_flops(backbone, b) for b in batches) / len(inputs)  # per input
    for precision, (fwd, e2e) in rates.items():
        gflops = fwd * flops / 1e9
        peak = peaks["bf16" if precision == "bf16" else "fp32"]
        print(f"  {precision:4}: forward {fwd:8.1f}/s ({gflops:6.1f} GFLOP/s = {gflops / peak:.0%}"
              f" of the {precision} matmul peak), end to end {e2e:8.1f}/s")
    fp32, auto = rates["fp32"], rates[inference]
    print(f"  auto/fp32: forward {auto[0] / fp32[0]:.2f}x, end to end {auto[1] / fp32[1]:.2f}x")
    if "bf16" not in rates:
        seconds = best_seconds(lambda: forward(backbone, batches[:1], "bf16"), 1)
        print(f"  bf16 (explicit, no bf16 units here): forward {len(chunks[0]) / seconds:.1f}/s"
              f" = {len(chunks[0]) / seconds / fp32[0]:.2f}x fp32")
    step = batches[0] if len(chunks[0]) >= 32 else backbone.preprocess(inputs[:32])
    train = {p: 32 / best_seconds(lambda p=p: train_step(backbone, step, p), repeats)
             for p in dict.fromkeys(("fp32", training))}
    print(f"  training step (batch 32): fp32 {train['fp32']:.1f}/s, auto ({training})"
          f" {train[training]:.1f}/s = {train[training] / train['fp32']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with OthersMeter() as meter:
        units = cpu_has_bf16_units()
        peaks = {"fp32": peak_gflops(torch.float32),
                 "bf16": peak_gflops(torch.bfloat16, 2048 if units else 512)}
        print(f"CPU bf16 matrix units (amx_bf16 / avx512_bf16): {'yes' if units else 'no'};"
              f" torch threads {torch.get_num_threads()}; matmul peak fp32"
              f" {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s")
        measure("timm:efficientnet_lite0", {"img_size": 128}, images(128), 16, args.repeats,
                peaks)
        measure("timm:efficientnet_lite0", {"img_size": 224}, images(64), 16, args.repeats,
                peaks)
        measure("sbert:all-MiniLM-L6-v2", {}, sentences(256), 64, args.repeats, peaks)
    print(meter.verdict())


if __name__ == "__main__":
    main()
