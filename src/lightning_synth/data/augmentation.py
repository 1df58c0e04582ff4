"""Per-sample augmentation pipelines over the sample contract, built with albumentations.

A pipeline is written as a list of albumentations transforms by class name, so that a YAML
config can hold it::

    train_transforms:
      - D4                                   # one of the 8 symmetries of the square
      - RandomBrightnessContrast: {p: 0.5}   # name: keyword arguments

:class:`Augmentation` applies it to a sample dict: ``image`` (C x H x W tensor), ``mask``
(H x W), instance ``masks`` (N x H x W) and ``boxes`` (N x 4 xyxy pixels, moved and clipped
with the image; boxes pushed out of the image are dropped with their ``labels`` and
``visible_fraction``). Everything else in the sample is passed through.

Randomness: the pipeline is reseeded once in every process from ``torch.initial_seed()``,
which Lightning's ``seed_everything(workers=True)`` makes distinct per worker and rank and
reproducible per run; without that, albumentations would draw the same augmentations in
every DataLoader worker (each gets a copy of one random state).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import torch

#: One transform: an albumentations class name, or ``{name: keyword arguments}``.
TransformSpec: TypeAlias = str | dict[str, dict[str, Any]]
#: What a DataModule's ``*_transforms`` argument takes.
Transforms: TypeAlias = Sequence[TransformSpec] | Callable[[dict[str, Any]], dict[str, Any]]

#: Per-box keys that must stay aligned with ``boxes`` when boxes are dropped.
BOX_FIELDS = ("labels", "visible_fraction")


def build_transform(spec: Any, where: str = "transforms") -> Any:
    """One albumentations transform from a spec (see :data:`TransformSpec`).

    Args:
        spec: ``"D4"``, ``{"HorizontalFlip": {"p": 0.5}}``, or an albumentations transform.
        where: How error messages name the spec (e.g. ``"train_transforms[1]"``).
    """
    import albumentations as A  # noqa: N812

    if isinstance(spec, A.BasicTransform | A.BaseCompose):
        return spec
    options: Any
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, Mapping) and len(spec) == 1:
        name, options = next(iter(spec.items()))
        options = {} if options is None else options
    else:
        msg = (
            f"{where} must be an albumentations transform name such as 'D4' or a one-entry "
            f"mapping such as {{'HorizontalFlip': {{'p': 0.5}}}}, got {spec!r}"
        )
        raise ValueError(msg)
    if not isinstance(options, Mapping):
        msg = (
            f"{where}: the options of {name!r} must be a mapping of keyword arguments, "
            f"got {options!r}"
        )
        raise ValueError(msg)
    factory = getattr(A, str(name), None)
    if not (isinstance(factory, type) and issubclass(factory, A.BasicTransform)):
        msg = f"{where}: albumentations has no transform named {name!r}"
        raise ValueError(msg)
    call = f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())})"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            transform = factory(**options)
        except Exception as error:  # pydantic's validation errors and TypeErrors alike
            msg = f"{where}: {call} failed: {error}"
            raise ValueError(msg) from error
    for warning in caught:
        # albumentations only warns about unknown keyword arguments; a typo must not pass.
        if "are not valid for transform" in str(warning.message):
            msg = f"{where}: {call}: {warning.message}"
            raise ValueError(msg)
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return transform


class Augmentation:
    """An albumentations pipeline applied to samples of the project's contract.

    Args:
        transforms: The transforms in order, each an albumentations class name, a one-entry
            mapping of name to keyword arguments, or a transform object.
        name: How error messages name the pipeline (e.g. ``"train_transforms"``).

    Example:
        >>> flip = Augmentation([{"HorizontalFlip": {"p": 1.0}}])
        >>> sample = {"image": torch.arange(4.0).view(1, 1, 4),
        ...           "boxes": torch.tensor([[0.0, 0.0, 1.0, 1.0]]), "labels": torch.tensor([1])}
        >>> out = flip(sample)
        >>> out["image"].flatten().tolist(), out["boxes"].tolist(), out["labels"].tolist()
        ([3.0, 2.0, 1.0, 0.0], [[3.0, 0.0, 4.0, 1.0]], [1])
    """

    def __init__(self, transforms: Sequence[Any], name: str = "transforms") -> None:
        if isinstance(transforms, str | Mapping) or not isinstance(transforms, Sequence):
            msg = f"{name} must be a list of transforms, got {transforms!r}"
            raise ValueError(msg)
        self.name = name
        self.transforms = [build_transform(s, f"{name}[{i}]") for i, s in enumerate(transforms)]
        self._pipelines: dict[tuple[str, ...] | None, Any] = {}
        self._seeded_in: int | None = None

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.transforms)
        return f"{type(self).__name__}([{names}])"

    def __getstate__(self) -> dict[str, Any]:
        # Pipelines are rebuilt (and reseeded) in the process that unpickles this.
        return {**self.__dict__, "_pipelines": {}, "_seeded_in": None}

    def _pipeline(self, box_fields: tuple[str, ...] | None) -> Any:
        import albumentations as A  # noqa: N812

        if os.getpid() != self._seeded_in:
            self._pipelines, self._seeded_in = {}, os.getpid()
        pipeline = self._pipelines.get(box_fields)
        if pipeline is None:
            bbox_params = None
            if box_fields is not None:
                bbox_params = A.BboxParams(
                    format="pascal_voc", label_fields=list(box_fields), clip=True
                )
            seed = torch.initial_seed() % 2**32
            pipeline = A.Compose(self.transforms, bbox_params=bbox_params, seed=seed)
            self._pipelines[box_fields] = pipeline
        return pipeline

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """A new sample dict with the augmented arrays (the input is not modified)."""
        if "image" not in sample:
            msg = f"{self.name}: samples must have an 'image', got the keys {sorted(sample)}"
            raise KeyError(msg)
        image = sample["image"]
        if not isinstance(image, torch.Tensor) or image.ndim != 3:
            msg = f"{self.name}: 'image' must be a C x H x W tensor, got {_describe(image)}"
            raise TypeError(msg)
        if image.dtype not in (torch.uint8, torch.float32):
            image = image.float()
        # OpenCV wants contiguous H x W x C arrays.
        inputs: dict[str, Any] = {"image": np.ascontiguousarray(image.permute(1, 2, 0).numpy())}
        if "mask" in sample:
            inputs["mask"] = _to_numpy_mask(sample["mask"])
        if "masks" in sample:
            inputs["masks"] = _to_numpy_mask(sample["masks"])
        box_fields: tuple[str, ...] | None = None
        if "boxes" in sample:
            boxes = torch.as_tensor(sample["boxes"]).reshape(-1, 4)
            box_fields = ("box_index",)
            inputs["bboxes"] = boxes.double().numpy()
            inputs["box_index"] = np.arange(len(boxes))
        out = self._pipeline(box_fields)(**inputs)
        result = dict(sample)
        result["image"] = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))
        for key in ("mask", "masks"):
            if key in sample:
                result[key] = torch.from_numpy(np.ascontiguousarray(out[key])).to(sample[key].dtype)
        if box_fields is not None:
            # albumentations returns shape (0,) when every box is gone; keep (0, 4).
            kept = np.asarray(out["box_index"], dtype=np.int64).reshape(-1)
            boxes_out = np.asarray(out["bboxes"], dtype=np.float64).reshape(-1, 4)
            dtype = torch.as_tensor(sample["boxes"]).dtype
            result["boxes"] = torch.from_numpy(boxes_out).to(dtype)
            index = torch.from_numpy(kept)
            for key in BOX_FIELDS:
                if key in sample:
                    result[key] = torch.as_tensor(sample[key])[index]
            if "masks" in sample:
                result["masks"] = result["masks"][index]
        return result


def build_augmentation(value: Any, name: str) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """``None``, a callable (kept as it is), or a list of transform specs (an Augmentation).

    An empty list means no augmentation (None).
    """
    if value is None or (isinstance(value, Sequence) and not isinstance(value, str) and not value):
        return None
    if callable(value) and not isinstance(value, type):
        return value
    return Augmentation(value, name=name)


def _to_numpy_mask(mask: Any) -> np.ndarray:
    array = torch.as_tensor(mask)
    # OpenCV, which albumentations uses for resampling, takes uint8 and float32 masks.
    if array.dtype == torch.bool or (
        array.numel() and int(array.min()) >= 0 and int(array.max()) < 256
    ):
        return array.to(torch.uint8).numpy()
    return array.to(torch.float32).numpy()


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"
