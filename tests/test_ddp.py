"""DDP with 2 CPU processes: the train sampler shards every epoch itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("ddp_fit.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(tmp_path: Path, mode: str) -> list[dict]:
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(SCRIPT.parent),
    }
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads((tmp_path / f"{mode}-rank{r}.json").read_text()) for r in range(2)]
    assert all(record["world_size"] == 2 for record in records)
    return records


def _epoch(records: list[dict], epoch: int) -> list[list[tuple[str, int]]]:
    return [[tuple(pair) for pair in record["seen"][str(epoch)]] for record in records]


@pytest.mark.timeout(300)
def test_ratio_mixing_shards_disjointly_with_equal_lengths(tmp_path: Path) -> None:
    records = _run(tmp_path, "mixed")
    orders = []
    for epoch in range(3):
        ranks = _epoch(records, epoch)
        assert len(ranks[0]) == len(ranks[1]) == 32  # 8 batches of 4 on each rank
        ids = [{i for _, i in rank} for rank in ranks]
        assert not ids[0] & ids[1]  # disjoint
        assert ids[0] | ids[1] == set(range(32)) | set(range(1000, 1032))  # full coverage
        for rank in ranks:  # every batch holds 2 synthetic + 2 real
            for start in range(0, len(rank), 4):
                assert Counter(s for s, _ in rank[start : start + 4]) == {"synthetic": 2, "real": 2}
        orders.append([i for _, i in ranks[0]])
    assert orders[0] != orders[1] != orders[2]  # the epoch number reshuffles


@pytest.mark.timeout(300)
def test_bridged_switch_happens_on_both_ranks_at_the_same_epoch(tmp_path: Path) -> None:
    records = _run(tmp_path, "bridged")
    assert records[0]["switches"] == records[1]["switches"]
    assert [s["epoch"] for s in records[0]["switches"]] == [2]
    for epoch, kind, ids in ((0, "synthetic", range(32)), (2, "real", range(1000, 1032))):
        ranks = _epoch(records, epoch)
        assert len(ranks[0]) == len(ranks[1])
        assert {s for rank in ranks for s, _ in rank} == {kind}
        seen = [{i for _, i in rank} for rank in ranks]
        assert not seen[0] & seen[1] and seen[0] | seen[1] == set(ids)


@pytest.mark.timeout(300)
def test_concat_pads_the_last_batches_from_the_next_pass(tmp_path: Path) -> None:
    records = _run(tmp_path, "concat")
    ranks = _epoch(records, 0)
    # 60 samples, batch 4, 2 ranks: 15 batches rounded up to 16, so 4 samples repeat.
    assert len(ranks[0]) == len(ranks[1]) == 32
    union = [i for rank in ranks for _, i in rank]
    assert set(union) == set(range(37)) | set(range(1000, 1023))
    assert len(union) - len(set(union)) == 4
