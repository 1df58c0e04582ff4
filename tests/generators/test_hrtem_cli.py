"""The command that simulates one structure file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lightning_synth.generators.hrtem.cli import main
from lightning_synth.generators.hrtem.structures import fcc_particle


def test_structure_file_to_image_mask_and_metadata(tmp_path: Path) -> None:
    structure = tmp_path / "gold.xyz"
    fcc_particle(9.0, "Au").write(structure)
    out = tmp_path / "run" / "gold"
    record = main(
        [
            str(structure),
            "--out",
            str(out),
            "--sampling",
            "0.1",
            "--defocus",
            "100",
            "--cs=-1e5",
            "--dose",
            "400",
        ]
    )
    image, mask = np.load(out.with_suffix(".npy")), np.load(tmp_path / "run" / "gold_mask.npy")
    assert image.shape == mask.shape and image.dtype == np.float32
    assert mask.sum() > 0 and mask.mean() < 0.6
    assert (tmp_path / "run" / "gold.png").is_file() and (
        tmp_path / "run" / "gold_mask.png"
    ).is_file()
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["optics"]["cs"] == -1e5 and saved["detector"]["dose"] == 400.0
    assert record["atoms"] == saved["atoms"] > 0


def test_missing_or_unreadable_structure_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="structure file not found: .*nothing.xyz"):
        main([str(tmp_path / "nothing.xyz"), "--out", str(tmp_path / "x")])
    bad = tmp_path / "bad.xyz"
    bad.write_text("not a structure\n")
    with pytest.raises(SystemExit, match="cannot read .*bad.xyz as a structure"):
        main([str(bad), "--out", str(tmp_path / "x")])
