from __future__ import annotations

import numpy as np
import pytest

from lightning_synth.data import MixingSampler, cumulative_share


def _batches(sampler: MixingSampler) -> np.ndarray:
    return np.array(list(sampler)).reshape(-1, sampler.batch_size)


@pytest.mark.parametrize(("ratio", "batch_size"), [(0.5, 8), (0.25, 16), (0.3, 10), (0.2, 64)])
def test_ratio_is_exact_when_integral_else_floor_or_ceil(ratio: float, batch_size: int) -> None:
    sampler = MixingSampler([200, 300], batch_size, ratio=ratio)
    batches = _batches(sampler)
    synthetic_per_batch = (batches < 200).sum(axis=1)
    target = ratio * batch_size
    assert set(synthetic_per_batch.tolist()) <= {int(np.floor(target)), int(np.ceil(target))}
    if target.is_integer():
        assert set(synthetic_per_batch.tolist()) == {int(target)}
    # The running share never drifts more than half a sample.
    running = np.cumsum(synthetic_per_batch)
    expected = target * np.arange(1, len(batches) + 1)
    assert np.abs(running - expected).max() <= 0.5 + 1e-9


def test_cumulative_share_matches_total() -> None:
    assert cumulative_share(0.2, 64, 5)[-1] == 64  # 12.8 per batch, 64 over five batches
    assert np.diff(cumulative_share(0.2, 64, 5)).tolist() == [13, 13, 12, 13, 13]


def test_epoch_covers_every_pool_once_and_cycles_the_smaller() -> None:
    # 40 synthetic at 2 per batch need 20 batches; 12 real at 6 per batch need 2: real cycles.
    sampler = MixingSampler([40, 12], 8, ratio=0.25)
    batches = _batches(sampler)
    assert len(batches) == 20
    synthetic = batches[batches < 40]
    real = batches[batches >= 40]
    assert sorted(synthetic.tolist()) == list(range(40))  # each exactly once
    # Real is drawn in passes: every pass of 12 is a permutation.
    assert len(real) == 120
    for start in range(0, 120, 12):
        assert sorted(real[start : start + 12].tolist()) == list(range(40, 52))


def test_ratio_extremes_draw_one_stream_only() -> None:
    only_real = _batches(MixingSampler([0, 10], 4, ratio=0.0))
    assert (only_real >= 0).all() and len(only_real) == 3
    only_synthetic = _batches(MixingSampler([10, 5], 4, ratio=1.0))
    assert (only_synthetic < 10).all()


def test_concat_is_one_shuffled_pass_completed_from_the_next() -> None:
    sampler = MixingSampler([7, 6], 4)
    indices = list(sampler)
    assert len(indices) == 16  # ceil(13 / 4) batches
    assert sorted(indices[:13]) == list(range(13))
    assert indices != sorted(indices)
    dropped = MixingSampler([7, 6], 4, drop_last=True)
    assert len(list(dropped)) == 12


def test_same_seed_and_epoch_give_the_same_plan_and_epochs_differ() -> None:
    first = MixingSampler([30, 20], 5, ratio=0.4, seed=11)
    second = MixingSampler([30, 20], 5, ratio=0.4, seed=11)
    assert list(first) == list(second)
    second.set_epoch(1)
    assert list(first) != list(second)
    assert list(MixingSampler([30, 20], 5, ratio=0.4, seed=12)) != list(first)


@pytest.mark.parametrize("ratio", [None, 0.25])
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_get_disjoint_equal_shares_that_cover_the_epoch(
    ratio: float | None, world: int
) -> None:
    sizes, batch = [37, 23], 4
    shards = [
        list(MixingSampler(sizes, batch, ratio=ratio, num_replicas=world, rank=rank, seed=5))
        for rank in range(world)
    ]
    assert len({len(shard) for shard in shards}) == 1
    plan = MixingSampler(sizes, batch, ratio=ratio, num_replicas=world, seed=5).global_batches()
    # Rank r holds global batches r, r + W, ...: together exactly the whole plan.
    for rank, shard in enumerate(shards):
        assert shard == plan[rank::world].reshape(-1).tolist()
    union = [index for shard in shards for index in shard]
    assert sorted(union) == sorted(plan.reshape(-1).tolist())
    assert set(union) == set(range(sum(sizes)))
    # Within the first pass of each stream no index is given to two ranks.
    if ratio is None:
        first_pass = plan.reshape(-1)[: sum(sizes)]
        assert len(set(first_pass.tolist())) == sum(sizes)


def test_batches_per_epoch_fixes_the_length_on_every_rank() -> None:
    for rank in range(2):
        sampler = MixingSampler(
            [5, 5], 4, ratio=0.5, num_replicas=2, rank=rank, batches_per_epoch=7
        )
        assert len(sampler) == len(list(sampler)) == 28


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stream_sizes": [], "batch_size": 4}, "stream_sizes must hold one or two"),
        ({"stream_sizes": [3, -1], "batch_size": 4}, "stream_sizes must hold one or two"),
        ({"stream_sizes": [3], "batch_size": 0}, "batch_size must be a positive integer, got 0"),
        (
            {"stream_sizes": [3, 3], "batch_size": 4, "ratio": 1.5},
            r"ratio must be in \[0, 1\], got 1.5",
        ),
        ({"stream_sizes": [3, 3], "batch_size": 4, "ratio": -0.1}, r"ratio must be in \[0, 1\]"),
        ({"stream_sizes": [3], "batch_size": 4, "ratio": 0.5}, "exactly two streams"),
        ({"stream_sizes": [0, 3], "batch_size": 4, "ratio": 0.5}, "first stream is empty"),
        ({"stream_sizes": [0], "batch_size": 4}, "at least one sample"),
        ({"stream_sizes": [3], "batch_size": 4, "rank": 2, "num_replicas": 2}, "rank must be in"),
        (
            {"stream_sizes": [3], "batch_size": 4, "batches_per_epoch": 0},
            "batches_per_epoch must be",
        ),
        ({"stream_sizes": [3], "batch_size": 4, "drop_last": True}, "an epoch would hold no batch"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MixingSampler(**kwargs)
