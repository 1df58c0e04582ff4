"""Fits a tiny model with 2 CPU processes (DDP, gloo) and writes what each rank trained on.

Run by tests/test_ddp.py as ``python tests/ddp_fit.py OUT_DIR {mixed,bridged,concat}``; DDP
relaunches this script for rank 1, so it must be a script, not a pytest function.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lightning.pytorch import Trainer

from helpers import IdDataset, TinySegmenter
from lightning_synth import BridgedTransfer, SynthRealDataModule


def main(out_dir: Path, mode: str) -> None:
    sizes = (37, 23) if mode == "concat" else (32, 32)
    datamodule = SynthRealDataModule(
        IdDataset(sizes[0], seed=1),
        IdDataset(sizes[1], first_id=1000, seed=2),
        val={"real": IdDataset(8, first_id=2000, seed=3)},
        strategy="bridged" if mode == "bridged" else "mixed",
        mixing="concat" if mode == "concat" else "ratio",
        synthetic_ratio=0.5,
        batch_size=4,
        seed=7,
    )
    bridge = BridgedTransfer(switch_epoch=2, monitor="val/loss", patience=5)
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=3,
        callbacks=[bridge] if mode == "bridged" else [],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out_dir,
    )
    model = TinySegmenter()
    trainer.fit(model, datamodule=datamodule)
    record = {
        "seen": {str(epoch): pairs for epoch, pairs in model.seen.items()},
        "switches": bridge.switches,
        "world_size": trainer.world_size,
    }
    (out_dir / f"{mode}-rank{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
