"""Rendered pallet datasets, caches and the pallet DataModule, at tiny sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_synth.data.coco import write_coco
from lightning_synth.data.pallets import PalletDataModule, rendered_pallets
from lightning_synth.generators.warehouse import realism_config

TINY = {"width": 64, "height": 48}


def _module(tmp_path: Path | None = None, **kwargs: object) -> PalletDataModule:
    options: dict = {
        "synthetic_samples": 4,
        "real_samples": 4,
        "val_samples": 2,
        "test_samples": 2,
        "batch_size": 2,
        **TINY,
        **kwargs,
    }
    if tmp_path is not None:
        options["cache_dir"] = str(tmp_path)
    return PalletDataModule(**options)


def test_cached_and_on_the_fly_samples_are_identical(tmp_path: Path) -> None:
    cached = _module(tmp_path, realism="half_realistic")
    cached.prepare_data()
    cached.setup("fit")
    fly = _module(realism="half_realistic")
    fly.setup("fit")
    for name in ("id", "ood"):
        a, b = cached.val_datasets[name][1], fly.val_datasets[name][1]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["boxes"], b["boxes"])
    assert (tmp_path / "synthetic-half_realistic" / "previews" / "000000.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "real",
        "synthetic-half_realistic",
        "test-id",
        "test-ood",
        "val-id",
        "val-ood",
    ]


def test_batches_follow_the_detection_contract_and_carry_provenance() -> None:
    dm = _module(realism=["realistic", "random"], strategy="mixed")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch["image"], list) and batch["image"][0].shape == (3, 48, 64)
    assert all(b.shape[1] == 4 for b in batch["boxes"])
    assert sorted(set(batch["source"])) == ["real", "synthetic"]
    assert set(batch["pool"]) <= {"realistic", "random", "real"}
    val = dm.val_dataloader()
    assert list(val) == ["id", "ood"]


def test_standins_are_fixed_and_synthetic_pools_follow_the_seed() -> None:
    a, b = _module(seed=0), _module(seed=1)
    for dm in (a, b):
        dm.setup("fit")
        dm.setup("test")
    # The stand-in sets do not depend on the module's seed; the synthetic pools do.
    assert torch.equal(a.val_datasets["id"][0]["image"], b.val_datasets["id"][0]["image"])
    first, second = (dm.generated["synthetic-random"] for dm in (a, b))
    assert first.seed != second.seed
    assert not torch.equal(first[0]["image"], second[0]["image"])
    # Test sets are other images than the validation sets of the same domain.
    assert not torch.equal(a.val_datasets["ood"][0]["image"], a.test_datasets["ood"][0]["image"])


def test_real_data_and_evaluation_sets_from_coco(tmp_path: Path) -> None:
    samples = [
        rendered_pallets(realism_config("realistic", **TINY), 3, seed=5)[i] for i in range(3)
    ]
    path = write_coco(samples, tmp_path / "site")
    dm = _module(
        real_annotations=str(path),
        eval_annotations={"site": str(path)},
        strategy="real_only",
    )
    dm.setup("fit")
    loaders = dm.val_dataloader()
    assert isinstance(loaders, dict) and list(loaders) == ["site"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"] == ["real", "real"]


def test_test_only_sets_are_tested_next_to_the_standins_never_validated(tmp_path: Path) -> None:
    samples = [rendered_pallets(realism_config("random", **TINY), 2, seed=7)[i] for i in range(2)]
    path = write_coco(samples, tmp_path / "other")
    dm = _module(test_annotations={"other": str(path)})
    dm.setup("fit")
    dm.setup("test")
    assert list(dm.val_dataloader()) == ["id", "ood"]
    assert list(dm.test_dataloader()) == ["id", "ood", "other"]
    assert torch.equal(dm.test_datasets["other"][1]["boxes"], samples[1]["boxes"])
    with pytest.raises(ValueError, match=r"test_annotations names \['id'\] are the names"):
        _module(test_annotations={"id": str(path)})
    with pytest.raises(ValueError, match="test_images names"):
        _module(test_images={"other": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match=r"test_annotations\['x'\]: COCO annotation"):
        _module(test_annotations={"x": str(tmp_path / "nope.json")})


def test_training_samples_are_flipped_with_their_boxes() -> None:
    dm = _module()
    assert repr(dm.train_transform) == "Augmentation([HorizontalFlip])"
    image = torch.zeros(3, 4, 10)
    image[:, :, 1:3] = 1.0
    sample = {
        "image": image,
        "boxes": torch.tensor([[1.0, 0.0, 3.0, 4.0]]),
        "labels": torch.ones(1, dtype=torch.int64),
    }
    outcomes = set()
    for _ in range(30):
        out = dm.train_transform(sample)
        columns = torch.nonzero(out["image"][0, 0]).flatten().tolist()
        box = out["boxes"][0].tolist()
        assert columns == list(range(int(box[0]), int(box[2])))
        outcomes.add(tuple(box))
    assert outcomes == {(1.0, 0.0, 3.0, 4.0), (7.0, 0.0, 9.0, 4.0)}


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match="realism must be distinct levels"):
        _module(realism="photoreal")
    with pytest.raises(ValueError, match="synthetic_samples must be an integer >= 1, got 0"):
        _module(synthetic_samples=0)
    with pytest.raises(ValueError, match="eval_images names"):
        _module(eval_images={"site": "x"})


def test_users_files_are_checked_before_anything_renders(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"real_annotations: COCO annotation file .*nope.json"
    ):
        _module(tmp_path / "cache", real_annotations=str(tmp_path / "nope.json"))
    with pytest.raises(FileNotFoundError, match=r"eval_images\['site'\]: image folder"):
        _module(
            tmp_path / "cache",
            eval_annotations={"site": str(write_coco([], tmp_path / "site"))},
            eval_images={"site": str(tmp_path / "missing")},
        )
    assert not (tmp_path / "cache").exists()
