"""The generator protocol: a plain callable from ``(seed, index)`` to a sample.

A generator knows physics or geometry and nothing of Lightning. It holds its settings (a
frozen config, readable as ``generator.config``) and turns a seed and an index into one
sample of the project's contract: a dict with ``image`` (float C x H x W) and ``mask``
(int64 H x W) or ``boxes`` (float N x 4, xyxy pixels) + ``labels`` (int64 N), plus an
optional ``meta`` dict. The same ``(seed, index)`` gives the same sample in any process,
worker or rank: draw every random number from generators seeded by them (for example
``numpy.random.default_rng([seed, index])``), never from global state.

:class:`~lightning_synth.data.GeneratedDataset` serves any such callable, on the fly or from
a disk cache; :class:`~lightning_synth.data.GeneratedDataModule` makes pools of them.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SampleGenerator(Protocol):
    """``generator(seed, index) -> sample``: what every generator of the project is.

    Example:
        >>> import torch
        >>> def squares(seed: int, index: int) -> dict:
        ...     rng = torch.Generator().manual_seed(stable_seed(seed, str(index)))
        ...     side = int(torch.randint(2, 6, (1,), generator=rng))
        ...     mask = torch.zeros(8, 8, dtype=torch.int64)
        ...     mask[:side, :side] = 1
        ...     return {"image": mask[None].float(), "mask": mask}
        >>> isinstance(squares, SampleGenerator)
        True
        >>> bool(torch.equal(squares(0, 3)["mask"], squares(0, 3)["mask"]))
        True
    """

    def __call__(self, seed: int, index: int) -> dict[str, Any]:
        """The sample of ``(seed, index)``."""
        ...


def stable_seed(seed: int, *names: str) -> int:
    """Derive a 63-bit seed from ``seed`` and names, identical in every process.

    Python's ``hash`` of a string changes between processes; CRC32 does not, so a pool's
    subset and shuffles are the same on every worker and every rank.

    Example:
        >>> stable_seed(0, "real") == stable_seed(0, "real")
        True
        >>> stable_seed(0, "real") != stable_seed(0, "synthetic")
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        msg = f"seed must be an integer, got {seed!r}"
        raise TypeError(msg)
    value = seed & 0xFFFFFFFF
    for name in names:
        value = (value * 0x9E3779B1 + zlib.crc32(name.encode())) & 0x7FFFFFFFFFFFFFFF
    return value


def generator_manifest(generator: Any) -> dict[str, Any]:
    """What a generator's samples depend on, for a cache's manifest.

    The generator's qualified class (or function) name, and its ``config`` (a dataclass, or
    the generator itself when it is one) as a dict. Settings that the config class names in
    a ``LATER_SETTINGS`` class attribute are left out while at their default: they were
    added with a default that keeps the earlier behaviour, so caches rendered before them
    stay valid. A generator whose samples changed form (not their content's settings) says so
    in a ``SAMPLE_FORMAT`` class attribute, recorded when present, so older caches are refused.
    """
    import dataclasses

    # Functions and classes carry their own name; an instance is named by its class.
    target = generator if hasattr(generator, "__qualname__") else type(generator)
    record: dict[str, Any] = {"generator": f"{target.__module__}.{target.__qualname__}"}
    if hasattr(target, "SAMPLE_FORMAT"):
        record["sample_format"] = target.SAMPLE_FORMAT
    config = getattr(generator, "config", None)
    if config is None and dataclasses.is_dataclass(generator) and not isinstance(generator, type):
        config = generator
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        settings = dataclasses.asdict(config)
        defaults = {f.name: f.default for f in dataclasses.fields(config)}
        for name in getattr(config, "LATER_SETTINGS", ()):
            if name in settings and settings[name] == defaults[name]:
                del settings[name]
        record["config"] = settings
    return record
