"""Synthetic data generators: physics and geometry only, no Lightning.

Every generator is a callable ``(seed, index) -> sample`` (:class:`SampleGenerator`). The
HRTEM simulator (``generators.hrtem``: ase, scipy) and the warehouse renderer
(``generators.warehouse``: numba) load when first used.
"""

from typing import TYPE_CHECKING

from lightning_synth._lazy import lazy_attributes
from lightning_synth.generators.base import SampleGenerator, generator_manifest, stable_seed
from lightning_synth.generators.toy import ToyDisksGenerator, render_disks

if TYPE_CHECKING:
    from lightning_synth.generators.hrtem import HRTEMSimulator, SimulationConfig
    from lightning_synth.generators.warehouse import PalletSceneGenerator, SceneConfig

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "HRTEMSimulator": "lightning_synth.generators.hrtem",
        "SimulationConfig": "lightning_synth.generators.hrtem",
        "PalletSceneGenerator": "lightning_synth.generators.warehouse",
        "SceneConfig": "lightning_synth.generators.warehouse",
    },
    globals(),
)

__all__ = [
    "HRTEMSimulator",
    "PalletSceneGenerator",
    "SampleGenerator",
    "SceneConfig",
    "SimulationConfig",
    "ToyDisksGenerator",
    "generator_manifest",
    "render_disks",
    "stable_seed",
]
