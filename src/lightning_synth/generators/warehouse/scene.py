"""Drawing warehouse scenes: layout, pallets and loads, racks, distractors, lights, camera.

:class:`SceneConfig` holds every knob; :func:`draw_scene` turns a config and a seeded
``numpy.random.Generator`` into a :class:`~lightning_synth.generators.warehouse.render.Scene`.
Nothing here renders: it only decides what is where and how it looks. The realism levels
(``realistic``, ``half_realistic``, ``random``) are presets of these knobs, in
:mod:`lightning_synth.generators.warehouse.realism`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

import numpy as np

from lightning_synth.generators.warehouse.geometry import BoxList, Camera
from lightning_synth.generators.warehouse.materials import (
    PATTERNS,
    Light,
    Material,
    kelvin_to_rgb,
)
from lightning_synth.generators.warehouse.pallets import (
    PALLET_KINDS,
    PALLET_SIZES,
    add_carton_load,
    add_pallet,
    add_wrapped_load,
    front_yaw,
)
from lightning_synth.generators.warehouse.render import CameraEffects, Scene

Range = tuple[float, float]
Appearance = Literal["realistic", "random"]
Layout = Literal["racks", "open"]
LightModel = Literal["ceiling", "random"]


@dataclass(frozen=True)
class SceneConfig:
    """Every knob of a warehouse scene; ranges are sampled uniformly per image.

    Settings added later with a default that keeps earlier scenes are listed in
    ``LATER_SETTINGS`` (left out of cache manifests while at their default).

    Args:
        width: Image width [pixels].
        height: Image height [pixels].
        layout: ``"racks"`` (rows of pallet racks along aisles, pallets on the beams and on
            the floor) or ``"open"`` (pallets and stacks on an open floor).
        floor_pallets: Range of pallet stacks on the floor in view.
        rack_bays: Range of rack bays per row (``racks`` layout).
        rack_fill: Share of rack positions holding a pallet.
        stack_height: Range of pallets per floor stack (empty pallets stack).
        load_share: Share of pallets (tops of stacks) carrying a load.
        wrapped_share: Share of loads wrapped in film (the rest are cartons).
        pallet_appearance: ``"realistic"`` wood or ``"random"`` materials for pallets.
        load_appearance: Materials of loads.
        surroundings: Materials of floor, walls, ceiling and racks.
        wood_age: Range of pallet wood from fresh pine (0) to weathered grey (1).
        pallet_kinds: Kinds of pallet a scene's pallet types are drawn from, uniformly (see
            :data:`~lightning_synth.generators.warehouse.pallets.PALLET_KINDS`: ``eur``,
            ``industrial``, ``half``, ``stringer``, ``plastic``). Plastic ones get a plastic
            material when pallets look realistic. The default, EUR pallets only, draws
            nothing for it and leaves scenes as before it existed.
        painted_pallet_share: Share of a scene's realistic wooden pallet types painted (blue
            or red, as pooled pallets are). At 0 (the default) nothing is drawn for it.
        floor_color: Base colour of a realistic concrete floor (linear RGB).
        wall_color: Base colour of realistic walls (linear RGB).
        rack_style: Realistic racks ``"painted"`` (blue frames, orange beams),
            ``"galvanised"`` (grey steel) or ``"any"`` (painted 70% of the time).
        distractors: Range of distractor objects (crates, bins, boxes, random cuboids).
        distractor_tilt: Distractors get random 3D rotations (else they stand upright).
        lights: Range of point lights.
        light_model: ``"ceiling"`` (a grid under the ceiling, white at ``light_kelvin``) or
            ``"random"`` (anywhere in the room, any colour).
        light_kelvin: Colour temperature range of ceiling lights [K].
        light_intensity: Intensity range per light.
        ambient: Ambient light range (grey level).
        room_size: Length and width ranges of the hall [m].
        room_height: Hall height range [m].
        camera_height: Camera height range at forklift level [m].
        ceiling_camera_share: Share of images seen from a ceiling camera instead.
        ceiling_camera_height: Ceiling camera height range [m].
        camera_distance: Range of distances from the camera to the pallet it aims at [m].
        floor_view_share: Share of images whose camera aims at a stack on the floor from
            ``floor_view_distance`` away (a forklift approaching a load, a person with a
            handheld camera): a few large pallets in view rather than racks full of small
            ones. At 0 (the default) no image draws it and scenes are as before it existed.
        floor_view_distance: Range of distances of those floor views [m].
        max_pitch: Largest angle [degrees] a forklift-height camera looks up or down (the
            aim point moves to respect it); ceiling cameras look 10-75 degrees down.
        fov: Horizontal field of view range [degrees].
        yaw_jitter: Standard deviation of pallet yaw around the aligned directions [rad].
        aim_jitter: Standard deviation of the aim point around the chosen pallet [m].
        blur: Range of camera blur [pixels].
        noise: Range of sensor noise.
        vignetting: Range of vignetting.
        jpeg_quality: JPEG quality range, or None for none.
        min_visible_fraction: Pallets less visible than this are dropped from the targets
            (and listed in the sample's metadata as ignored).
        min_box_side: Pallets whose box is narrower or lower than this [pixels] are dropped
            too.
    """

    LATER_SETTINGS: ClassVar[tuple[str, ...]] = (
        "floor_view_share",
        "floor_view_distance",
        "pallet_kinds",
        "painted_pallet_share",
    )

    width: int = 640
    height: int = 480
    layout: Layout = "racks"
    floor_pallets: tuple[int, int] = (2, 6)
    rack_bays: tuple[int, int] = (3, 6)
    rack_fill: float = 0.6
    stack_height: tuple[int, int] = (1, 4)
    load_share: float = 0.6
    wrapped_share: float = 0.4
    pallet_appearance: Appearance = "realistic"
    load_appearance: Appearance = "realistic"
    surroundings: Appearance = "realistic"
    wood_age: Range = (0.0, 1.0)
    pallet_kinds: tuple[str, ...] = ("eur",)
    painted_pallet_share: float = 0.0
    floor_color: tuple[float, float, float] = (0.55, 0.55, 0.53)
    wall_color: tuple[float, float, float] = (0.78, 0.78, 0.76)
    rack_style: Literal["painted", "galvanised", "any"] = "any"
    distractors: tuple[int, int] = (0, 4)
    distractor_tilt: bool = False
    lights: tuple[int, int] = (2, 4)
    light_model: LightModel = "ceiling"
    light_kelvin: Range = (3500.0, 6500.0)
    light_intensity: Range = (40.0, 90.0)
    ambient: Range = (0.15, 0.3)
    room_size: tuple[Range, Range] = ((30.0, 50.0), (16.0, 30.0))
    room_height: Range = (8.0, 12.0)
    camera_height: Range = (1.0, 2.5)
    ceiling_camera_share: float = 0.15
    ceiling_camera_height: Range = (4.0, 7.0)
    camera_distance: Range = (2.5, 9.0)
    floor_view_share: float = 0.0
    floor_view_distance: Range = (1.2, 4.0)
    max_pitch: float = 30.0
    fov: Range = (55.0, 80.0)
    yaw_jitter: float = 0.15
    aim_jitter: float = 0.6
    blur: Range = (0.0, 0.6)
    noise: Range = (0.0, 0.015)
    vignetting: Range = (0.0, 0.2)
    jpeg_quality: tuple[int, int] | None = None
    min_visible_fraction: float = 0.25
    min_box_side: float = 4.0

    def __post_init__(self) -> None:
        # YAML and the command line give lists; one kind may come as a string.
        kinds = self.pallet_kinds
        object.__setattr__(
            self, "pallet_kinds", (kinds,) if isinstance(kinds, str) else tuple(kinds)
        )
        for item in fields(self):
            _check_numbers(item.name, getattr(self, item.name))
        if self.width < 16 or self.height < 16:
            msg = f"width and height must be >= 16 pixels, got {self.width} x {self.height}"
            raise ValueError(msg)
        choices = {"layout": ("racks", "open"), "rack_style": ("painted", "galvanised", "any")}
        for name in (
            "layout",
            "pallet_appearance",
            "load_appearance",
            "surroundings",
            "rack_style",
        ):
            allowed = choices.get(name, ("realistic", "random"))
            if getattr(self, name) not in allowed:
                msg = f"{name} must be one of {allowed}, got {getattr(self, name)!r}"
                raise ValueError(msg)
        if self.light_model not in ("ceiling", "random"):
            msg = f"light_model must be 'ceiling' or 'random', got {self.light_model!r}"
            raise ValueError(msg)
        for item in fields(self):
            value = getattr(self, item.name)
            if (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, int | float) for v in value)
            ) and value[0] > value[1]:
                msg = f"{item.name} must be a range (low, high) with low <= high, got {value}"
                raise ValueError(msg)
        unknown = [kind for kind in self.pallet_kinds if kind not in PALLET_KINDS]
        if not self.pallet_kinds or unknown:
            msg = f"pallet_kinds must be kinds of {PALLET_KINDS}, got {self.pallet_kinds!r}"
            raise ValueError(msg)
        shares = ("rack_fill", "load_share", "wrapped_share", "ceiling_camera_share")
        for name in (*shares, "floor_view_share", "painted_pallet_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                msg = f"{name} must be in [0, 1], got {getattr(self, name)}"
                raise ValueError(msg)
        if not 0.0 <= self.min_visible_fraction <= 1.0:
            msg = f"min_visible_fraction must be in [0, 1], got {self.min_visible_fraction}"
            raise ValueError(msg)
        if self.floor_pallets[0] < 0 or self.stack_height[0] < 1 or self.lights[0] < 1:
            msg = "floor_pallets must be >= 0, stack_height >= 1 and lights >= 1"
            raise ValueError(msg)
        # Lengths, heights and angles that must be positive, and ranges that may start at 0.
        positive = (
            "camera_distance",
            "floor_view_distance",
            "camera_height",
            "ceiling_camera_height",
            "room_height",
            "fov",
            "light_intensity",
        )
        for name in positive:
            low = getattr(self, name)[0]
            if not low > 0:
                msg = f"{name} must be a range of positive values, got {getattr(self, name)}"
                raise ValueError(msg)
        for name in ("blur", "noise", "vignetting", "ambient", "wood_age", "distractors"):
            if getattr(self, name)[0] < 0:
                msg = f"{name} must be a range of values >= 0, got {getattr(self, name)}"
                raise ValueError(msg)
        if not 0 < self.fov[1] < 180:
            msg = f"fov must lie in (0, 180) degrees, got {self.fov}"
            raise ValueError(msg)
        if self.min_box_side < 0:
            msg = f"min_box_side must be >= 0 pixels, got {self.min_box_side}"
            raise ValueError(msg)


def scene_config(preset: Mapping[str, Any], **overrides: Any) -> SceneConfig:
    """A :class:`SceneConfig` of a preset's fields with ``overrides`` applied.

    Raises:
        ValueError: For a field SceneConfig does not have.
    """
    names = {item.name for item in fields(SceneConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        msg = f"unknown SceneConfig fields {unknown}; the fields are {sorted(names)}"
        raise ValueError(msg)
    return SceneConfig(**{**preset, **overrides})


def _check_numbers(name: str, value: object) -> None:
    """A TypeError naming the field when a number (or a range of numbers) is a string."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if isinstance(item, tuple):
            _check_numbers(name, item)
        elif isinstance(item, str) and name not in _TEXT_FIELDS:
            msg = f"{name} must be a number or a range of numbers, got {value!r}"
            raise TypeError(msg)


_TEXT_FIELDS = frozenset(
    {
        "layout",
        "pallet_appearance",
        "load_appearance",
        "surroundings",
        "rack_style",
        "light_model",
        "pallet_kinds",
    }
)


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def _integer(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _jitter(rng: np.random.Generator, color: tuple[float, float, float], amount: float) -> tuple:
    scaled = np.asarray(color) * rng.uniform(1 - amount, 1 + amount) + rng.normal(0, amount / 4, 3)
    return tuple(float(c) for c in np.clip(scaled, 0.0, 1.0))


class _Palette:
    """Materials of one scene; ``add`` returns the index of a new material."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.materials: list[Material] = []

    def add(self, material: Material) -> int:
        self.materials.append(material)
        return len(self.materials) - 1

    def random(self) -> int:
        """A domain-randomised material: any colour, any pattern, any scale."""
        rng = self.rng
        return self.add(
            Material(
                color=tuple(float(c) for c in rng.random(3)),  # type: ignore[arg-type]
                pattern=str(rng.choice(PATTERNS)),
                second_color=tuple(float(c) for c in rng.random(3)),  # type: ignore[arg-type]
                scale=float(10 ** rng.uniform(-1.7, -0.3)),
                contrast=float(rng.uniform(0.0, 1.0)),
                specular=float(rng.uniform(0.0, 0.6)),
                shininess=float(rng.uniform(4, 64)),
            )
        )

    def wood(self, age: Range) -> int:
        rng = self.rng
        fresh = np.array([0.78, 0.62, 0.42])
        aged = np.array([0.5, 0.47, 0.42])
        color = tuple(fresh + (aged - fresh) * _uniform(rng, age))
        return self.add(
            Material(
                _jitter(rng, color, 0.08),
                "wood",
                scale=float(rng.uniform(0.05, 0.12)),
                contrast=float(rng.uniform(0.25, 0.45)),
            )
        )

    def plastic(self) -> int:
        """Moulded plastic: black, grey or blue mostly, now and then red or green."""
        rng = self.rng
        bases = ((0.04, 0.04, 0.045), (0.3, 0.31, 0.32), (0.07, 0.18, 0.5), (0.5, 0.08, 0.06))
        base = bases[int(rng.choice(len(bases), p=(0.35, 0.3, 0.25, 0.1)))]
        return self.add(
            Material(
                _jitter(rng, base, 0.04),
                "plain",
                contrast=float(rng.uniform(0.02, 0.08)),
                specular=float(rng.uniform(0.2, 0.5)),
                shininess=float(rng.uniform(16, 64)),
            )
        )

    def paint(self) -> int:
        """Painted wood: blue or red paint with the grain showing faintly."""
        rng = self.rng
        base = (0.08, 0.22, 0.55) if rng.random() < 0.6 else (0.6, 0.1, 0.07)
        return self.add(
            Material(
                _jitter(rng, base, 0.06),
                "wood",
                scale=float(rng.uniform(0.05, 0.12)),
                contrast=float(rng.uniform(0.08, 0.2)),
                specular=float(rng.uniform(0.05, 0.2)),
            )
        )

    def cardboard(self) -> int:
        rng = self.rng
        tape = (0.8, 0.7, 0.5) if rng.random() < 0.6 else (0.85, 0.85, 0.82)
        return self.add(
            Material(
                _jitter(rng, (0.62, 0.47, 0.3), 0.1),
                "cardboard",
                second_color=tape,
                scale=float(rng.uniform(0.08, 0.15)),
                contrast=0.15,
                specular=0.05,
            )
        )

    def film(self) -> int:
        rng = self.rng
        return self.add(
            Material(
                _jitter(rng, (0.72, 0.75, 0.78), 0.08),
                "noise",
                second_color=_jitter(rng, (0.55, 0.5, 0.45), 0.15),
                scale=float(rng.uniform(0.15, 0.4)),
                contrast=0.25,
                specular=0.5,
                shininess=40.0,
            )
        )


def draw_scene(config: SceneConfig, rng: np.random.Generator) -> Scene:
    """A random scene from ``config``; the same generator state gives the same scene.

    Example:
        >>> scene = draw_scene(SceneConfig(width=64, height=48), np.random.default_rng(0))
        >>> len(scene.outlines) > 0, scene.camera.width
        (True, 64)
    """
    palette = _Palette(rng)
    boxes = BoxList()
    outlines = BoxList()
    length = _uniform(rng, config.room_size[0])
    breadth = _uniform(rng, config.room_size[1])
    hall_height = _uniform(rng, config.room_height)
    room = (-2.0, -breadth / 2, length, breadth / 2, hall_height)

    room_materials = _room_materials(palette, config)

    # A few types of pallets per scene (fresh, aged, another supplier's, another kind),
    # shared by stacks: (board material, block material, kind).
    def pallet_kind() -> str:  # draws nothing unless there is a choice
        kinds = config.pallet_kinds
        return kinds[int(rng.integers(len(kinds)))] if len(kinds) > 1 else kinds[0]

    types: list[tuple[int, int, str]] = []
    if config.pallet_appearance == "random":
        types = [(palette.random(), palette.random(), pallet_kind()) for _ in range(4)]
    else:
        for _ in range(int(rng.integers(1, 4))):
            wood = palette.wood(config.wood_age)
            blocks = wood if rng.random() < 0.6 else palette.wood(config.wood_age)
            kind = pallet_kind()
            if kind == "plastic":
                wood = blocks = palette.plastic()
            elif config.painted_pallet_share > 0 and rng.random() < config.painted_pallet_share:
                wood = blocks = palette.paint()
            types.append((wood, blocks, kind))

    def pallet_type() -> tuple[int, int, str]:
        return types[int(rng.integers(len(types)))]

    load_materials = (
        [palette.cardboard() for _ in range(3)]
        if config.load_appearance == "realistic"
        else [palette.random() for _ in range(3)]
    )
    film = palette.film() if config.load_appearance == "realistic" else palette.random()

    def add_load(top: np.ndarray, yaw: float, space: float, deck: tuple[float, float]) -> None:
        if rng.random() >= config.load_share or space < 0.3:
            return
        if rng.random() < config.wrapped_share:
            height = min(space, float(rng.uniform(0.6, 1.6)))
            add_wrapped_load(boxes, top, yaw, height, film, deck)
        else:
            layers = max(1, min(int(rng.integers(1, 5)), int(space / 0.45)))
            add_carton_load(boxes, top, yaw, rng, load_materials, layers, deck)

    def add_stack(position: np.ndarray, yaw: float, count: int, space: float) -> float:
        """A stack of ``count`` pallets of one type, maybe loaded; returns a pallet's height."""
        wood, blocks, kind = pallet_type()
        length, width, height = PALLET_SIZES[kind]
        z = float(position[2])
        for _ in range(count):
            instance = len(outlines)
            outline = add_pallet(
                boxes, (position[0], position[1], z), yaw, wood, blocks, instance, kind
            )
            outlines.add(outline[:3], outline[3:], yaw=yaw)
            z += height
        top = np.array([position[0], position[1], z])
        add_load(top, yaw, space - (z - position[2]), (length, width))
        return height

    # The camera stands in an aisle along x, looking roughly along +x.
    aisle_y = float(rng.uniform(-breadth / 4, breadth / 4))
    targets: list[np.ndarray] = []
    floor_targets: list[np.ndarray] = []
    if config.layout == "racks":
        rack_color = _rack_materials(palette, config, rng)
        for side in (-1, 1):
            row_y = aisle_y + side * float(rng.uniform(1.8, 2.6))
            targets += _add_rack_row(
                boxes, rng, config, row_y, side, rack_color, add_stack, hall_height
            )
    # Pallet stacks on the open floor, ahead of the camera.
    for _ in range(_integer(rng, config.floor_pallets)):
        x = float(rng.uniform(3.0, min(length - 2.0, 16.0 if config.layout == "racks" else 12.0)))
        # In an aisle between racks, or spread over the open floor ahead of the camera.
        half_aisle = 1.2 if config.layout == "racks" else 0.4 * (x - 1.0)
        y = aisle_y + float(rng.uniform(-half_aisle, half_aisle))
        yaw = front_yaw(math.pi, rng, config.yaw_jitter)
        if config.layout == "open" and rng.random() < 0.3:
            yaw = float(rng.uniform(0, 2 * math.pi))
        count = _integer(rng, config.stack_height)
        height = add_stack(np.array([x, y, 0.0]), yaw, count, 2.0)
        floor_targets.append(np.array([x, y, 0.1 + height * count / 2]))
    targets += floor_targets
    _add_distractors(boxes, rng, config, palette, room, aisle_y)

    camera = _draw_camera(config, rng, targets, aisle_y, room, floor_targets)
    lights, ambient = _draw_lights(config, rng, room, camera)
    boxes.drop_near(camera.position, margin=0.3)
    effects = CameraEffects(
        exposure=float(rng.uniform(0.38, 0.52)),
        blur=_uniform(rng, config.blur),
        noise=_uniform(rng, config.noise),
        vignetting=_uniform(rng, config.vignetting),
        jpeg_quality=_integer(rng, config.jpeg_quality) if config.jpeg_quality else None,
    )
    meta: dict[str, Any] = {
        "layout": config.layout,
        "pallets": len(outlines),
        "cuboids": len(boxes),
        "camera_position": list(camera.position),
        "fov": math.degrees(2 * math.atan(camera.width / 2 / camera.focal)),
        "lights": len(lights),
    }
    return Scene(
        boxes=boxes.build(),
        materials=palette.materials,
        room=room,
        room_materials=room_materials,
        lights=lights,
        ambient=ambient,
        camera=camera,
        outlines=outlines.build(),
        effects=effects,
        meta=meta,
    )


def _room_materials(palette: _Palette, config: SceneConfig) -> tuple[int, int, int, int, int, int]:
    rng = palette.rng
    if config.surroundings != "realistic":
        wall = palette.random()
        return (wall, palette.random(), wall, palette.random(), palette.random(), palette.random())
    floor = palette.add(
        Material(
            _jitter(rng, config.floor_color, 0.12),
            "concrete",
            scale=float(rng.uniform(0.3, 1.0)),
            contrast=float(rng.uniform(0.15, 0.35)),
            specular=float(rng.uniform(0.0, 0.15)),
        )
    )
    wall = palette.add(
        Material(
            _jitter(rng, config.wall_color, 0.1),
            "stripes",
            second_color=_jitter(rng, tuple(0.9 * c for c in config.wall_color), 0.1),  # type: ignore[arg-type]
            scale=float(rng.uniform(0.8, 1.5)),
            contrast=0.1,
        )
    )
    ceiling = palette.add(Material((0.3, 0.3, 0.32), "plain", contrast=0.05))
    return (wall, wall, wall, wall, floor, ceiling)


def _rack_materials(palette: _Palette, config: SceneConfig, rng: np.random.Generator) -> tuple:
    if config.surroundings != "realistic":
        return palette.random(), palette.random()
    painted = {"painted": True, "galvanised": False}.get(config.rack_style, rng.random() < 0.7)
    if painted:  # the usual blue frames and orange beams
        frame = palette.add(Material(_jitter(rng, (0.08, 0.2, 0.55), 0.15), specular=0.3))
        beam = palette.add(Material(_jitter(rng, (0.9, 0.42, 0.08), 0.1), specular=0.3))
    else:  # galvanised
        frame = beam = palette.add(
            Material(_jitter(rng, (0.6, 0.62, 0.64), 0.1), "noise", (0.5, 0.5, 0.52), 0.2, 0.1, 0.4)
        )
    return frame, beam


def _add_rack_row(
    boxes: BoxList,
    rng: np.random.Generator,
    config: SceneConfig,
    row_y: float,
    side: int,
    materials: tuple[int, int],
    add_stack: Any,
    hall_height: float,
) -> list[np.ndarray]:
    """A row of pallet racks along x; its front faces the aisle. Returns aim points."""
    frame, beam = materials
    bay, depth = float(rng.uniform(2.6, 2.9)), 1.1
    levels = [0.0] + [float(z) for z in np.cumsum(rng.uniform(1.4, 1.9, 3))]
    levels = [z for z in levels if z < hall_height - 1.5]
    bays = _integer(rng, config.rack_bays)
    start = float(rng.uniform(2.0, 5.0))
    front = row_y - side * depth / 2  # aisle side of the row
    top = levels[-1] + 0.2
    targets = []
    sides = np.array([row_y - depth / 2, row_y + depth / 2])
    # Uprights at every bay boundary, front and back.
    grid_x, grid_y = np.meshgrid(start + bay * np.arange(bays + 1), sides, indexing="ij")
    count = grid_x.size
    centers = np.stack([grid_x.ravel(), grid_y.ravel(), np.full(count, top / 2)], axis=1)
    boxes.add_many(centers, np.tile([0.08, 0.08, top], (count, 1)), np.eye(3), frame, -1)
    # Beams per bay, level and side, in three pieces: tighter screen rectangles, less work
    # for the ray caster.
    piece = (bay - 0.08) / 3
    if len(levels) > 1:
        index, height, across, part = np.meshgrid(
            np.arange(bays), np.array(levels[1:]), sides, np.arange(3), indexing="ij"
        )
        cx = start + index * bay + 0.04 + (part + 0.5) * piece
        centers = np.stack([cx.ravel(), across.ravel(), height.ravel() - 0.06], axis=1)
        sizes = np.tile([piece, 0.05, 0.12], (len(centers), 1))
        boxes.add_many(centers, sizes, np.eye(3), beam, -1)
    for b in range(bays):
        x0 = start + b * bay
        for z in levels:
            for slot in range(2):
                if rng.random() >= config.rack_fill:
                    continue
                x = x0 + (slot + 0.5) * bay / 2
                # Pallets sit on the beams with their 800 mm side to the aisle.
                yaw = math.pi / 2 + float(rng.normal(0.0, config.yaw_jitter / 4))
                y = row_y + float(rng.normal(0.0, 0.03))
                space = (levels[levels.index(z) + 1] - z - 0.2) if z != levels[-1] else 1.5
                add_stack(np.array([x, y, z]), yaw, 1, space)
                targets.append(np.array([x, front, z + 0.1]))
    return targets


def _add_distractors(
    boxes: BoxList,
    rng: np.random.Generator,
    config: SceneConfig,
    palette: _Palette,
    room: tuple[float, ...],
    aisle_y: float,
) -> None:
    realistic = config.surroundings == "realistic"
    for _ in range(_integer(rng, config.distractors)):
        size = rng.uniform(0.2, 1.5, 3)
        x = float(rng.uniform(2.0, min(room[2] - 1.0, 18.0)))
        y = aisle_y + float(rng.uniform(-4.0, 4.0))
        material = palette.random() if not realistic else palette.cardboard()
        if config.distractor_tilt:
            rotation = _random_rotation(rng)
            z = float(rng.uniform(0.3, 3.0))
            boxes.add((x, y, z), tuple(size), material=material, rotation=rotation)
        else:
            boxes.add(
                (x, y, size[2] / 2),
                tuple(size),
                yaw=float(rng.uniform(0, math.pi)),
                material=material,
            )


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
        ]
    )


def _draw_camera(
    config: SceneConfig,
    rng: np.random.Generator,
    targets: list[np.ndarray],
    aisle_y: float,
    room: tuple[float, ...],
    floor_targets: list[np.ndarray] | None = None,
) -> Camera:
    """A camera in the aisle, aimed near a random pallet (or down the aisle).

    A floor view (``floor_view_share``) aims at a floor stack from close by, never from the
    ceiling; with the share at 0 nothing is drawn for it.
    """
    floor_view = bool(
        floor_targets and config.floor_view_share > 0 and rng.random() < config.floor_view_share
    )
    pool = floor_targets if floor_view and floor_targets else targets
    target = pool[int(rng.integers(len(pool)))].copy() if pool else np.array([8.0, aisle_y, 0.5])
    target = target + rng.normal(0.0, config.aim_jitter, 3) * np.array([1.0, 1.0, 0.5])
    target[2] = max(target[2], 0.05)
    distance = _uniform(rng, config.floor_view_distance if floor_view else config.camera_distance)
    ceiling = (rng.random() < config.ceiling_camera_share) and not floor_view
    height = _uniform(rng, config.ceiling_camera_height if ceiling else config.camera_height)
    height = min(height, room[4] - 0.5)
    heading = math.pi + float(rng.normal(0.0, 0.35))  # from the target back towards -x
    reach = math.sqrt(max(distance**2 - (height - target[2]) ** 2, 0.25))
    x = float(np.clip(target[0] + reach * math.cos(heading), room[0] + 0.5, room[2] - 0.5))
    y = float(np.clip(target[1] + reach * math.sin(heading), room[1] + 0.5, room[3] - 0.5))
    if config.layout == "racks":
        y = float(np.clip(y, aisle_y - 1.0, aisle_y + 1.0))  # stay in the aisle
    if abs(x - target[0]) + abs(y - target[1]) < 0.3:
        x -= 1.0
    # Keep the pitch plausible: a forklift camera looks about level, a ceiling one down, and
    # one close to a stack on the floor down at it (up to 60 degrees, as over a load).
    low, high = (-75.0, -10.0) if ceiling else (-config.max_pitch, config.max_pitch)
    if floor_view:
        low = min(low, -60.0)
    horizontal = math.hypot(target[0] - x, target[1] - y)
    pitch = math.degrees(math.atan2(target[2] - height, horizontal))
    if not low <= pitch <= high:
        target[2] = height + horizontal * math.tan(math.radians(min(max(pitch, low), high)))
    fov = _uniform(rng, config.fov)
    roll = float(rng.normal(0.0, 0.02))
    return Camera.look_at(
        (x, y, height), tuple(target), fov, config.width, config.height, roll=roll
    )


def _draw_lights(
    config: SceneConfig, rng: np.random.Generator, room: tuple[float, ...], camera: Camera
) -> tuple[list[Light], tuple[float, float, float]]:
    count = _integer(rng, config.lights)
    cx, cy, _ = camera.position
    lights = []
    for index in range(count):
        intensity = _uniform(rng, config.light_intensity)
        if config.light_model == "ceiling":
            # A grid of fittings every ~6 m under the ceiling; the ones ahead of the camera.
            x = cx + 6.0 * (index + float(rng.uniform(0.2, 1.2)))
            y = cy + float(rng.choice([-3.0, 3.0])) + float(rng.normal(0.0, 0.5))
            z = room[4] - 0.3
            color = kelvin_to_rgb(_uniform(rng, config.light_kelvin))
            intensity *= (room[4] / 8.0) ** 2  # higher halls have stronger fittings
        else:
            x = float(rng.uniform(room[0] + 0.5, min(room[2] - 0.5, cx + 20)))
            y = float(rng.uniform(room[1] + 0.5, room[3] - 0.5))
            z = float(rng.uniform(1.0, room[4] - 0.2))
            color = tuple(float(c) for c in 0.3 + 0.7 * rng.random(3))  # type: ignore[assignment]
        x = float(np.clip(x, room[0] + 0.2, room[2] - 0.2))
        y = float(np.clip(y, room[1] + 0.2, room[3] - 0.2))
        cone = 2.0 if config.light_model == "ceiling" else None
        lights.append(Light((x, y, z), color, intensity, cone))
    level = _uniform(rng, config.ambient)
    if config.light_model == "random":
        tint = 0.5 + 0.5 * rng.random(3)
        ambient = tuple(float(level * t) for t in tint)
    else:
        ambient = (level, level, level)
    return lights, ambient  # type: ignore[return-value]
