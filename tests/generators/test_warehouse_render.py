"""The warehouse ray caster and renderer: geometry, annotations from the instance buffer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_synth.generators.warehouse import (
    BoxList,
    Camera,
    Light,
    Material,
    Scene,
    SceneConfig,
    add_pallet,
    cast_boxes,
    cast_room,
    draw_scene,
    render,
)
from lightning_synth.generators.warehouse.raycast import screen_rectangles

ROOM = (-5.0, -10.0, 30.0, 10.0, 8.0)


def _scene(boxes: BoxList, outlines: BoxList, camera: Camera) -> Scene:
    materials = [Material((0.6, 0.5, 0.4), "wood"), Material((0.5, 0.5, 0.5), "concrete")]
    return Scene(
        boxes=boxes.build(),
        materials=materials,
        room=ROOM,
        room_materials=(1, 1, 1, 1, 1, 1),
        lights=[Light((4.0, 0.0, 7.0), intensity=60.0, cone=2.0)],
        ambient=(0.2, 0.2, 0.2),
        camera=camera,
        outlines=outlines.build(),
    )


def _pallets(positions: list[tuple[float, float, float]]) -> tuple[BoxList, BoxList]:
    boxes, outlines = BoxList(), BoxList()
    for instance, position in enumerate(positions):
        outline = add_pallet(boxes, position, math.pi / 2, wood=0, blocks=0, instance=instance)
        outlines.add(outline[:3], outline[3:], yaw=math.pi / 2)
    return boxes, outlines


def test_camera_projects_its_target_to_the_image_centre() -> None:
    camera = Camera.look_at((0, 0, 1.5), (6, 2, 0.5), fov=70, width=80, height=60)
    u, v, depth = camera.project(torch.tensor([[6.0, 2.0, 0.5]]))[0].tolist()
    assert u == pytest.approx(40.0, abs=1e-3) and v == pytest.approx(30.0, abs=1e-3)
    assert depth == pytest.approx(math.sqrt(36 + 4 + 1), rel=1e-5)
    with pytest.raises(ValueError, match="straight above or below"):
        Camera.look_at((0, 0, 2), (0, 0, 0), fov=60, width=8, height=8)
    with pytest.raises(ValueError, match="fov must be in"):
        Camera.look_at((0, 0, 2), (1, 0, 0), fov=180, width=8, height=8)


def test_ray_cast_depth_of_a_cube_face_and_of_the_room() -> None:
    boxes = BoxList()
    boxes.add((5.0, 0.0, 1.0), (2.0, 2.0, 2.0))
    camera = Camera.look_at((0, 0, 1), (5, 0, 1), fov=60, width=33, height=25)
    hits = cast_boxes(boxes.build(), camera, backend="torch")
    centre = 12 * 33 + 16
    assert float(hits.depth[centre]) == pytest.approx(4.0, abs=1e-5)  # the face at x = 4
    depth, face = cast_room(camera, ROOM)
    assert float(depth[centre]) == pytest.approx(30.0, abs=1e-4) and int(face[centre]) == 1
    # The camera must be inside the room.
    outside = Camera.look_at((40, 0, 1), (45, 0, 1), fov=60, width=8, height=8)
    with pytest.raises(ValueError, match="must be inside the room"):
        cast_room(outside, ROOM)


def test_screen_rectangles_clip_at_the_near_plane() -> None:
    boxes = BoxList()
    boxes.add((-3.0, 0.0, 1.0), (1.0, 1.0, 1.0))  # behind the camera
    boxes.add((0.0, 0.0, 0.2), (12.0, 0.3, 0.3))  # from behind to far ahead, below the eye
    camera = Camera.look_at((0, 0, 1), (5, 0, 1), fov=60, width=64, height=48)
    rectangles = screen_rectangles(boxes.build(), camera)
    assert rectangles[0].tolist() == [0, 0, 0, 0]
    x0, y0, x1, y1 = rectangles[1].tolist()
    assert y0 >= 24  # below the horizon only: not the whole image
    assert x1 > x0 and y1 > y0


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_boxes_are_the_tight_boxes_of_the_instance_buffer(backend: str) -> None:
    boxes, outlines = _pallets([(4.0, -0.8, 0.0), (5.0, 0.9, 0.0), (7.0, 0.0, 0.0)])
    camera = Camera.look_at((0, 0, 0.6), (5, 0, 0.1), fov=70, width=96, height=72)
    result = render(_scene(boxes, outlines, camera), torch.Generator().manual_seed(0), backend)  # type: ignore[arg-type]
    assert len(result.boxes) == 3
    for instance, box in zip(result.instance_ids.tolist(), result.boxes.tolist(), strict=True):
        rows, columns = torch.nonzero(result.instances == instance, as_tuple=True)
        assert box == [
            float(columns.min()),
            float(rows.min()),
            float(columns.max() + 1),
            float(rows.max() + 1),
        ]


def test_visible_fraction_measures_occlusion_and_the_image_border() -> None:
    boxes, outlines = _pallets([(5.0, -1.0, 0.0), (5.0, 1.0, 0.0)])
    # A board in front of most of the second pallet: at x = 3 it covers y 0.3-0.9, which
    # from the camera at y = 0 hides y 0.5-1.5 of the pallet (y 0.4-1.6) at x = 5.
    boxes.add((3.0, 0.6, 0.3), (0.05, 0.6, 0.6))
    camera = Camera.look_at((0, 0, 0.4), (5, 0, 0.07), fov=60, width=128, height=96)
    result = render(_scene(boxes, outlines, camera), torch.Generator().manual_seed(0))
    fraction = dict(
        zip(result.instance_ids.tolist(), result.visible_fraction.tolist(), strict=True)
    )
    assert fraction[0] > 0.95
    assert 0.05 < fraction[1] < 0.3
    # Half out of the frame: the fraction counts the part outside as not visible.
    boxes, outlines = _pallets([(5.0, 0.0, 0.0)])
    camera = Camera.look_at((0, 0.45, 0.4), (5, 0.45, 0.07), fov=9, width=128, height=96)
    clipped = render(_scene(boxes, outlines, camera), torch.Generator().manual_seed(0))
    assert 0.3 < float(clipped.visible_fraction[0]) < 0.7


def test_footprint_counts_the_pixels_an_instance_covers_alone() -> None:
    boxes, _ = _pallets([(5.0, -0.3, 0.0), (6.5, 0.3, 0.0)])
    camera = Camera.look_at((0, 0, 0.5), (5, 0, 0.1), fov=50, width=80, height=60)
    hits = cast_boxes(boxes.build(), camera, instances=2, backend="torch")
    for instance in range(2):
        alone, _ = _pallets([[(5.0, -0.3, 0.0), (6.5, 0.3, 0.0)][instance]])
        solo = cast_boxes(alone.build(), camera, backend="torch")
        assert int(hits.footprint[instance]) == int((solo.box >= 0).sum())  # type: ignore[index]


def test_numba_and_torch_backends_agree() -> None:
    scene = draw_scene(SceneConfig(width=96, height=72), np.random.default_rng(5))
    numba = render(scene, torch.Generator().manual_seed(1), backend="numba")
    reference = render(scene, torch.Generator().manual_seed(1), backend="torch")
    assert torch.equal(numba.instances, reference.instances)
    assert torch.equal(numba.boxes, reference.boxes)
    assert torch.allclose(numba.visible_fraction, reference.visible_fraction)
    difference = (numba.image - reference.image).abs()
    # Rounding may flip a shadow-map texel at a shadow's edge; nothing else differs.
    assert float(difference.mean()) < 1e-3
    assert float((difference > 1e-3).float().mean()) < 0.01


def test_sensor_noise_is_a_function_of_its_key_in_both_backends() -> None:
    from lightning_synth.generators.warehouse import kernels
    from lightning_synth.generators.warehouse.render import sensor_noise

    noise = sensor_noise((3, 40, 50), key=11, device="cpu")
    assert torch.equal(noise, sensor_noise((3, 40, 50), key=11, device="cpu"))
    assert not torch.equal(noise, sensor_noise((3, 40, 50), key=12, device="cpu"))
    assert abs(float(noise.mean())) < 0.03 and abs(float(noise.std()) - 1) < 0.03
    assert float(noise.abs().max()) <= 3.47  # an Irwin-Hall sum of 4 is bounded by sqrt(12)
    # The numba kernel adds the same values (and clamps to [0, 1]).
    image = np.full(noise.numel(), 0.5, dtype=np.float32)
    kernels.add_sensor_noise(image, 11, 0.2)
    expected = (0.5 + 0.2 * noise.reshape(-1)).clamp(0, 1)
    assert np.allclose(image, expected.numpy(), atol=1e-6)
    assert image.min() == 0.0 and image.max() == 1.0  # clamped


def test_render_is_deterministic_and_images_are_valid() -> None:
    scene = draw_scene(SceneConfig(width=64, height=48), np.random.default_rng(2))
    first = render(scene, torch.Generator().manual_seed(3))
    second = render(scene, torch.Generator().manual_seed(3))
    assert torch.equal(first.image, second.image)
    assert first.image.shape == (3, 48, 64) and first.image.dtype == torch.float32
    assert float(first.image.min()) >= 0.0 and float(first.image.max()) <= 1.0


def test_backend_names_are_checked() -> None:
    scene = draw_scene(SceneConfig(width=32, height=24), np.random.default_rng(0))
    with pytest.raises(ValueError, match="backend must be one of"):
        render(scene, backend="opengl")  # type: ignore[arg-type]
