"""The local grid runner: N at a time, resumable, a failed cell does not stop the others;
one CSV row per cell and seed, a Markdown table and plots."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from lightning_synth.experiments.grid import cell_name, main, parse_only

FAKE_RECIPE = """
import json, sys
from pathlib import Path
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
calls = Path(args["trainer.default_root_dir"]).parent / "calls.txt"
with calls.open("a") as stream:  # appends are atomic: two runs at a time lose no count
    stream.write("x")
if args["data.strategy"] == "broken":
    sys.exit("this strategy breaks")
root = Path(args["trainer.logger.init_args.save_dir"]) / "lightning_logs" / "version_0"
root.mkdir(parents=True)
fraction, seed = float(args["data.real_fraction"]), int(args["seed_everything"])
bonus = 0.2 if args["data.strategy"] == "mixed" else 0.0
metrics = {"test/id/map": fraction + bonus + seed / 100, "test/ood/map": fraction / 2 + seed / 100}
(root / "results.json").write_text(json.dumps(metrics))
"""


def _spec(tmp_path: Path, strategies: list[str]) -> Path:
    recipe = tmp_path / "fake_recipe.py"
    recipe.write_text(FAKE_RECIPE)
    spec = {
        "program": str(recipe),
        "method": "grid",
        "metric": {"name": "val/ood/map", "goal": "maximize"},
        "command": ["${env}", "${interpreter}", "${program}", "${args}"],
        "parameters": {
            "data.strategy": {"values": strategies},
            "data.real_fraction": {"values": [0.1, 0.5]},
            "seed": {"values": [0, 1]},
        },
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_a_grid_runs_two_at_a_time_writes_its_results_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = _spec(tmp_path, ["real_only", "mixed"])
    out, records = tmp_path / "runs", tmp_path / "records"
    arguments = [str(spec), "--out", str(out), "--records", str(records), "--jobs", "2"]
    assert main(arguments) == 0
    assert (out / "calls.txt").read_text() == "x" * 8
    with (records / "results.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 8  # one per cell and seed
    assert set(rows[0]) == {
        "data.strategy",
        "data.real_fraction",
        "seed",
        "test/id/map",
        "test/ood/map",
        "wall_seconds",
    }
    for row in rows:
        bonus = 0.2 if row["data.strategy"] == "mixed" else 0.0
        expected = float(row["data.real_fraction"]) + bonus + int(row["seed"]) / 100
        assert float(row["test/id/map"]) == pytest.approx(expected)
    table = (records / "results.md").read_text().splitlines()
    assert table[0] == "| strategy | real_fraction | test/id/map | test/ood/map | seeds |"
    assert "| mixed | 0.5 | 0.705 +- 0.007 | 0.255 +- 0.007 | 2 |" in table
    assert len(table) == 2 + 4
    for name in ("test_id_map-vs-real_fraction", "test_ood_map-vs-real_fraction", "id-vs-ood-map"):
        assert (records / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Resumes: nothing runs again, with or without --report.
    assert main(arguments) == 0 and main([*arguments, "--report"]) == 0
    assert (out / "calls.txt").read_text() == "x" * 8
    assert "8 of 8 runs recorded" in capsys.readouterr().out


def test_a_failed_cell_is_named_and_the_others_are_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = _spec(tmp_path, ["mixed", "broken"])
    out, records = tmp_path / "runs", tmp_path / "records"
    arguments = [str(spec), "--out", str(out), "--records", str(records), "--only", "seed=0"]
    assert main(arguments) == 1
    output = capsys.readouterr()
    assert "failed: strategy=broken,real_fraction=0.1-seed0" in output.out
    assert sorted(p.name for p in records.glob("*.json")) == [
        "strategy=mixed,real_fraction=0.1-seed0.json",
        "strategy=mixed,real_fraction=0.5-seed0.json",
    ]
    log = out / "strategy=broken,real_fraction=0.1-seed0.log"
    assert "this strategy breaks" in log.read_text()


def test_bad_selections_are_refused(tmp_path: Path) -> None:
    spec = _spec(tmp_path, ["mixed"])
    base = [str(spec), "--out", str(tmp_path / "o"), "--records", str(tmp_path / "r")]
    with pytest.raises(SystemExit):
        main([*base, "--only", "data.realism=random"])
    with pytest.raises(SystemExit):
        main([*base, "--only", "seed=7"])
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_only(["seed"])
    with pytest.raises(ValueError, match="data.simulation.dose"):
        parse_only(["data.simulation.dose=[100, 1200"])
    assert parse_only(["data.real_fraction=0.1,1.0"]) == {"data.real_fraction": [0.1, 1.0]}
    dose = parse_only(["data.simulation.dose=null,[100, 1200]"])
    assert dose == {"data.simulation.dose": [None, [100, 1200]]}
    assert cell_name({"data.simulation.dose": [50, 300]}) == "dose=50_300"
