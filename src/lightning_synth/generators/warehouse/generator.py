"""Pallet detection samples from warehouse scenes: image, boxes, visibility, masks.

:class:`PalletSceneGenerator` draws a scene from ``(seed, index)`` (a fresh
``numpy.random.Generator`` per sample, so any worker or rank gets the same sample for the
same index), renders it, and keeps the pallets that are visible enough: a pallet whose
visible fraction is below ``min_visible_fraction``, or whose box is narrower or lower than
``min_box_side`` pixels, is left out of the targets and listed in ``meta["crowd_boxes"]``:
evaluation treats those boxes as COCO crowd regions (a detection on one neither counts nor
costs), so the rule decides what is a pallet to find the same way in training and scoring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lightning_synth.generators.warehouse.raycast import Backend
from lightning_synth.generators.warehouse.realism import Realism, realism_config
from lightning_synth.generators.warehouse.render import render
from lightning_synth.generators.warehouse.scene import SceneConfig, draw_scene

#: Label of a pallet in the targets (0 is the background, as torchvision's detectors expect).
PALLET_LABEL = 1


class PalletSceneGenerator:
    """Renders pallet detection samples from seeds.

    A generator of the project's protocol: ``generator(seed, index)`` is one sample.

    Args:
        config: Scene settings, or the name of a realism level (``"realistic"``,
            ``"half_realistic"``, ``"random"``) for its preset.
        masks: Also return a boolean mask per kept pallet (``masks``, (N, H, W)).
        device: Device to render on (CPU by default; a GPU uses the torch backend).
        backend: Renderer backend (see :func:`~lightning_synth.generators.warehouse.render.render`).

    Example:
        >>> generator = PalletSceneGenerator("realistic")
        >>> generator.config.width
        640
        >>> small = PalletSceneGenerator(SceneConfig(width=96, height=72))
        >>> sample = small(seed=0, index=3)
        >>> sample["image"].shape, sample["boxes"].shape[1], sample["labels"].dtype
        (torch.Size([3, 72, 96]), 4, torch.int64)
    """

    #: 2: the pallets the visibility rule leaves out are crowd regions (``crowd_boxes``).
    SAMPLE_FORMAT = 2

    def __init__(
        self,
        config: SceneConfig | Realism = "realistic",
        masks: bool = False,
        device: str | torch.device = "cpu",
        backend: Backend = "auto",
    ) -> None:
        self.config = realism_config(config) if isinstance(config, str) else config
        self.masks = masks
        self.device = torch.device(device)
        self.backend = backend

    def __call__(self, seed: int, index: int) -> dict[str, Any]:
        """The sample of ``(seed, index)``.

        Returns:
            ``image`` (3, H, W) float32 in [0, 1], ``boxes`` (N, 4) xyxy pixels (x1, y1
            exclusive), ``labels`` (N,) int64, ``visible_fraction`` (N,), ``masks``
            (N, H, W) bool when asked for, and ``meta`` (the scene's settings and the
            pallets the rule leaves out: ``crowd_boxes``, ``crowd_labels``,
            ``crowd_visible_fraction``).
        """
        if index < 0:
            msg = f"index must be >= 0, got {index}"
            raise IndexError(msg)
        rng = np.random.default_rng([int(seed), int(index)])
        scene = draw_scene(self.config, rng)
        if self.device.type != "cpu":
            scene.boxes = scene.boxes.to(self.device)
            scene.outlines = scene.outlines.to(self.device)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        result = render(scene, generator, backend=self.backend)
        boxes = result.boxes.cpu()
        fraction = result.visible_fraction.cpu()
        sides = torch.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = (fraction >= self.config.min_visible_fraction) & (sides >= self.config.min_box_side)
        sample: dict[str, Any] = {
            "image": result.image.cpu(),
            "boxes": boxes[keep],
            "labels": torch.full((int(keep.sum()),), PALLET_LABEL, dtype=torch.int64),
            "visible_fraction": fraction[keep],
        }
        if self.masks:
            ids = result.instance_ids.cpu()[keep]
            instances = result.instances.cpu()
            sample["masks"] = instances[None] == ids[:, None, None]
        sample["meta"] = {
            "seed": int(seed),
            "index": int(index),
            "crowd_boxes": boxes[~keep].tolist(),
            "crowd_labels": [PALLET_LABEL] * int((~keep).sum()),
            "crowd_visible_fraction": fraction[~keep].tolist(),
            **scene.meta,
        }
        return sample
