"""The generator protocol, GeneratedDataset (on the fly and cached) and GeneratedDataModule."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from lightning_synth.data import GeneratedDataModule, GeneratedDataset, SynthRealDataModule
from lightning_synth.data.collate import collate_samples
from lightning_synth.generators import SampleGenerator, ToyDisksGenerator, stable_seed


def squares(seed: int, index: int) -> dict[str, Any]:
    """A plain-function generator: an image in [0, 1] with a square of random side."""
    generator = torch.Generator().manual_seed(stable_seed(seed, str(index)))
    side = int(torch.randint(2, 7, (1,), generator=generator))
    mask = torch.zeros(8, 8, dtype=torch.int64)
    mask[:side, :side] = 1
    image = (0.2 + 0.6 * mask + 0.1 * torch.rand(8, 8, generator=generator))[None]
    return {"image": image, "mask": mask, "extra": torch.zeros(3), "meta": {"side": side}}


def test_functions_and_classes_are_generators() -> None:
    assert isinstance(squares, SampleGenerator)
    assert isinstance(ToyDisksGenerator(16), SampleGenerator)


def test_samples_depend_on_seed_and_index_only_in_any_worker() -> None:
    data = GeneratedDataset(squares, 12, seed=3)
    main = [data[i]["image"] for i in range(12)]
    loader = DataLoader(data, batch_size=3, num_workers=2, collate_fn=collate_samples)
    workers = torch.cat([batch["image"] for batch in loader])
    assert torch.equal(torch.stack(main), workers)
    assert not torch.equal(main[0], GeneratedDataset(squares, 12, seed=4)[0]["image"])
    # Contract keys only, plus meta; ``keys`` chooses others.
    assert sorted(data[0]) == ["image", "mask", "meta"]
    assert sorted(GeneratedDataset(squares, 2, keys=["image", "extra"])[0]) == [
        "extra",
        "image",
        "meta",
    ]


@pytest.mark.parametrize("quantize", [False, True])
def test_cached_samples_equal_on_the_fly_ones(tmp_path: Path, quantize: bool) -> None:
    fly = GeneratedDataset(squares, 5, seed=1, quantize=quantize)
    cached = fly.cached(tmp_path)
    assert cached.missing() == [0, 1, 2, 3, 4]
    cached.render(progress=False)
    assert cached.missing() == [] and fly.missing() == []
    for index in range(5):
        a, b = fly[index], cached[index]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        assert a["image"].dtype == torch.float32
    stored = cached.cache.load(0)["image"]  # type: ignore[union-attr]
    assert stored.dtype == (torch.uint8 if quantize else torch.float32)
    if quantize:
        assert torch.equal(fly[0]["image"] * 255, (fly[0]["image"] * 255).round())
    # Another seed in the same folder is refused, not mixed in.
    with pytest.raises(ValueError, match=r"rendered with other settings \(differing: \['seed'\]\)"):
        GeneratedDataset(squares, 5, seed=2, quantize=quantize, cache_dir=tmp_path)[0]


def test_a_generated_dataset_pickles_without_its_open_cache(tmp_path: Path) -> None:
    data = GeneratedDataset(ToyDisksGenerator(16), 3, seed=2, cache_dir=tmp_path)
    data.render(progress=False)
    clone = pickle.loads(pickle.dumps(data))
    assert torch.equal(clone[1]["image"], data[1]["image"])
    assert repr(data).startswith("GeneratedDataset(ToyDisksGenerator, length=3, seed=2")


def test_bad_generated_sets_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="length must be an integer >= 1, got 0"):
        GeneratedDataset(squares, 0)
    with pytest.raises(TypeError, match="seed must be an integer, got 'abc'"):
        GeneratedDataset(squares, 2, seed="abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generator must be a callable"):
        GeneratedDataset("squares", 2)
    with pytest.raises(ValueError, match="keys must be a sequence of sample keys"):
        GeneratedDataset(squares, 2, keys="image")
    data = GeneratedDataset(lambda seed, index: torch.zeros(1, 4, 4), 2)
    with pytest.raises(TypeError, match=r"returned Tensor for \(seed=0, index=1\)"):
        data[1]
    with pytest.raises(IndexError, match=r"index must be in \[0, 2\), got 2"):
        data[2]
    with pytest.raises(TypeError, match="index must be an integer, got 1.5"):
        data[1.5]  # type: ignore[index]
    bright = GeneratedDataset(
        lambda seed, index: {"image": torch.full((1, 2, 2), 2.0)}, 1, quantize=True
    )
    with pytest.raises(ValueError, match=r"quantize=True needs images in \[0, 1\]"):
        bright[0]
    with pytest.raises(ValueError, match="render_workers must be an integer >= 0, got -1"):
        GeneratedDataModule(GeneratedDataset(squares, 2), render_workers=-1)


def test_datamodule_renders_every_generated_set_into_its_folder(tmp_path: Path) -> None:
    dm = GeneratedDataModule(
        synthetic={"clean": GeneratedDataset(ToyDisksGenerator(16, "clean"), 6, seed=1)},
        real=GeneratedDataset(ToyDisksGenerator(16, "recorded"), 4, seed=2),
        val={"real": GeneratedDataset(ToyDisksGenerator(16, "recorded"), 2, seed=3)},
        cache_dir=str(tmp_path),
        batch_size=2,
    )
    assert list(dm.generated) == ["synthetic-clean", "real", "val-real"]
    with pytest.raises(RuntimeError, match=r"lacks 6 of 6 samples; call prepare_data\(\) first"):
        dm.setup("fit")
    dm.prepare_data()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real", "synthetic-clean", "val-real"]
    dm.setup("fit")
    assert dm.strategy == "mixed"  # both kinds given
    batch = next(iter(dm.train_dataloader()))
    assert sorted(batch["source"]) == ["real", "synthetic"]


def _signature_names(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}


@pytest.mark.parametrize("module", ["HRTEMDataModule", "PalletDataModule"])
def test_the_cli_sees_every_core_argument_typed(module: str) -> None:
    from lightning.pytorch.cli import LightningArgumentParser

    import lightning_synth.data

    cls = getattr(lightning_synth.data, module)
    parser = LightningArgumentParser()
    parser.add_lightning_class_args(cls, "data", subclass_mode=False)
    options = {
        action.dest.split(".", 1)[1]: action
        for action in parser._actions
        if action.dest.startswith("data.")
    }
    given_by_the_module = {"synthetic", "real", "val", "test"}
    if module == "PalletDataModule":
        given_by_the_module.add("collate_fn")  # detection batches keep images as lists
    core = _signature_names(SynthRealDataModule) - given_by_the_module
    generated = _signature_names(GeneratedDataModule) - given_by_the_module
    own = _signature_names(cls)
    assert core | generated | own <= set(options), sorted((core | generated | own) - set(options))
    assert given_by_the_module.isdisjoint(options)
    assert options["strategy"].help and "bridged" in str(options["strategy"].help)
    assert options["batch_size"].default == 32 and options["cache_dir"].default is None
