"""Boxes drawn on images (torchvision's ``draw_bounding_boxes``), for previews and figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

Colour = tuple[int, int, int]


def draw_boxes(
    image: torch.Tensor | np.ndarray,
    layers: Sequence[tuple[torch.Tensor | Sequence[Sequence[float]] | None, Colour, int]],
) -> np.ndarray:
    """``image`` as uint8 RGB (H x W x 3) with boxes drawn, layer after layer.

    Args:
        image: (C, H, W) float in [0, 1] or uint8 (1 or 3 channels).
        layers: ``(boxes, colour, width)`` per layer; boxes are xyxy pixels with the right
            and bottom edges exclusive (the sample contract), drawn on their first and last
            pixel. Boxes narrower or lower than a pixel are drawn as one pixel.

    Example:
        >>> picture = draw_boxes(torch.zeros(3, 6, 8), [([[1.0, 1.0, 4.0, 3.0]], (0, 255, 0), 1)])
        >>> picture.shape, picture[1, 1].tolist(), picture[0, 0].tolist()
        ((6, 8, 3), [0, 255, 0], [0, 0, 0])
    """
    from torchvision.utils import draw_bounding_boxes

    tensor = torch.as_tensor(image)
    if tensor.dtype != torch.uint8:
        tensor = (tensor[:3].float().clamp(0, 1) * 255).round().to(torch.uint8)
    picture = tensor[:3].cpu()
    if picture.shape[0] == 1:
        picture = picture.expand(3, -1, -1)
    for boxes, colour, width in layers:
        if boxes is None or len(boxes) == 0:
            continue
        picture = draw_bounding_boxes(picture, pixel_corners(boxes), colors=colour, width=width)
    return np.ascontiguousarray(picture.permute(1, 2, 0).numpy())


def pixel_corners(boxes: torch.Tensor | Sequence[Sequence[float]]) -> torch.Tensor:
    """Boxes (xyxy, right and bottom exclusive) as the first and last pixel drawn (>= one)."""
    boxes = torch.as_tensor(boxes).detach().float().cpu().reshape(-1, 4)
    left, top = boxes[:, 0], boxes[:, 1]
    right = torch.maximum(left, boxes[:, 2] - 1)
    bottom = torch.maximum(top, boxes[:, 3] - 1)
    return torch.stack([left, top, right, bottom], dim=1)
