"""The transfer study's conditions parse as recipe options, and its report reads records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers import load_script

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def transfer():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCHMARKS))  # it imports its sibling, the cross-simulator set
    try:
        yield load_script(BENCHMARKS / "hrtem_transfer.py")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _scores(f1: float) -> dict:
    row = {"f1": f1, "iou": f1 / 2, "precision": f1, "recall": f1, "images": 3}
    return {
        "overall": row,
        "images": 3,
        "size": {"20-30": row},
        "dose": {"100-400": row},
    }


def test_report_tables_read_the_records(transfer, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    for seed, f1 in ((0, 0.9), (1, 0.8)):
        record = {
            "metrics": {f"test/heldout/{m}": f1 for m in ("f1", "iou", "precision", "recall")},
            "wall_seconds": 1200,
            "cross_simulator": {
                "set": transfer.scoring_key(Path("none")),
                "clean": _scores(f1),
                "defects": _scores(f1 - 0.1),
            },
        }
        (tmp_path / f"default-seed{seed}.json").write_text(json.dumps(record))
    # Scores on an earlier version of the set, or segmented another way, are left out.
    stale = {**record, "cross_simulator": {**record["cross_simulator"], "set": {"version": 1}}}
    key = transfer.scoring_key(Path("none"))
    windows = {**record["cross_simulator"], "set": {**key, "normalize_windows": True}}
    (tmp_path / "default-seed3.json").write_text(json.dumps({**record, "cross_simulator": windows}))
    (tmp_path / "default-seed2.json").write_text(json.dumps(stale))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "x",
            "--report",
            "--seeds",
            "0",
            "1",
            "2",
            "3",
            "--records",
            str(tmp_path),
            "--sets",
            "none",
        ],
    )
    transfer.main()
    out = capsys.readouterr().out
    assert "| default | 0.850 +- 0.071 |" in out
    assert "| 0.750 +- 0.071 |" in out  # the defects' F1
    assert "| 20.000 +- 0.000 | 2 |" in out  # minutes, seeds
    assert "| largest particle 20-30 A | 0.850 +- 0.071 |" in out


def test_every_condition_is_a_valid_recipe_command(transfer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from lightning_synth.cli import LightningSynthCLI
    from lightning_synth.data.hrtem import HRTEMDataModule
    from lightning_synth.tasks.segmentation import SegmentationTask

    config = Path(__file__).parents[2] / "recipes" / "configs" / "hrtem_seg.yaml"
    for study in transfer.STUDIES.values():
        for options in study.values():
            cli = LightningSynthCLI(
                SegmentationTask,
                HRTEMDataModule,
                args=["--config", str(config), *options, "--data.cache_dir", str(tmp_path)],
                run=False,
            )
            assert isinstance(cli.datamodule, HRTEMDataModule)


def test_scores_on_another_version_of_the_set_are_dropped_without_a_checkpoint(  # type: ignore[no-untyped-def]
    transfer, tmp_path: Path
) -> None:
    records, scratch, folder = tmp_path / "records", tmp_path / "runs", tmp_path / "set"
    records.mkdir(), scratch.mkdir(), folder.mkdir()
    manifest = {"material": "Au", "seed": 5, "version": transfer.cross.SET_VERSION, "images": []}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    cell = transfer.Cell(transfer.RECIPE, "default", (), 0)
    current = transfer.scoring_key(folder)
    version = transfer.cross.SET_VERSION
    assert current == {"material": "Au", "seed": 5, "version": version, "normalize_windows": False}
    stale = ({**current, "version": 1}, {**current, "normalize_windows": True})
    for version, kept in ((current, True), *((key, False) for key in stale)):
        record = {"metrics": {}, "cross_simulator": {"set": version, "clean": {}, "defects": {}}}
        (records / f"{cell.key}.json").write_text(json.dumps(record))
        result = transfer.add_cross_scores(cell, scratch, records, folder)
        assert ("cross_simulator" in result) is kept
        assert ("cross_simulator" in json.loads((records / f"{cell.key}.json").read_text())) is kept
