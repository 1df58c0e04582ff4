"""The detector learning-curve benchmark runs at tiny size and records its curves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import load_script, tiny_pallet_options

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "pallet_learning_curves.py"


@pytest.fixture(scope="module")
def curves():  # type: ignore[no-untyped-def]
    return load_script(SCRIPT)


def test_a_tiny_run_records_its_curve_and_reports_it(curves, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    options = [
        o for o in tiny_pallet_options(tmp_path) if "root_dir" not in o and "save_dir" not in o
    ]
    arguments = ["--variants", "stride8", "--steps", "4", "--every", "2"]
    folders = ["--root", str(tmp_path / "runs"), "--records", str(tmp_path / "records")]
    curves.main([*arguments, *folders, *options])
    record = json.loads((tmp_path / "records" / "stride8-seed0.json").read_text())
    assert [point["epoch"] for point in record["curve"]] == [0, 1]
    assert all("val/id/map" in point and point["train_seconds"] > 0 for point in record["curve"])
    table = capsys.readouterr().out
    assert "| stride8 | 0 |" in table
    # Reported again from the record alone, without its run folder.
    import shutil

    shutil.rmtree(tmp_path / "runs")
    curves.main([*arguments, *folders, "--report"])
    assert capsys.readouterr().out.count("| stride8 | 0 |") == 2


def test_steps_must_be_whole_validation_intervals(curves) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="multiple of --every, got 5 and 2"):
        curves.cells(["stride8"], [0], 5, 2)
