"""Cost of one training step of the HRTEM segmenter per model variant and crop size (CPU).

    python benchmarks/bench_segmenter.py [--steps 5] [--batch 16] [--crops 128 192 256]
                                         [--threads 2]

Times forward, backward and the Adam update of :class:`~lightning_synth.tasks.
SegmentationTask`'s network on random images of one channel (what the recipe trains on),
after two warm-up steps, and prints seconds per step, pixels per second and each variant's
ratio to the recipe's default (U-Net, ResNet-18 encoder, smp's decoder widths, 128-pixel
crops) measured in the same run. The data loader is not timed: the recipe's workers share
the same cores, so a run's wall time per step is at least this figure.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lightning_synth.models.segmentation import build_segmenter

#: (label, encoder, decoder widths); None keeps smp's default (256, 128, 64, 32, 16).
VARIANTS: list[tuple[str, str, tuple[int, ...] | None]] = [
    ("resnet18, decoder 256-16 (default)", "resnet18", None),
    ("resnet18, decoder 128-8", "resnet18", (128, 64, 32, 16, 8)),
    ("resnet18, decoder 64-8", "resnet18", (64, 32, 16, 16, 8)),
]


def seconds_per_step(model: torch.nn.Module, batch: int, side: int, steps: int) -> float:
    """Median wall time of one training step (forward, cross-entropy, backward, Adam)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(batch, 1, side, side, generator=generator)
    mask = torch.randint(0, 2, (batch, side, side), generator=generator)
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(image), mask)
        loss.backward()
        optimizer.step()
        if step >= 2:  # the first steps allocate and pick kernels
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crops", type=int, nargs="+", default=[128, 192, 256])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.steps < 1 or args.batch < 1 or any(side < 32 or side % 32 for side in args.crops):
        parser.error("--steps and --batch must be >= 1 and each crop a multiple of 32")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    baseline = None
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}")
    print("| model | crop | s/step | Mpixel/s | x default at 128 |")
    print("| --- | --- | --- | --- | --- |")
    for label, encoder, decoder in VARIANTS:
        model = build_segmenter("unet", encoder, None, 1, 2, decoder_channels=decoder)
        model.train()
        for side in args.crops:
            seconds = seconds_per_step(model, args.batch, side, args.steps)
            if baseline is None:
                baseline = seconds  # the first variant at the first crop
            rate = args.batch * side * side / seconds / 1e6
            print(f"| {label} | {side} | {seconds:.2f} | {rate:.2f} | {seconds / baseline:.2f} |")


if __name__ == "__main__":
    main()
