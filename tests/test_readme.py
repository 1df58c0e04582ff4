"""The README's "add your own generator" examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).parents[1] / "README.md"


def _examples() -> list[str]:
    text = README.read_text()
    section = text.split("## Add your own generator", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_examples_are_short() -> None:
    renderer, coco = _examples()
    assert len(renderer.strip().splitlines()) < 40
    assert len(coco.strip().splitlines()) < 40


def test_your_own_renderer_trains_through_bridged_transfer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(_examples()[0], namespace)
    trainer, datamodule = namespace["trainer"], namespace["datamodule"]
    assert trainer.current_epoch == 2 and datamodule.phase == "real"
    assert (tmp_path / "cache" / "squares" / "synthetic-squares" / "manifest.json").is_file()
    # The renderer follows the protocol: a sample depends on (seed, index) only.
    renderer = namespace["SquareRenderer"]()
    assert torch.equal(renderer(3, 5)["image"], renderer(3, 5)["image"])


def test_a_folder_of_coco_renders_is_a_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_synth.data import rendered_pallets, write_coco
    from lightning_synth.generators.warehouse import realism_config

    monkeypatch.chdir(tmp_path)
    config = realism_config("random", width=64, height=48)
    samples = [rendered_pallets(config, 3, seed)[i] for seed in (1,) for i in range(3)]
    write_coco(samples, "output/coco_data", annotation_name="coco_annotations.json")
    for name in ("train", "val"):
        write_coco(samples, "site", annotation_name=f"{name}.json")
    namespace: dict = {}
    exec(_examples()[1], namespace)
    datamodule = namespace["datamodule"]
    datamodule.setup("fit")
    assert datamodule.strategy == "mixed" and list(datamodule.pools) == ["blenderproc", "real"]
