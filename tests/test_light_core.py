"""``import lightning_synth`` loads the core only; generators load when used."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "numba",
    "ase",
    "h5py",
    "wandb",
    "segmentation_models_pytorch",
    "timm",
    "faster_coco_eval",
    "albumentations",
    "cv2",
    "lightning_synth.generators.hrtem",
    "lightning_synth.generators.warehouse",
    "lightning_synth.tasks.segmentation",
    "lightning_synth.tasks.detection",
)

PROBE = """
import json, sys
import lightning  # what Lightning itself loads (matplotlib and scipy among it) is not ours
before = set(sys.modules)
import lightning_synth
from lightning_synth import BridgedTransfer, SynthRealDataModule, GeneratedDataModule
from lightning_synth.data import MixingSampler, SegmentationFolder
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _loaded(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_core_imports_no_generator_and_no_heavy_dependency() -> None:
    loaded = _loaded(PROBE)
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY]
    assert heavy == [], heavy
    assert "matplotlib" not in loaded  # not loaded by us beyond what Lightning loads


def test_generators_load_when_used() -> None:
    code = PROBE.replace(
        "print(json.dumps",
        "lightning_synth.PalletSceneGenerator; lightning_synth.HRTEMSimulator\nprint(json.dumps",
    )
    loaded = _loaded(code)
    assert "lightning_synth.generators.warehouse" in loaded
    assert "lightning_synth.generators.hrtem" in loaded and "ase" in loaded


def test_lazy_names_are_listed_and_unknown_names_fail() -> None:
    import pytest

    import lightning_synth
    import lightning_synth.data

    assert "PalletDataModule" in dir(lightning_synth.data)
    assert set(lightning_synth.__all__) <= set(dir(lightning_synth))
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        lightning_synth.Nope  # noqa: B018


def test_a_missing_optional_package_names_its_extra() -> None:
    from lightning_synth._lazy import missing_extra

    error = missing_extra(ModuleNotFoundError("No module named 'numba'", name="numba"), "X")
    assert str(error) == "X needs numba: pip install 'lightning_synth[pallets]'"
    other = ModuleNotFoundError("No module named 'nothing'", name="nothing")
    assert missing_extra(other, "X") is other
