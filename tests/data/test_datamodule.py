from __future__ import annotations

from collections import Counter

import pytest

from helpers import IdDataset
from lightning_synth.data import SynthRealDataModule, ToyDisksDataset


def _ids(loader) -> list[tuple[str, int]]:
    return [
        (s, i)
        for batch in loader
        for s, i in zip(batch["source"], batch["id"].tolist(), strict=False)
    ]


def _module(**kwargs) -> SynthRealDataModule:
    kwargs.setdefault("batch_size", 4)
    dm = SynthRealDataModule(IdDataset(40), IdDataset(20, first_id=1000), **kwargs)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize(
    ("strategy", "sources"),
    [("real_only", {"real"}), ("synthetic_only", {"synthetic"}), ("mixed", {"real", "synthetic"})],
)
def test_strategies_serve_their_sources(strategy: str, sources: set[str]) -> None:
    dm = _module(strategy=strategy)
    assert {s for s, _ in _ids(dm.train_dataloader())} == sources
    assert dm.phases == (
        {"real_only": "real", "synthetic_only": "synthetic"}.get(strategy, "mixed"),
    )


def test_ratio_mixing_through_the_datamodule() -> None:
    dm = _module(strategy="mixed", mixing="ratio", synthetic_ratio=0.75)
    for batch in dm.train_dataloader():
        assert Counter(batch["source"]) == {"synthetic": 3, "real": 1}


def test_concat_mixing_is_one_pass_over_the_union() -> None:
    dm = _module(strategy="mixed", mixing="concat")
    ids = [i for _, i in _ids(dm.train_dataloader())]
    assert sorted(ids) == list(range(40)) + list(range(1000, 1020))


def test_fractions_pick_nested_seeded_subsets() -> None:
    def real_ids(fraction: float, seed: int = 0) -> set[int]:
        dm = _module(strategy="real_only", real_fraction=fraction, seed=seed)
        return {i for _, i in _ids(dm.train_dataloader())}

    ten, quarter = real_ids(0.1), real_ids(0.25)
    assert len(ten) == 2 and len(quarter) == 5 and ten < quarter
    assert real_ids(0.25) == quarter
    assert real_ids(0.25, seed=1) != quarter
    dm = _module(strategy="mixed", synthetic_fraction=0.5, real_fraction=0.1)
    assert [len(pool) for pool in dm.pools.values()] == [20, 2]


def test_bridged_phases_and_set_phase() -> None:
    dm = _module(strategy="bridged")
    assert dm.phases == ("synthetic", "real") and dm.phase == "synthetic"
    assert {s for s, _ in _ids(dm.train_dataloader())} == {"synthetic"}
    dm.set_phase("real")
    assert {s for s, _ in _ids(dm.train_dataloader())} == {"real"}
    with pytest.raises(ValueError, match=r"unknown phase 'ood'; this DataModule's phases are"):
        dm.set_phase("ood")
    assert dm.state_dict() == {"phase": "real"}


def test_curriculum_over_named_pools() -> None:
    dm = SynthRealDataModule(
        {"random": IdDataset(8), "realistic": IdDataset(8, first_id=100)},
        IdDataset(8, first_id=1000),
        strategy="bridged",
        phases=["random", "realistic", "mixed", "real"],
        batch_size=4,
    )
    dm.setup("fit")
    expected = {
        "random": {("synthetic", "random")},
        "realistic": {("synthetic", "realistic")},
        "mixed": {("synthetic", "random"), ("synthetic", "realistic"), ("real", "real")},
        "real": {("real", "real")},
    }
    for phase, pools in expected.items():
        dm.set_phase(phase)
        seen = {
            (s, p)
            for b in dm.train_dataloader()
            for s, p in zip(b["source"], b["pool"], strict=False)
        }
        assert seen == pools, phase
    assert "phase 'mixed'" in dm.describe_phase("mixed")


def test_factories_are_called_in_setup_and_eval_sets_are_named() -> None:
    calls = []

    def factory() -> IdDataset:
        calls.append(1)
        return IdDataset(12, first_id=500)

    dm = SynthRealDataModule(
        ToyDisksDataset(8, size=16),
        factory,
        val={"id": IdDataset(6), "ood": IdDataset(5)},
        test=IdDataset(3),
        batch_size=4,
        eval_batch_size=2,
    )
    assert calls == []
    dm.setup("fit")
    assert calls == [1]
    loaders = dm.val_dataloader()
    assert list(loaders) == ["id", "ood"] and len(loaders["ood"]) == 3
    dm.setup("test")
    assert len(dm.test_dataloader().dataset) == 3
    assert SynthRealDataModule(IdDataset(4), IdDataset(4)).val_dataloader() == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"real_fraction": 0.0}, ValueError, r"real_fraction must be in \(0, 1\], got 0.0"),
        (
            {"synthetic_fraction": 1.5},
            ValueError,
            r"synthetic_fraction must be in \(0, 1\], got 1.5",
        ),
        ({"synthetic_ratio": -0.2}, ValueError, r"synthetic_ratio must be in \[0, 1\], got -0.2"),
        ({"synthetic_ratio": 1.2}, ValueError, r"synthetic_ratio must be in \[0, 1\], got 1.2"),
        ({"strategy": "both"}, ValueError, "strategy must be one of"),
        ({"mixing": "interleave"}, ValueError, "mixing must be one of"),
        (
            {"strategy": "bridged", "phases": ["synthetic", "ood"]},
            ValueError,
            "unknown phase 'ood'",
        ),
        ({"strategy": "bridged", "phases": ["real"]}, ValueError, "at least two phases"),
        ({"strategy": "bridged", "phases": "real"}, ValueError, "got the string 'real'"),
        (
            {"strategy": "mixed", "phases": ["real"]},
            ValueError,
            "only used with strategy='bridged'",
        ),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
        ({"num_workers": -1}, ValueError, "num_workers must be an integer >= 0"),
    ],
)
def test_bad_arguments_name_argument_and_value(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SynthRealDataModule(IdDataset(4), IdDataset(4), **kwargs)


def test_missing_or_empty_pools_are_rejected_where_they_enter() -> None:
    with pytest.raises(ValueError, match="needs real data, but real=None"):
        SynthRealDataModule(IdDataset(4), None, strategy="mixed")
    with pytest.raises(ValueError, match=r"real pool 'real' is empty \(len 0\)"):
        SynthRealDataModule(IdDataset(4), [], strategy="mixed")
    dm = SynthRealDataModule(IdDataset(4), {"site_a": lambda: []}, strategy="mixed")
    with pytest.raises(ValueError, match=r"real pool 'site_a' is empty"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="may not be named 'real'"):
        SynthRealDataModule({"real": IdDataset(4)}, IdDataset(4))


def test_toy_dataset_is_deterministic_and_checks_its_arguments() -> None:
    data = ToyDisksDataset(3, size=16, style="recorded", seed=4)
    assert data[1]["image"].equal(ToyDisksDataset(3, size=16, style="recorded", seed=4)[1]["image"])
    assert not data[1]["image"].equal(
        ToyDisksDataset(3, size=16, style="clean", seed=4)[1]["image"]
    )
    with pytest.raises(ValueError, match="style must be one of"):
        ToyDisksDataset(3, style="photo")  # type: ignore[arg-type]
    with pytest.raises(IndexError, match=r"index must be in \[0, 3\), got 3"):
        data[3]


def test_a_non_dict_sample_is_named_even_inside_a_batch() -> None:
    import torch

    samples = [{"image": torch.zeros(1, 2, 2)}] * 3 + [torch.zeros(1, 2, 2)]
    dm = SynthRealDataModule({"mine": samples}, batch_size=4, strategy="synthetic_only")
    dm.setup("fit")
    with pytest.raises(TypeError, match="pool 'mine' returned a Tensor, but samples must be dicts"):
        next(iter(dm.train_dataloader()))


def test_transforms_apply_per_split() -> None:
    def mark(value: float):
        def transform(sample: dict) -> dict:
            return {**sample, "image": sample["image"] * 0 + value}

        return transform

    dm = SynthRealDataModule(
        ToyDisksDataset(4, size=16),
        val=ToyDisksDataset(2, size=16, seed=3),
        batch_size=2,
        train_transforms=mark(1.0),
        eval_transforms=mark(2.0),
    )
    dm.setup("fit")
    assert float(next(iter(dm.train_dataloader()))["image"].max()) == 1.0
    assert float(next(iter(dm.val_dataloader()))["image"].max()) == 2.0
    # A list of albumentations transforms by name is an Augmentation.
    spec = SynthRealDataModule(ToyDisksDataset(4, size=16), train_transforms=["D4"])
    assert repr(spec.train_transform) == "Augmentation([D4])"
    with pytest.raises(
        ValueError, match=r"train_transforms\[0\]: albumentations has no transform named 'D5'"
    ):
        SynthRealDataModule(ToyDisksDataset(4, size=16), train_transforms=["D5"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": "abc"}, "seed must be an integer, got 'abc'"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"batch_size": True}, "batch_size must be a positive integer, got True"),
        ({"batches_per_epoch": 2.5}, "batches_per_epoch must be an integer >= 1 or None, got 2.5"),
        ({"num_workers": -1}, "num_workers must be an integer >= 0, got -1"),
    ],
)
def test_bad_loader_settings_name_themselves(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SynthRealDataModule(ToyDisksDataset(4, size=16), **kwargs)


def test_the_strategy_is_chosen_by_what_is_given() -> None:
    data = ToyDisksDataset(4, size=16)
    assert SynthRealDataModule(data).strategy == "synthetic_only"
    assert SynthRealDataModule(None, data).strategy == "real_only"
    assert SynthRealDataModule(data, data).strategy == "mixed"
    assert SynthRealDataModule(data, data, phases=["synthetic", "real"]).strategy == "bridged"
