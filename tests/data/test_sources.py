from __future__ import annotations

import itertools

import pytest
import torch

from lightning_synth.data import (
    Pool,
    PooledDataset,
    collate_samples,
    count_sources,
    nested_subset,
    subset_size,
)
from lightning_synth.data.sources import check_fraction, resolve_dataset, stable_seed


def test_nested_subsets_are_nested_seeded_and_sized() -> None:
    fractions = [0.05, 0.1, 0.25, 0.5, 1.0]
    subsets = [set(nested_subset(160, fraction, seed=3)) for fraction in fractions]
    assert [len(s) for s in subsets] == [8, 16, 40, 80, 160]
    for smaller, larger in itertools.pairwise(subsets):
        assert smaller < larger
    assert nested_subset(160, 0.1, seed=3) == nested_subset(160, 0.1, seed=3)
    assert nested_subset(160, 0.1, seed=3) != nested_subset(160, 0.1, seed=4)


def test_subset_size_rounds_half_up_and_keeps_one() -> None:
    assert subset_size(10, 0.25) == 3
    assert subset_size(10, 0.24) == 2
    assert subset_size(5, 0.01) == 1
    assert subset_size(7, 1.0) == 7


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.01, float("nan"), True])
def test_bad_fraction_names_argument_and_value(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"real_fraction must be in \(0, 1\]"):
        check_fraction("real_fraction", fraction)


def test_stable_seed_is_process_independent() -> None:
    # A literal value: CRC32-based, so it must never change between runs or versions.
    assert stable_seed(0, "real") == stable_seed(0, "real")
    assert stable_seed(1, "real") != stable_seed(0, "real")
    assert 0 <= stable_seed(2**40, "x", "y") < 2**63


def _pool(name: str, kind: str, n: int, start: int = 0) -> Pool:
    data = [{"image": torch.zeros(1), "id": start + i} for i in range(n)]
    return Pool(name, kind, data, list(range(n)))  # type: ignore[arg-type]


def test_pooled_dataset_lays_pools_end_to_end_with_provenance() -> None:
    pooled = PooledDataset([_pool("random", "synthetic", 3), _pool("real", "real", 2, start=10)])
    assert len(pooled) == 5
    samples = [pooled[i] for i in range(5)]
    assert [s["id"] for s in samples] == [0, 1, 2, 10, 11]
    assert [s["source"] for s in samples] == ["synthetic"] * 3 + ["real"] * 2
    assert [s["pool"] for s in samples] == ["random"] * 3 + ["real"] * 2
    with pytest.raises(IndexError, match="index must be in"):
        pooled[5]


def test_pooled_dataset_does_not_mutate_the_pool_samples() -> None:
    pool = _pool("real", "real", 2)
    PooledDataset([pool])[0]
    assert "source" not in pool.dataset[0]


def test_pooled_dataset_rejects_non_dict_samples_and_conflicting_source() -> None:
    with pytest.raises(TypeError, match="samples must be dicts"):
        PooledDataset([Pool("real", "real", [(torch.zeros(1), 0)], [0])])[0]  # type: ignore[list-item]
    tagged = Pool("s", "synthetic", [{"image": 0, "source": "real"}], [0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="already says source='real'"):
        PooledDataset([tagged])[0]


def test_empty_pool_and_empty_dataset_are_rejected() -> None:
    with pytest.raises(ValueError, match="pool 'real' .* is empty"):
        PooledDataset([Pool("real", "real", [], [])])
    with pytest.raises(ValueError, match=r"synthetic is empty \(len 0\)"):
        resolve_dataset("synthetic", [])
    with pytest.raises(TypeError, match="must be a map-style dataset"):
        resolve_dataset("real", lambda: 42)


def test_count_sources() -> None:
    assert count_sources({"source": ["real", "real", "synthetic"]}) == {"real": 2, "synthetic": 1}
    assert count_sources({"image": 0}) == {}


@pytest.mark.parametrize(
    "pools",
    [
        [("synthetic", "synthetic", 5)],
        [("synthetic", "synthetic", 5), ("real", "real", 4)],
        [("random", "synthetic", 5), ("site_a", "real", 4)],
        [("random", "synthetic", 5), ("realistic", "synthetic", 3), ("real", "real", 4)],
    ],
)
@pytest.mark.parametrize("batch_provenance", [True, False])
def test_batched_fetch_collates_like_single_fetches(pools: list, batch_provenance: bool) -> None:
    start, built = 0, []
    for name, kind, n in pools:
        built.append(_pool(name, kind, n, start=start))
        start += 100
    pooled = PooledDataset(built, batch_provenance=batch_provenance)
    indices = [len(pooled) - 1, 0, 3, *range(len(pooled) - 1)]
    batched = collate_samples(pooled.__getitems__(indices))
    single = collate_samples([pooled[i] for i in indices])
    assert batched["id"].tolist() == single["id"].tolist()
    assert batched["source"] == single["source"] and batched["pool"] == single["pool"]
    assert batched["pool"] is not batched["source"]
    with pytest.raises(IndexError, match=r"index must be in \[0, \d+\), got -1"):
        pooled.__getitems__([0, -1])
