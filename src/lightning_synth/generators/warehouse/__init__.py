"""Warehouse scenes with pallets, rendered by a batched ray caster (torch, or numba on CPUs).

Geometry and rendering only: no Lightning here. ``PalletSceneGenerator`` turns a seed and an
index into a detection sample; ``realism_config`` gives the three training levels;
``standin_config`` the two held-out stand-in domains for real data.
"""

from lightning_synth.generators.warehouse.generator import PALLET_LABEL, PalletSceneGenerator
from lightning_synth.generators.warehouse.geometry import Boxes, BoxList, Camera
from lightning_synth.generators.warehouse.materials import Light, Material
from lightning_synth.generators.warehouse.pallets import add_pallet
from lightning_synth.generators.warehouse.raycast import cast_boxes, cast_room
from lightning_synth.generators.warehouse.realism import REALISM_LEVELS, Realism, realism_config
from lightning_synth.generators.warehouse.render import CameraEffects, Render, Scene, render
from lightning_synth.generators.warehouse.scene import SceneConfig, draw_scene
from lightning_synth.generators.warehouse.standins import (
    DOMAIN_SEEDS,
    STANDIN_DOMAINS,
    StandInDomain,
    standin_config,
)

__all__ = [
    "DOMAIN_SEEDS",
    "PALLET_LABEL",
    "REALISM_LEVELS",
    "STANDIN_DOMAINS",
    "BoxList",
    "Boxes",
    "Camera",
    "CameraEffects",
    "Light",
    "Material",
    "PalletSceneGenerator",
    "Realism",
    "Render",
    "Scene",
    "SceneConfig",
    "StandInDomain",
    "add_pallet",
    "cast_boxes",
    "cast_room",
    "draw_scene",
    "realism_config",
    "render",
    "standin_config",
]
