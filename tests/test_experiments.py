"""Study cells: a run is recorded once and not run again."""

from __future__ import annotations

import json
from pathlib import Path

from lightning_synth.experiments import Cell, run_cell

FAKE_RECIPE = """
import json, sys
from pathlib import Path
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
root = Path(args["trainer.default_root_dir"]) / "lightning_logs" / "version_0"
root.mkdir(parents=True)
calls = Path(args["calls"])
calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
(root / "results.json").write_text(json.dumps({"test/x/map": float(args["seed_everything"]) / 10}))
"""


def test_a_cell_runs_once_and_its_record_resumes_a_study(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.py"
    recipe.write_text(FAKE_RECIPE)
    calls = tmp_path / "calls.txt"
    cell = Cell(recipe, "mixed", (f"--calls={calls}",), seed=3)
    scratch, records = tmp_path / "runs", tmp_path / "records"
    assert run_cell(cell, scratch, records, quiet=True) == {"test/x/map": 0.3}
    record = json.loads((records / "mixed-seed3.json").read_text())
    assert record["metrics"] == {"test/x/map": 0.3} and record["seed"] == 3
    assert "--data.seed=3" in record["recipe_options"]
    assert not any("cache_dir" in option for option in record["recipe_options"])
    # A second call, or a call on another machine with only the records, runs nothing.
    assert run_cell(cell, scratch, records) == {"test/x/map": 0.3}
    assert run_cell(cell, tmp_path / "elsewhere", records) == {"test/x/map": 0.3}
    assert calls.read_text() == "x"


def test_an_unfinished_run_starts_afresh_and_report_runs_nothing(tmp_path: Path) -> None:
    from lightning_synth.experiments import run_cells

    recipe = tmp_path / "recipe.py"
    recipe.write_text(FAKE_RECIPE)
    calls = tmp_path / "calls.txt"
    scratch, records = tmp_path / "runs", tmp_path / "records"
    cells = [Cell(recipe, "bridged", (f"--calls={calls}",), seed=s) for s in (1, 2)]
    killed = scratch / "bridged-seed1"
    (killed / "lightning_logs" / "version_0").mkdir(parents=True)  # no results.json
    (killed / "cache").mkdir()
    assert run_cells(cells[:1], scratch, records) == [{"test/x/map": 0.1}]
    assert (killed / "cache").is_dir()
    assert run_cells(cells, scratch, records, report=True) == [{"test/x/map": 0.1}]
    assert calls.read_text() == "x"


def test_cells_can_share_a_cache(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.py"
    recipe.write_text(FAKE_RECIPE + 'Path(args["data.cache_dir"], args["calls"][-5:]).touch()\n')
    scratch, records = tmp_path / "runs", tmp_path / "records"
    (scratch / "shared").mkdir(parents=True)
    for name in ("a", "b"):
        calls = tmp_path / f"{name}.txt"
        run_cell(Cell(recipe, name, (f"--calls={calls}",), cache="shared"), scratch, records)
    assert sorted(p.name for p in (scratch / "shared").iterdir()) == ["a.txt", "b.txt"]
    assert not (scratch / "a-seed0" / "cache").exists()


def test_a_record_made_with_other_options_is_refused(tmp_path: Path) -> None:
    import pytest

    recipe = tmp_path / "recipe.py"
    recipe.write_text(FAKE_RECIPE)
    calls = tmp_path / "calls.txt"
    scratch, records = tmp_path / "runs", tmp_path / "records"
    run_cell(Cell(recipe, "default", (f"--calls={calls}",), seed=0), scratch, records)
    # The condition changed (e.g. the recipe's default moved): the old record measured
    # something else and must not stand for the new condition.
    changed = Cell(recipe, "default", (f"--calls={calls}", "--data.train_crop=128"), seed=0)
    with pytest.raises(ValueError, match=r"default-seed0\.json was run with the options"):
        run_cell(changed, scratch, records)
    assert calls.read_text() == "x"
