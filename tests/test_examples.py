"""The toy example that `make demo-toy` runs, at a tiny size."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import load_script

DEMO = Path(__file__).parents[1] / "examples" / "bridged_transfer_toy.py"


@pytest.fixture(scope="module")
def demo():  # type: ignore[no-untyped-def]
    return load_script(DEMO)


def test_bridged_demo_reports_each_phase(demo) -> None:  # type: ignore[no-untyped-def]
    result = demo.run("bridged", epochs=2, batches_per_epoch=2)
    assert result["pools"] == {"synthetic": 400, "real": 20}
    assert result["history"] == [{"synthetic": 32, "real": 0}, {"synthetic": 0, "real": 32}]
    lines = demo.describe(result)
    assert "phase 'synthetic'  epochs 0-0:    32 synthetic +     0 real" in lines[0]
    assert "phase 'real'       epochs 1-1:     0 synthetic +    32 real" in lines[1]
    assert 0.0 <= result["test_iou"] <= 1.0


def test_mixed_demo_splits_every_batch(demo) -> None:  # type: ignore[no-untyped-def]
    result = demo.run("mixed", epochs=1, batches_per_epoch=2)
    assert result["history"] == [{"synthetic": 16, "real": 16}]
