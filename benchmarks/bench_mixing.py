"""Throughput of the mixing train loader against a plain DataLoader over the same data.

Every loader reads the same in-memory dict samples (image 3xSxS float32, mask SxS int64)
with batch size 64. ``plain`` is ``DataLoader(shuffle=True)`` with ``default_collate`` over
all samples; ``mixed-ratio`` and ``mixed-concat`` are ``SynthRealDataModule.train_dataloader()``
with half of the samples as the synthetic pool and half as the real pool (the same number of
samples per epoch as ``plain``), which add provenance to every sample. ``ConcatDataset`` is
what one would write for the union without this project: ``DataLoader(ConcatDataset(...),
shuffle=True)``, for reference.

The machine's speed drifts by several percent between seconds, more than the effect measured,
so the benchmark runs paired trials: a trial of ``plain`` and one of a mixing loader back to
back (in alternating order), each as many whole epochs as last about ``--trial-seconds`` (an
epoch of 64-px images in the main process takes 30 ms, too short to time alone), and reports
the median over trials of the per-pair ratio (1.000 = no overhead) with its interquartile
range, next to median samples/s.

Every batch stacks into a new tensor of several MB, which glibc serves with ``mmap`` or
from its heap depending on a threshold it moves as the process allocates and frees: the
page faults of the first kind cost as much as the rest of a 64-px batch, so whichever way a
loader's allocations fall, its speed changed by up to 15% between processes and between
rounds of one process (a second ``plain`` loader against the first: 0.97-1.03; a mixing
loader: 0.84-1.02). The benchmark therefore runs with the thresholds fixed
(``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` at 1 GiB, set by re-running
itself), which serves every batch from the heap for every loader alike; two plain loaders
then agree to 1%.

    python benchmarks/bench_mixing.py [--sides 64 128] [--workers 0 2] [--seconds 45]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, default_collate

from lightning_synth.data import SynthRealDataModule


class InMemory(Dataset):
    """A list of samples as a map-style dataset."""

    def __init__(self, samples: list[dict[str, Any]]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.samples[index]


def make_samples(count: int, side: int) -> list[dict[str, Any]]:
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.rand(3, side, side, generator=generator),
            "mask": torch.randint(0, 2, (side, side), generator=generator),
        }
        for _ in range(count)
    ]


def epoch_rate(loader: DataLoader, epoch: int, epochs: int = 1) -> float:
    """Samples per second over ``epochs`` epochs of ``loader`` (numbered from ``epoch``)."""
    count, start = 0, time.perf_counter()
    for offset in range(epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch + offset)
        for batch in loader:
            count += len(batch["image"])
    return count / (time.perf_counter() - start)


def epochs_per_trial(loader: DataLoader, seconds: float) -> int:
    """Epochs of ``loader`` that last about ``seconds``: shorter trials are mostly timer noise."""
    start = time.perf_counter()
    epoch_rate(loader, 0)
    return max(1, round(seconds / (time.perf_counter() - start)))


def quartiles(values: list[float]) -> tuple[float, float, float]:
    low, median, high = statistics.quantiles(values, n=4)
    return low, median, high


def build_loaders(samples: list[dict[str, Any]], batch_size: int, workers: int) -> dict:
    persistent = workers > 0
    common: dict[str, Any] = {"batch_size": batch_size, "num_workers": workers}
    loaders = {
        "plain": DataLoader(
            InMemory(samples),
            shuffle=True,
            collate_fn=default_collate,
            persistent_workers=persistent,
            **common,
        )
    }
    half = len(samples) // 2
    # What a user would write for the union of two datasets without this project.
    loaders["ConcatDataset"] = DataLoader(
        ConcatDataset([InMemory(samples[:half]), InMemory(samples[half:])]),
        shuffle=True,
        collate_fn=default_collate,
        persistent_workers=persistent,
        **common,
    )
    for mixing in ("ratio", "concat"):
        datamodule = SynthRealDataModule(
            InMemory(samples[:half]),
            InMemory(samples[half:]),
            strategy="mixed",
            mixing=mixing,
            synthetic_ratio=0.5,
            pin_memory=False,
            persistent_workers=persistent,
            **common,
        )
        datamodule.setup("fit")
        loaders[f"mixed-{mixing}"] = datamodule.train_dataloader()
    return loaders


#: glibc's allocator settings the benchmark runs under (see the module docs).
PINNED_ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


def pin_allocator() -> None:
    """Run this script again with glibc's mmap and trim thresholds fixed (Linux only)."""
    if sys.platform != "linux" or all(os.environ.get(k) == v for k, v in PINNED_ALLOCATOR.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **PINNED_ALLOCATOR})


def main() -> None:
    pin_allocator()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--sides", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--seconds", type=float, default=45.0, help="time per configuration for paired trials"
    )
    parser.add_argument("--min-trials", type=int, default=10)
    parser.add_argument(
        "--trial-seconds", type=float, default=0.05, help="length of one trial (whole epochs)"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}; {args.samples} samples, batch {args.batch_size}, "
        f"paired trials for {args.seconds:g} s per configuration, allocator thresholds "
        f"{'fixed' if os.environ.get('MALLOC_MMAP_THRESHOLD_') else 'glibc default'}"
    )
    print(
        f"{'side':>5} {'workers':>7} {'loader':>13} {'samples/s':>10} {'ratio':>6} "
        f"{'IQR of ratio':>13} {'trials':>6}"
    )
    for side in args.sides:
        samples = make_samples(args.samples, side)
        for workers in args.workers:
            loaders = build_loaders(samples, args.batch_size, workers)
            for loader in loaders.values():  # warm-up: worker start, page faults
                epoch_rate(loader, 0)
            epochs = epochs_per_trial(loaders["plain"], args.trial_seconds)
            rates: dict[str, list[float]] = {name: [] for name in loaders}
            ratios: dict[str, list[float]] = {name: [] for name in loaders if name != "plain"}
            trial, deadline = 0, time.perf_counter() + args.seconds
            while trial < args.min_trials or time.perf_counter() < deadline:
                trial += 1
                for name in ratios:
                    pair = ["plain", name] if trial % 2 else [name, "plain"]
                    measured = {
                        which: epoch_rate(loaders[which], trial * epochs, epochs) for which in pair
                    }
                    rates["plain"].append(measured["plain"])
                    rates[name].append(measured[name])
                    ratios[name].append(measured[name] / measured["plain"])
            plain_rate = statistics.median(rates["plain"])
            print(f"{side:>5} {workers:>7} {'plain':>13} {plain_rate:>10.0f} {1:>6.3f}")
            for name, values in ratios.items():
                low, median, high = quartiles(values)
                rate = statistics.median(rates[name])
                print(
                    f"{side:>5} {workers:>7} {name:>13} {rate:>10.0f} {median:>6.3f} "
                    f"{low:>6.3f}-{high:.3f} {len(values):>6}"
                )
            del loaders


if __name__ == "__main__":
    main()
