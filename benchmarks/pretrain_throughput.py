"""Pretraining throughput of ``transferlab pretrain``'s loop beside a hand-written PyTorch loop.

Both train the same from-scratch model on the same data for the same number of steps, with
the same optimizer (AdamW, same parameter groups, warm-up + cosine, clipping at 1.0):

- ``--objective mlm`` (default): ``bert:tiny`` with masked-LM on contiguous blocks of
  ``max_length`` tokens of a corpus, logits at the masked positions only; tokens/s.
- ``--objective contrastive``: a timm model from random init with SimCLR on a task's images
  (two augmented views per image); images/s.

The plain loop makes its batches with the same functions (``Examples.batch``: tokenising and
masking, or augmenting) so both loops do identical work; what it leaves out is the loop's
bookkeeping (step generators, loss records, progress, checkpoint checks). Runs alternate
transferlab / plain and the median of ``--repeats`` is reported. The load of other processes
during the run is printed: a figure measured while they used the CPU is not a result.

    python benchmarks/pretrain_throughput.py --corpus ../shared/data/corpora/wikitext2_test.txt
    python benchmarks/pretrain_throughput.py --objective contrastive -t cifar10_subset \\
        --data-dir ../shared/data --backbone 'timm:resnet18@random' -B img_size=32

Prints both throughputs and the ratio transferlab / plain (target >= 0.9).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from transferlab.params import parse_assignments
from transferlab.plugins import get_host
from transferlab.pretraining.command import PretrainRequest, build_setup
from transferlab.pretraining.loop import PretrainConfig, run_pretraining, step_generator
from transferlab.training.data import shuffled
from transferlab.training.schedule import build_scheduler, decay_groups


def other_cpu_seconds() -> float:
    """CPU seconds every other process has used since boot: the machine's busy time from
    /proc/stat (user, nice, system, irq, softirq) minus this process's own (0 without
    /proc)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _, _, irq, softirq = (int(v) for v in fields[:7])
    busy = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return busy - (own.user + own.system)


def build(args: argparse.Namespace, registries: object) -> tuple[object, list, PretrainConfig]:
    """The setup ``transferlab pretrain`` would build, and a config without checkpoints."""
    request = PretrainRequest(args.backbone, (args.objective,), "unused",
                              corpora=tuple(args.corpus), task=args.task,
                              backbone_params=parse_assignments(args.backbone_param),
                              steps=args.steps, batch_size=args.batch_size)
    terms, _, _, setup = build_setup(request, registries)
    config = replace(request.config(), checkpoint_every=10**9, validation_batches=0)
    return setup, terms, config


def transferlab_run(args: argparse.Namespace, registries: object) -> float:
    setup, terms, config = build(args, registries)
    with tempfile.TemporaryDirectory() as run_dir:
        result = run_pretraining(setup, terms, config, Path(run_dir))
    return result.units_per_second


def plain_run(args: argparse.Namespace, registries: object) -> float:
    setup, terms, config = build(args, registries)
    objective, module = terms[0].objective, setup.module
    torch.manual_seed(0)
    groups = decay_groups(module.named_parameters(), config.lr, config.weight_decay, "all")
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999))
    scheduler = build_scheduler(optimizer, args.steps, config.warmup)
    per_epoch = setup.train.count // args.batch_size
    units, elapsed = 0, 0.0
    module.train()
    for step in range(args.steps):
        start = time.perf_counter()
        epoch, position = divmod(step, per_epoch)
        order = shuffled(setup.train.count, 0, epoch)
        rows = order[position * args.batch_size:(position + 1) * args.batch_size].tolist()
        batch = setup.train.batch(rows, step_generator(0, step))
        loss = objective(setup.forward(batch), batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        units += setup.units(batch)
        elapsed += time.perf_counter() - start
    return units / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objective", default="mlm", choices=["mlm", "clm", "contrastive",
                                                               "reconstruction"])
    parser.add_argument("--backbone", default="bert:tiny")
    parser.add_argument("-B", "--backbone-param", action="append", default=[])
    parser.add_argument("--corpus", action="append", default=[])
    parser.add_argument("-t", "--task", default=None)
    parser.add_argument("--data-dir", action="append", default=[], type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    registries = get_host(data_dirs=args.data_dir).registries
    plain_run(argparse.Namespace(**{**vars(args), "steps": 2}), registries)  # warm up
    ours, plain = [], []
    others_before, wall_before = other_cpu_seconds(), time.perf_counter()
    for repeat in range(args.repeats):
        ours.append(transferlab_run(args, registries))
        plain.append(plain_run(args, registries))
        print(f"repeat {repeat + 1}: transferlab {ours[-1]:.1f}, plain {plain[-1]:.1f}")
    others = (other_cpu_seconds() - others_before) / (time.perf_counter() - wall_before)
    unit = "images" if args.objective in ("contrastive", "reconstruction") else "tokens"
    o, p = statistics.median(ours), statistics.median(plain)
    print(f"{args.backbone} {args.objective}, batch {args.batch_size}, {args.steps} steps,"
          f" {torch.get_num_threads()} threads, median of {args.repeats}; other processes"
          f" used {others:.2f} CPUs meanwhile:")
    print(f"  transferlab pretrain loop {o:10.1f} {unit}/s")
    print(f"  plain PyTorch loop        {p:10.1f} {unit}/s")
    print(f"  ratio transferlab/plain = {o / p:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
