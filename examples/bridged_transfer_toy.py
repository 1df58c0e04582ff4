"""Bridged transfer on toy data: what each strategy trains on, phase by phase, and how it scores.

Synthetic data: rendered-looking disks ("clean"). Real data: camera-looking ellipses
("recorded": lower contrast, blur, uneven background, more noise), of which only 10% are used.
The same small segmenter is trained for the same number of steps with each strategy and scored
(IoU) on held-out "recorded" images:

    python examples/bridged_transfer_toy.py [--epochs 8] [--batches-per-epoch 12]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from lightning.pytorch import LightningModule, Trainer, seed_everything
from torch import nn
from torchmetrics.classification import BinaryJaccardIndex

from lightning_synth import BridgedTransfer, SourceCounter, SynthRealDataModule, ToyDisksDataset


class ToySegmenter(LightningModule):
    """A small fully convolutional segmenter: ``backbone`` features, ``head`` logits."""

    def __init__(self, lr: float = 3e-3, width: int = 16) -> None:
        super().__init__()
        self.lr = lr

        def block(inputs: int, outputs: int, dilation: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(inputs, outputs, 3, padding=dilation, dilation=dilation),
                nn.BatchNorm2d(outputs),
                nn.ReLU(inplace=True),
            )

        self.backbone = nn.Sequential(
            block(1, width, 1), block(width, width, 2), block(width, width, 4)
        )
        self.head = nn.Conv2d(width, 1, 1)
        self.val_iou = BinaryJaccardIndex()
        self.test_iou = BinaryJaccardIndex()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Per-pixel logits of shape (N, H, W)."""
        return self.head(self.backbone(image))[:, 0]

    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["image"])
        return F.binary_cross_entropy_with_logits(logits, batch["mask"].float()), logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Binary cross-entropy on the batch."""
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and IoU on the real validation set."""
        loss, logits = self._loss(batch)
        self.val_iou.update(logits.sigmoid(), batch["mask"])
        self.log("val/real/loss", loss, batch_size=len(batch["image"]))
        self.log("val/real/iou", self.val_iou, batch_size=len(batch["image"]))

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """IoU on the real test set."""
        _, logits = self._loss(batch)
        self.test_iou.update(logits.sigmoid(), batch["mask"])
        self.log("test/real/iou", self.test_iou, batch_size=len(batch["image"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam; BridgedTransfer calls this again at the switch."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def run(strategy: str, epochs: int, batches_per_epoch: int, seed: int = 0) -> dict[str, Any]:
    """Train with one strategy; return the test IoU and what each epoch trained on."""
    seed_everything(seed, verbose=False)
    datamodule = SynthRealDataModule(
        synthetic=ToyDisksDataset(400, style="clean", seed=1),
        real=ToyDisksDataset(200, style="recorded", seed=2),
        val={"real": ToyDisksDataset(64, style="recorded", seed=3)},
        test={"real": ToyDisksDataset(128, style="recorded", seed=4)},
        strategy=strategy,  # type: ignore[arg-type]
        real_fraction=0.1,
        synthetic_ratio=0.5,
        batch_size=16,
        batches_per_epoch=batches_per_epoch,  # equal steps for every strategy
        seed=seed,
    )
    counter = SourceCounter()
    callbacks: list[Any] = [counter]
    bridge = None
    if strategy == "bridged":
        bridge = BridgedTransfer(
            switch_epoch=epochs // 2, lr_scale=0.3, freeze=["backbone"], freeze_epochs=1
        )
        callbacks.append(bridge)
    trainer = Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    model = ToySegmenter()
    trainer.fit(model, datamodule=datamodule)
    test_iou = trainer.test(model, datamodule=datamodule, verbose=False)[0]["test/real/iou"]
    phases = (
        [bridge.switches[0]["from"], bridge.switches[0]["to"]]
        if bridge
        else list(datamodule.phases)
    )
    return {
        "strategy": strategy,
        "history": counter.history,
        "phases": phases,
        "switches": bridge.switches if bridge else [],
        "pools": {name: len(pool) for name, pool in (datamodule.pools or {}).items()},
        "test_iou": float(test_iou),
    }


def describe(result: dict[str, Any]) -> list[str]:
    """Lines saying which epochs trained on what."""
    lines, start = [], 0
    history = result["history"]
    bounds = [switch["epoch"] for switch in result["switches"]] + [len(history)]
    for phase, end in zip(result["phases"], bounds, strict=False):
        epochs = history[start:end]
        synthetic = sum(epoch["synthetic"] for epoch in epochs)
        real = sum(epoch["real"] for epoch in epochs)
        lines.append(
            f"  phase {phase!r:<12} epochs {start}-{end - 1}: {synthetic:>5} synthetic + "
            f"{real:>5} real samples"
        )
        start = end
    return lines


class _SwitchLines(logging.Handler):
    """Keeps BridgedTransfer's log lines so the demo can print them in order."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("BridgedTransfer"):
            self.lines.append(record.getMessage())


def main() -> None:
    """Run every strategy and print what each phase trained on."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batches-per-epoch", type=int, default=12)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
    # Lightning's own notices go to stderr at INFO; keep only warnings there, and print
    # BridgedTransfer's one-line reports with the rest of the demo's output.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero.setLevel(logging.INFO)
    rank_zero.propagate = False
    switch_lines = _SwitchLines()
    rank_zero.addHandler(switch_lines)

    print(
        "lightning_synth demo: synthetic 'clean' disks, 10% of the 'recorded' real set; "
        f"{args.epochs} epochs x {args.batches_per_epoch} batches of 16 per strategy, on CPU\n"
    )
    results = []
    for strategy in ("real_only", "mixed", "bridged"):
        start = time.perf_counter()
        result = run(strategy, args.epochs, args.batches_per_epoch)
        results.append(result)
        pools = ", ".join(f"{name}: {size}" for name, size in result["pools"].items())
        print(f"{strategy} (pools after fractions: {pools}), {time.perf_counter() - start:.0f} s")
        print("\n".join(describe(result)))
        for line in switch_lines.lines:
            print(f"  {line}")
        switch_lines.lines.clear()
        print(f"  test IoU on held-out recorded images: {result['test_iou']:.3f}\n")
    print("test IoU: " + " | ".join(f"{r['strategy']} {r['test_iou']:.3f}" for r in results))


if __name__ == "__main__":
    main()
