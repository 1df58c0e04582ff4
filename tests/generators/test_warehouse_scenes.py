"""Warehouse scenes: determinism, realism levels that differ as intended, stand-in domains."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_synth.generators.warehouse import (
    REALISM_LEVELS,
    PalletSceneGenerator,
    SceneConfig,
    draw_scene,
    realism_config,
    standin_config,
)
from lightning_synth.generators.warehouse.scene import _Palette

SMALL = {"width": 96, "height": 72}


def test_same_seed_and_index_give_the_same_sample() -> None:
    generator = PalletSceneGenerator(realism_config("realistic", **SMALL))
    again = PalletSceneGenerator(realism_config("realistic", **SMALL))
    first, second = generator(4, 7), again(4, 7)
    assert torch.equal(first["image"], second["image"])
    assert torch.equal(first["boxes"], second["boxes"])
    assert not torch.equal(first["image"], generator(4, 8)["image"])
    other_seed = PalletSceneGenerator(realism_config("realistic", **SMALL))
    assert not torch.equal(first["image"], other_seed(5, 7)["image"])


def test_sample_contract_and_visibility_filter() -> None:
    config = realism_config("realistic", **SMALL, min_visible_fraction=0.5)
    generator = PalletSceneGenerator(config, masks=True)
    kept = dropped = 0
    for index in range(6):
        sample = generator(0, index)
        boxes = sample["boxes"]
        assert boxes.dtype == torch.float32 and boxes.shape[1] == 4
        assert sample["labels"].tolist() == [1] * len(boxes)
        assert bool((sample["visible_fraction"] >= 0.5).all())
        assert bool((boxes[:, 2] > boxes[:, 0]).all()) and bool((boxes[:, 3] > boxes[:, 1]).all())
        assert sample["masks"].shape == (len(boxes), 72, 96)
        for mask, box in zip(sample["masks"], boxes.tolist(), strict=True):
            rows, columns = torch.nonzero(mask, as_tuple=True)
            assert [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1] == box
        assert all(
            f < 0.5 or min(b[2] - b[0], b[3] - b[1]) < 4
            for f, b in zip(
                sample["meta"]["crowd_visible_fraction"],
                sample["meta"]["crowd_boxes"],
                strict=True,
            )
        )
        assert sample["meta"]["crowd_labels"] == [1] * len(sample["meta"]["crowd_boxes"])
        kept += len(boxes)
        dropped += len(sample["meta"]["crowd_boxes"])
    assert kept > 0 and dropped > 0


def _colour_statistics(level: str, images: int = 6) -> dict[str, float]:
    """Chromaticity statistics of pallet pixels and of everything else, over a few images.

    Chromaticity (colour over its sum) leaves out brightness, which the auto-exposure sets.
    """
    generator = PalletSceneGenerator(realism_config(level, width=128, height=96), masks=True)
    pallet_colours, background_spreads = [], []
    for index in range(images):
        sample = generator(1, index)
        image = sample["image"]
        inside = (
            sample["masks"].any(0)
            if len(sample["masks"])
            else torch.zeros(96, 128, dtype=torch.bool)
        )
        for mask in sample["masks"]:
            if int(mask.sum()) > 20:
                mean = image[:, mask].mean(1)
                pallet_colours.append(mean / mean.sum().clamp_min(1e-6))
        background = image[:, ~inside]
        chroma = background / background.sum(0, keepdim=True).clamp_min(1e-6)
        background_spreads.append(float(chroma.std(1).sum()))
    assert len(pallet_colours) >= 5, "too few visible pallets to compare"
    return {
        # How much pallets differ in colour from each other.
        "pallet_spread": float(torch.stack(pallet_colours).std(0).sum()),
        # How varied the colours of the surroundings are within an image.
        "background_spread": float(np.mean(background_spreads)),
    }


def test_realism_levels_differ_in_the_intended_way() -> None:
    # Measured at the time of writing (seed 1, 6 images of 128 x 96): pallet spread 0.037,
    # 0.057, 0.122 and background spread 0.070, 0.178, 0.187 for the three levels.
    stats = {level: _colour_statistics(level) for level in REALISM_LEVELS}
    # Realistic and half-realistic pallets are wood (half-realistic lights may be coloured);
    # random pallets take any colour and pattern.
    assert stats["random"]["pallet_spread"] > 2 * stats["realistic"]["pallet_spread"]
    assert stats["random"]["pallet_spread"] > 1.5 * stats["half_realistic"]["pallet_spread"]
    # Surroundings: a warehouse at the realistic level, randomized at the other two.
    for level in ("half_realistic", "random"):
        assert stats[level]["background_spread"] > 2 * stats["realistic"]["background_spread"]


def test_random_materials_cover_the_patterns() -> None:
    palette = _Palette(np.random.default_rng(0))
    patterns = {palette.materials[palette.random()].pattern for _ in range(200)}
    assert len(patterns) == 7


def test_standin_domains_differ_from_the_training_levels() -> None:
    identical = standin_config("id", **SMALL)
    other = standin_config("ood", **SMALL)
    assert identical.jpeg_quality is not None and other.jpeg_quality is not None
    for level in REALISM_LEVELS:
        assert realism_config(level).jpeg_quality is None  # training images are never compressed
    assert other.rack_style == "galvanised" and identical.rack_style == "painted"
    ood = PalletSceneGenerator(other)(3, 0)
    realistic = PalletSceneGenerator(realism_config("realistic", **SMALL))(3, 0)
    assert float(ood["image"].mean()) != pytest.approx(float(realistic["image"].mean()), abs=1e-4)


def test_bad_settings_are_rejected_with_their_names() -> None:
    with pytest.raises(ValueError, match="realism must be one of"):
        realism_config("photoreal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown SceneConfig fields \['colour'\]"):
        realism_config("random", colour=1)
    with pytest.raises(ValueError, match="domain must be one of"):
        standin_config("lab")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fov must be a range"):
        SceneConfig(fov=(90.0, 40.0))
    with pytest.raises(ValueError, match="layout must be one of"):
        SceneConfig(layout="maze")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_visible_fraction must be in"):
        SceneConfig(min_visible_fraction=1.5)
    with pytest.raises(IndexError, match="index must be >= 0"):
        PalletSceneGenerator(SceneConfig(**SMALL))(0, -1)


def test_camera_is_never_inside_an_object() -> None:
    config = dataclasses.replace(realism_config("random", **SMALL), camera_distance=(0.5, 1.5))
    for seed in range(10):
        scene = draw_scene(config, np.random.default_rng(seed))
        local = torch.einsum(
            "bji,bj->bi",
            scene.boxes.rotations,
            torch.tensor(scene.camera.position) - scene.boxes.centers,
        )
        assert not bool((local.abs() <= scene.boxes.half_sizes).all(1).any())


def test_preview_command_writes_a_grid(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    command = [
        sys.executable,
        "-m",
        "lightning_synth.generators.warehouse",
        "preview",
        "--out",
        str(out),
        "--samples",
        "2",
        "--width",
        "64",
        "--height",
        "48",
        "--levels",
        "realistic",
        "random",
    ]
    subprocess.run(command, check=True, capture_output=True)
    from PIL import Image

    assert Image.open(out).size == (150 + 2 * 64, 2 * 48)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (
            {"camera_distance": (-1.0, 5.0)},
            ValueError,
            "camera_distance must be a range of positive values",
        ),
        ({"fov": (40.0, 200.0)}, ValueError, r"fov must lie in \(0, 180\)"),
        ({"noise": (-0.1, 0.0)}, ValueError, "noise must be a range of values >= 0"),
        ({"min_box_side": -1.0}, ValueError, "min_box_side must be >= 0"),
        ({"floor_view_share": 1.5}, ValueError, r"floor_view_share must be in \[0, 1\]"),
        (
            {"floor_view_distance": (0.0, 2.0)},
            ValueError,
            "floor_view_distance must be a range of positive values",
        ),
        ({"camera_height": ("1", 2.0)}, TypeError, "camera_height must be a number or a range"),
        ({"pallet_kinds": ("eur", "crate")}, ValueError, "pallet_kinds must be kinds of"),
        ({"pallet_kinds": ()}, ValueError, "pallet_kinds must be kinds of"),
        ({"painted_pallet_share": -0.1}, ValueError, r"painted_pallet_share must be in \[0, 1\]"),
    ],
)
def test_bad_scene_settings_are_refused(
    changes: dict, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SceneConfig(**changes)


def test_caches_of_the_earlier_sample_format_are_refused() -> None:
    from lightning_synth.generators.base import generator_manifest

    # Samples before format 2 listed left-out pallets as "ignored_boxes", not crowd regions.
    manifest = generator_manifest(PalletSceneGenerator(SceneConfig(width=32, height=24)))
    assert manifest["sample_format"] == PalletSceneGenerator.SAMPLE_FORMAT == 2


def test_floor_views_show_fewer_larger_pallets_and_leave_other_scenes_alone() -> None:
    from lightning_synth.generators.base import generator_manifest

    base = standin_config("id", width=96, height=72)
    close = dataclasses.replace(base, floor_view_share=1.0, floor_view_distance=(1.2, 2.5))
    areas: dict[float, list[float]] = {0.0: [], 1.0: []}
    for config in (base, close):
        generator = PalletSceneGenerator(config)
        for index in range(12):
            sample = generator(0, index)
            scene = draw_scene(config, np.random.default_rng([0, index]))
            if config.floor_view_share:  # on the floor, never from the ceiling
                assert scene.camera.position[2] <= config.camera_height[1] + 1e-6
            boxes = sample["boxes"]
            areas[config.floor_view_share] += ((boxes[:, 2:] - boxes[:, :2]).prod(1)).tolist()
    assert np.median(areas[1.0]) > 2 * np.median(areas[0.0])
    # At the default share the knob draws nothing and stays out of cache manifests.
    assert "floor_view_share" not in generator_manifest(PalletSceneGenerator(base))["config"]
    assert generator_manifest(PalletSceneGenerator(close))["config"]["floor_view_share"] == 1.0


def test_pallet_kinds_fill_their_outlines_and_leave_default_scenes_alone() -> None:
    from lightning_synth.generators.base import generator_manifest
    from lightning_synth.generators.warehouse.geometry import BoxList
    from lightning_synth.generators.warehouse.pallets import PALLET_KINDS, PALLET_SIZES, add_pallet

    for kind in PALLET_KINDS:
        parts = BoxList()
        outline = add_pallet(parts, (0.0, 0.0, 0.0), 0.0, wood=0, blocks=1, instance=3, kind=kind)
        built = parts.build()
        low = (built.centers - built.half_sizes).amin(0).double().numpy()
        high = (built.centers + built.half_sizes).amax(0).double().numpy()
        length, width, height = PALLET_SIZES[kind]
        # The parts span the kind's outline exactly: its footprint from the floor to the deck.
        np.testing.assert_allclose(high - low, [length, width, height], atol=1e-6)
        np.testing.assert_allclose(outline[3:], [length, width, height])
        assert set(built.instances.tolist()) == {3} and set(built.materials.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="kind must be one of"):
        add_pallet(BoxList(), (0, 0, 0), 0.0, 0, 1, 0, kind="crate")
    base = realism_config("realistic", width=96, height=72)
    mixed = dataclasses.replace(base, pallet_kinds=["plastic", "stringer"], painted_pallet_share=1)
    assert mixed.pallet_kinds == ("plastic", "stringer")
    sample = PalletSceneGenerator(mixed)(0, 0)
    assert len(sample["boxes"]) + len(sample["meta"]["crowd_boxes"]) > 0
    manifest = generator_manifest(PalletSceneGenerator(base))["config"]
    assert "pallet_kinds" not in manifest and "painted_pallet_share" not in manifest
    assert generator_manifest(PalletSceneGenerator(mixed))["config"]["pallet_kinds"] == (
        "plastic",
        "stringer",
    )
