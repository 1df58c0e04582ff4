"""Tiny datasets, modules and DataModules shared by the tests."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from lightning.pytorch import Callback, LightningDataModule, LightningModule
from torch import nn
from torch.utils.data import DataLoader, Dataset


def quiet_trainer(root: Any, max_epochs: int, callbacks: list | None = None, **kwargs: Any) -> Any:
    """A CPU Trainer in ``root`` without logger, checkpoints, progress bar or sanity check."""
    from lightning.pytorch import Trainer

    kwargs.setdefault("enable_checkpointing", False)
    kwargs.setdefault("logger", False)
    kwargs.setdefault("num_sanity_val_steps", 0)
    return Trainer(
        default_root_dir=root,
        max_epochs=max_epochs,
        callbacks=callbacks or [],
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


class IdDataset(Dataset):
    """In-memory dict samples whose ``id`` says which sample they are."""

    def __init__(self, length: int, first_id: int = 0, size: int = 8, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.samples = []
        for index in range(length):
            image = torch.rand(1, size, size, generator=generator)
            self.samples.append(
                {"image": image, "mask": (image[0] > 0.5).long(), "id": first_id + index}
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.samples[index]


class TinySegmenter(LightningModule):
    """A two-layer segmenter that records which samples it trained on."""

    def __init__(self, lr: float = 0.05, channels: int = 4, step_gamma: float = 0.5) -> None:
        super().__init__()
        self.lr, self.step_gamma = lr, step_gamma
        self.backbone = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.head = nn.Conv2d(channels, 2, 1)
        self.seen: dict[int, list[tuple[str, int]]] = defaultdict(list)
        self.optimizer_ids: dict[int, int] = {}
        self.epoch_lrs: dict[int, float] = {}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(image))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = F.cross_entropy(self(batch["image"]), batch["mask"])
        self.seen[self.current_epoch].extend(
            zip(batch["source"], batch["id"].tolist(), strict=False)
        )
        optimizer = self.trainer.optimizers[0]
        self.optimizer_ids[self.current_epoch] = id(optimizer)
        self.epoch_lrs[self.current_epoch] = optimizer.param_groups[0]["lr"]
        self.log("train/loss", loss, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss = F.cross_entropy(self(batch["image"]), batch["mask"])
        self.log("val/loss", loss, batch_size=len(batch["image"]))

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=self.step_gamma)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class ScriptedScore(TinySegmenter):
    """Logs ``val/score`` from a script, one value per epoch, to drive plateau switching."""

    def __init__(self, script: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script = script

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        epoch = min(self.current_epoch, len(self.script) - 1)
        self.log("val/score", self.script[epoch], batch_size=len(batch["image"]))


class PlainDataModule(LightningDataModule):
    """A user's DataModule without the phase protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.data = IdDataset(8)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=4)


def source_sets(seen: dict[int, list[tuple[str, int]]]) -> dict[int, set[str]]:
    """Epoch -> the set of sources trained on in that epoch."""
    return {epoch: {source for source, _ in pairs} for epoch, pairs in sorted(seen.items())}


def load_script(path: Any) -> Any:
    """Import a script that is not in a package (an example or a recipe) as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_wandb_run(path: Any, timeout: float = 60.0) -> dict[str, Any]:
    """What an offline W&B run file (``run-<id>.wandb``) holds: config keys (from the run
    record and the config records), metric definitions, history keys and summary keys.

    The file is a LevelDB-style log (a 7-byte header, then 32 KiB blocks of records with a
    7-byte header: checksum, length, kind) of W&B's protobuf ``Record`` messages. W&B's
    service process may still be writing it when ``finish()`` has returned, so this waits
    (up to ``timeout`` seconds) for the run's closing ``exit`` record.
    """
    import time
    from pathlib import Path

    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    deadline = time.monotonic() + timeout
    while True:
        data = Path(path).read_bytes()
        if data[:4] != b":W&B":
            msg = f"{path} is not a W&B run file"
            raise ValueError(msg)
        records = []
        for payload in _log_payloads(data):
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(payload)
            except DecodeError:  # a record still being written
                break
            records.append(record)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            break
        if time.monotonic() > deadline:
            msg = f"{path} has no exit record after {timeout} s: the run was not finished"
            raise AssertionError(msg)
        time.sleep(0.2)
    run: dict[str, Any] = {"config": {}, "metrics": {}, "history": set(), "summary": set()}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":  # the config W&B had when the run started
            run["config"].update({i.key: i.value_json for i in record.run.config.update})
        elif kind == "config":
            run["config"].update({item.key: item.value_json for item in record.config.update})
        elif kind == "metric":
            name = record.metric.glob_name or record.metric.name
            run["metrics"][name] = record.metric.summary
        elif kind == "history":
            run["history"] |= {i.key or "/".join(i.nested_key) for i in record.history.item}
        elif kind == "summary":
            run["summary"] |= {i.key or "/".join(i.nested_key) for i in record.summary.update}
    return run


def _log_payloads(data: bytes) -> list[bytes]:
    """The records of a LevelDB-style log, fragments joined; a torn last one left out."""
    import struct

    block, position, pending, payloads = 32768, 7, b"", []
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        position += 7
        if length == 0 and kind == 0:
            break
        if position + length > len(data):
            break
        pending += data[position : position + length]
        position += length
        if kind in (1, 4):  # a full record, or the last piece of one
            payloads.append(pending)
            pending = b""
    return payloads


def tiny_pallet_options(root: Any) -> list[str]:
    """Options that make the pallet detection recipe run in seconds on a CPU, in ``root``."""
    from pathlib import Path

    root = Path(root)
    return [
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=2",  # batches per test set (the independent set has 40)
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={root}",
        f"--trainer.logger.init_args.save_dir={root}",
        "--no-wandb",  # CSV logs (one test runs W&B offline)
        "--data.synthetic_samples=4",
        "--data.real_samples=10",
        "--data.val_samples=2",
        "--data.test_samples=2",
        "--data.width=64",
        "--data.height=48",
        f"--data.cache_dir={root / 'cache'}",
        "--data.render_workers=0",
        "--data.num_workers=0",
        "--data.batch_size=2",
        "--model.min_size=48",
        "--model.max_size=64",
        "--model.box_batch_size_per_image=16",
        "--model.warmup_steps=1",
    ]


def tiny_hrtem_options(root: Any) -> list[str]:
    """Options that make the HRTEM segmentation recipe run in seconds on a CPU, in ``root``."""
    from pathlib import Path

    root = Path(root)
    return [
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={root}",
        f"--trainer.logger.init_args.save_dir={root}",
        "--no-wandb",  # CSV logs (one test runs W&B offline)
        "--data.train_samples=4",
        "--data.val_samples=2",
        "--data.test_samples=2",
        "--data.simulation.detector_pixels=64",
        "--data.simulation.particle_diameter=[11,12]",
        "--data.simulation.carbon_thickness=[4,6]",
        "--data.simulation.frozen_phonons=1",
        "--data.train_crop=32",
        f"--data.cache_dir={root / 'cache'}",
        "--data.render_workers=0",
        "--data.num_workers=0",
        "--data.batch_size=2",
        "--model.encoder=resnet18",
    ]


class RecordRankConfig(Callback):
    """Writes what this rank trains with to ``$RECORD_DIR/rank<N>.json`` at setup."""

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        import json
        import os
        from pathlib import Path

        data = trainer.datamodule
        record = {
            "world_size": trainer.world_size,
            "lr": pl_module.hparams["lr"],
            "strategy": data.strategy,
            "real_fraction": data.real_fraction,
            "data_seed": data.seed,
            "torch_seed": torch.initial_seed(),
        }
        path = Path(os.environ["RECORD_DIR"]) / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps(record))
