"""Feature-extraction throughput: the harness (``Backbone.encode``) against a plain loop.

The plain loop does the same work by hand (load image, timm eval transform, stack, forward in
``torch.inference_mode``) with the same model and batch size; the ratio harness / plain is the
harness's efficiency (target >= 0.9, i.e. overhead under 10%). It also measures the layout and
batch-size choices behind the defaults (channels-last vs contiguous, batch 16 vs 64).

    python benchmarks/extract_throughput.py [--backbone timm:efficientnet_lite0] [--img-size N]
        [--n 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from transferlab.data import load_image
from transferlab.plugins import get_registries
from transferlab_tasks.digits import DigitsTask


def best_rate(fn, n: int, repeats: int) -> float:
    """Items per second of the fastest of ``repeats`` runs (after one warm-up)."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return n / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plain_loop(backbone, inputs, batch_size: int, channels_last: bool) -> None:
    model, transform = backbone.model, backbone._transform
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            batch = torch.stack([transform(load_image(x)) for x in chunk])
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            model.forward_head(model.forward_features(batch), pre_logits=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="timm:efficientnet_lite0")
    parser.add_argument("--img-size", type=int, default=None,
                        help="default: the backbone's own (224 for EfficientNet-Lite0)")
    parser.add_argument("--n", type=int, default=512, help="images per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    inputs = DigitsTask().split("train").inputs[: args.n]
    registries = get_registries()
    size = f"{args.img_size} px" if args.img_size else "its default size"
    print(f"{args.backbone} at {size}, {len(inputs)} digits images,"
          f" torch threads={torch.get_num_threads()}")
    rows = []
    for channels_last in (True, False):
        for batch_size in (16, 64):
            backbone = registries.backbones.create(args.backbone, {
                "img_size": args.img_size, "channels_last": channels_last,
                "batch_size": batch_size, "precision": "fp32"})  # overhead, not precision
            harness = best_rate(lambda b=backbone: b.encode(inputs), len(inputs), args.repeats)
            plain = best_rate(lambda b=backbone, s=batch_size, c=channels_last:
                              plain_loop(b, inputs, s, c), len(inputs), args.repeats)
            rows.append((channels_last, batch_size, harness, plain))
            print(f"channels_last={channels_last!s:5} batch={batch_size:3}  harness"
                  f" {harness:7.1f} img/s  plain loop {plain:7.1f} img/s"
                  f"  ratio {harness / plain:.3f}")
    default = rows[0]
    ratio = default[2] / default[3]
    print(f"\nharness/plain at the defaults (channels_last, batch 16): {ratio:.3f} (target >= 0.9)")
    contiguous16 = rows[2]
    print(f"channels_last vs contiguous at batch 16: {default[2] / contiguous16[2]:.2f}x")
    print(f"batch 16 vs batch 64 (channels_last): {default[2] / rows[1][2]:.2f}x")


if __name__ == "__main__":
    main()
