"""Stand-ins for a user's real pallet images: two fixed held-out domains, ``id`` and ``ood``.

Until a user brings real images (in COCO format), the detection recipe tests on these. They
are rendered by the same ray caster as the training data, so they are **not** real images:
results on them say how well a model transfers between rendered domains, not to a camera.
They differ from all three training levels on purpose, in ways a second site would:

- ``id`` (the site the real training images come from): one warehouse with painted racks,
  a light concrete floor, warm 3000-3800 K fittings, pallets of a narrow band of wood tones,
  a forklift camera at 1.2-2.0 m, and a camera that compresses to JPEG (quality 75-90) with
  some sensor noise. The ``real`` training pool is drawn from this domain too (other seeds).
- ``ood`` (another site, other lighting): galvanised racks, a dark green-grey epoxy floor,
  weathered pallets, dim cold 7000-9000 K light with little ambient, a camera higher up
  (2.5-4.5 m, or on the ceiling a third of the time), more noise, blur and compression.

Each domain's images come from fixed seeds (``domain_seed``), so the test sets are the same
in every run. These settings live here, apart from the training levels in
:mod:`~lightning_synth.generators.warehouse.realism`, so that nothing tunes the one to the
other by accident.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from lightning_synth.generators.warehouse.scene import SceneConfig, scene_config

StandInDomain: TypeAlias = Literal["id", "ood"]
STANDIN_DOMAINS: tuple[str, ...] = ("id", "ood")
#: Base seeds of the domains; sample ``i`` of a split uses ``(base, split, i)``.
DOMAIN_SEEDS: dict[str, int] = {"id": 1_000_003, "ood": 2_000_003}

_DOMAINS: dict[str, dict[str, Any]] = {
    "id": {
        "layout": "racks",
        "wood_age": (0.2, 0.5),
        "floor_color": (0.62, 0.6, 0.56),
        "wall_color": (0.82, 0.8, 0.74),
        "rack_style": "painted",
        "light_kelvin": (3000.0, 3800.0),
        "lights": (2, 4),
        "camera_height": (1.2, 2.0),
        "ceiling_camera_share": 0.0,
        "noise": (0.01, 0.025),
        "blur": (0.3, 0.8),
        "jpeg_quality": (75, 90),
    },
    "ood": {
        "layout": "racks",
        "wood_age": (0.7, 1.0),
        "floor_color": (0.22, 0.3, 0.26),
        "wall_color": (0.55, 0.58, 0.62),
        "rack_style": "galvanised",
        "light_kelvin": (7000.0, 9000.0),
        "light_intensity": (20.0, 45.0),
        "ambient": (0.03, 0.1),
        "lights": (1, 3),
        "camera_height": (2.5, 4.5),
        "ceiling_camera_share": 0.33,
        "ceiling_camera_height": (5.0, 7.0),
        "noise": (0.025, 0.05),
        "blur": (0.6, 1.4),
        "vignetting": (0.2, 0.4),
        "jpeg_quality": (55, 75),
    },
}


def standin_config(domain: StandInDomain, **overrides: Any) -> SceneConfig:
    """The :class:`SceneConfig` of a stand-in domain (``overrides``: e.g. the image size).

    Example:
        >>> standin_config("ood", width=320, height=240).rack_style
        'galvanised'
    """
    if domain not in _DOMAINS:
        msg = f"domain must be one of {STANDIN_DOMAINS}, got {domain!r}"
        raise ValueError(msg)
    return scene_config(_DOMAINS[domain], **overrides)
