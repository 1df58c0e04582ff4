"""The three realism levels of the synthetic training data, as presets of :class:`SceneConfig`.

- ``realistic``: a plausible warehouse. Rows of pallet racks along aisles, pallets of EUR
  proportions in wood of plausible tones, on the beams and in stacks on the floor, with
  carton or film-wrapped loads; a concrete floor, panelled walls; white ceiling fittings
  of 3500-6500 K shining down; a camera at forklift height (now and then from the ceiling).
- ``half_realistic``: the real objects, randomized surroundings. Pallets and loads look as
  in ``realistic``, but floor, walls and racks get random colours and patterns, the layout
  is an open floor with many distractors, and lights of any colour stand anywhere.
- ``random``: domain randomization. Everything, pallets included, gets random colours and
  patterns; distractors float at random 3D orientations; pallets are turned any way; lights
  and camera vary widely.

Every knob behind a level is a field of :class:`SceneConfig`; ``realism_config(level,
**overrides)`` gives a level's config with any of them changed.

Example:
    >>> config = realism_config("random", width=320, height=240)
    >>> config.pallet_appearance, config.width
    ('random', 320)
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypeAlias

from lightning_synth.generators.warehouse.scene import SceneConfig, scene_config

Realism: TypeAlias = Literal["realistic", "half_realistic", "random"]
REALISM_LEVELS: tuple[str, ...] = ("realistic", "half_realistic", "random")

_PRESETS: dict[str, dict[str, Any]] = {
    "realistic": {},
    "half_realistic": {
        "layout": "open",
        "floor_pallets": (4, 12),
        "surroundings": "random",
        "distractors": (5, 14),
        "light_model": "random",
        "lights": (1, 4),
        "light_intensity": (20.0, 120.0),
        "ambient": (0.05, 0.4),
        "camera_height": (0.5, 3.5),
        "ceiling_camera_share": 0.2,
        "fov": (45.0, 90.0),
    },
    "random": {
        "layout": "open",
        "floor_pallets": (4, 12),
        "pallet_appearance": "random",
        "load_appearance": "random",
        "surroundings": "random",
        "distractors": (10, 25),
        "distractor_tilt": True,
        "light_model": "random",
        "lights": (1, 4),
        "light_intensity": (10.0, 150.0),
        "ambient": (0.02, 0.5),
        "camera_height": (0.3, 4.0),
        "ceiling_camera_share": 0.25,
        "fov": (40.0, 95.0),
        "yaw_jitter": math.pi,
        "blur": (0.0, 1.2),
        "noise": (0.0, 0.04),
    },
}


def realism_config(level: Realism, **overrides: Any) -> SceneConfig:
    """The :class:`SceneConfig` of a realism level, with ``overrides`` applied.

    Raises:
        ValueError: For an unknown level or field.
    """
    if level not in _PRESETS:
        msg = f"realism must be one of {REALISM_LEVELS}, got {level!r}"
        raise ValueError(msg)
    return scene_config(_PRESETS[level], **overrides)
