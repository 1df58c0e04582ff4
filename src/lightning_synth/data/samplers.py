"""An index sampler that mixes sample streams batch by batch and shards them across ranks.

The sampler plans a whole *global* epoch of full batches on every rank from ``(seed, epoch)``
alone, then hands rank ``r`` the batches ``r, r + W, r + 2W, ...`` of that plan (``W`` ranks).
Ranks therefore see disjoint batches, the same number of them, and a new order every epoch,
without any communication. It subclasses :class:`~torch.utils.data.DistributedSampler` so that
Lightning leaves it in place under DDP (it would otherwise wrap it) and calls ``set_epoch``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from lightning_synth.data.sources import stable_seed


def cumulative_share(ratio: float, batch_size: int, num_batches: int) -> np.ndarray:
    """Running count of first-stream samples after each of ``num_batches`` batches.

    Entry ``j`` is ``round_half_up(ratio * batch_size * j)``, so batch ``j`` holds
    ``entry[j + 1] - entry[j]`` first-stream samples: always the floor or the ceiling of
    ``ratio * batch_size``, exactly that number when it is an integer, and the running share
    never drifts more than half a sample from ``ratio``.

    Example:
        >>> np.diff(cumulative_share(0.3, 8, 5)).tolist()  # 2.4 per batch
        [2, 3, 2, 3, 2]
        >>> int(cumulative_share(0.3, 8, 5)[-1])  # 0.3 * 40 samples
        12
    """
    steps = np.arange(num_batches + 1, dtype=np.float64)
    return np.floor(ratio * batch_size * steps + 0.5).astype(np.int64)


class MixingSampler(DistributedSampler):
    """Draws full batches from one or two streams of indices, sharded across ranks.

    The dataset is laid out as consecutive blocks of ``stream_sizes`` indices. With
    ``ratio=None`` (*concat*) the blocks form one stream: the union, shuffled. With a ``ratio``
    there must be exactly two blocks and every batch holds ``ratio * batch_size`` samples of
    the first (floor or ceiling when that is not an integer; see :func:`cumulative_share`),
    first-stream samples first.

    Each stream is drawn without replacement within a pass: a pass is a fresh seeded
    permutation of the stream, and a stream that runs out starts its next pass (it *cycles*).

    **Epoch length.** Without ``batches_per_epoch``, a global epoch is the fewest full batches
    after which every stream with a non-zero share has been drawn completely once
    (concat: ``ceil(N / batch_size)``, the last batch completed from the next pass), rounded
    up to a multiple of ``num_replicas`` (down with ``drop_last=True``, which also drops the
    incomplete last concat batch). The larger stream relative to its share sets the length;
    the other cycles. With ``batches_per_epoch``, every rank gets exactly that many batches.

    Args:
        stream_sizes: Sizes of the consecutive index blocks (one or two).
        batch_size: Samples per batch on each rank.
        ratio: Share of the first stream in every batch, in [0, 1]; ``None`` for concat.
        seed: Seed of all shuffles; the plan depends only on ``seed`` and the epoch.
        num_replicas: Number of ranks.
        rank: This process's rank.
        batches_per_epoch: Batches per rank and epoch; ``None`` derives it as above.
        drop_last: Round the epoch down instead of up (see above).

    Example:
        >>> sampler = MixingSampler([6, 10], batch_size=4, ratio=0.25)
        >>> batches = np.array(list(sampler)).reshape(-1, 4)
        >>> len(batches), bool((batches[:, 0] < 6).all()), bool((batches[:, 1:] >= 6).all())
        (6, True, True)
    """

    def __init__(
        self,
        stream_sizes: Sequence[int],
        batch_size: int,
        *,
        ratio: float | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        batches_per_epoch: int | None = None,
        drop_last: bool = False,
    ) -> None:
        # DistributedSampler.__init__ would query torch.distributed and need a dataset; only
        # the type matters to Lightning, so set the attributes it documents ourselves.
        sizes = [int(size) for size in stream_sizes]
        if not 1 <= len(sizes) <= 2 or any(size < 0 for size in sizes):
            msg = f"stream_sizes must hold one or two sizes >= 0, got {list(stream_sizes)}"
            raise ValueError(msg)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            msg = f"batch_size must be a positive integer, got {batch_size!r}"
            raise ValueError(msg)
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            msg = f"rank must be in [0, num_replicas={num_replicas}), got rank={rank}"
            raise ValueError(msg)
        if batches_per_epoch is not None and batches_per_epoch < 1:
            msg = f"batches_per_epoch must be >= 1 or None, got {batches_per_epoch}"
            raise ValueError(msg)
        if ratio is None:
            if sum(sizes) == 0:
                msg = f"stream_sizes must hold at least one sample, got {sizes}"
                raise ValueError(msg)
        else:
            if not 0.0 <= ratio <= 1.0:
                msg = f"ratio must be in [0, 1], got {ratio!r}"
                raise ValueError(msg)
            if len(sizes) != 2:
                msg = f"ratio mixing needs exactly two streams, got stream_sizes={sizes}"
                raise ValueError(msg)
            for share, size, position in (
                (ratio, sizes[0], "first"),
                (1 - ratio, sizes[1], "second"),
            ):
                if share > 0 and size == 0:
                    msg = f"the {position} stream is empty but ratio={ratio} draws from it"
                    raise ValueError(msg)
        self.stream_sizes = sizes
        self.batch_size = batch_size
        self.ratio = ratio
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.batches_per_epoch = batches_per_epoch
        self.drop_last = drop_last
        self.shuffle = True
        self.epoch = 0
        self.dataset = None  # type: ignore[assignment]
        self.num_global_batches = self._count_global_batches()
        if self.num_global_batches == 0:
            msg = (
                f"an epoch would hold no batch: {sum(sizes)} samples with batch_size={batch_size}, "
                f"num_replicas={num_replicas} and drop_last=True"
            )
            raise ValueError(msg)
        self._layout: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None
        self.num_samples = self.num_global_batches // num_replicas * batch_size
        self.total_size = self.num_global_batches * batch_size

    def _count_global_batches(self) -> int:
        world, size = self.num_replicas, self.batch_size
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch * world
        if self.ratio is None:
            total = sum(self.stream_sizes)
            needed = total // size if self.drop_last else math.ceil(total / size)
        else:
            needed = self._batches_to_cover_streams()
        rounded = needed // world if self.drop_last else math.ceil(needed / world)
        return rounded * world

    def _batches_to_cover_streams(self) -> int:
        ratio, size = float(self.ratio), self.batch_size  # type: ignore[arg-type]
        first, second = self.stream_sizes
        estimate = max(
            math.ceil(first / (ratio * size)) if ratio > 0 else 0,
            math.ceil(second / ((1 - ratio) * size)) if ratio < 1 else 0,
        )
        batches = max(1, estimate - 1)
        while True:
            drawn_first = int(cumulative_share(ratio, size, batches)[-1])
            covered_first = ratio == 0 or drawn_first >= first
            covered_second = ratio == 1 or size * batches - drawn_first >= second
            if covered_first and covered_second:
                return batches
            batches += 1

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; the plan, and so every shuffle, depends on it."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def _stream(self, stream: int, offset: int, count: int) -> np.ndarray:
        """``count`` indices of one stream: consecutive seeded permutations (passes)."""
        size = self.stream_sizes[stream] if self.ratio is not None else sum(self.stream_sizes)
        if count == 0:
            return np.zeros(1, dtype=np.int64)  # never read; keeps fancy indexing simple
        passes = []
        for number in range(math.ceil(count / size)):
            seed = stable_seed(
                self.seed, f"epoch={self.epoch}", f"stream={stream}", f"pass={number}"
            )
            generator = torch.Generator().manual_seed(seed)
            passes.append(torch.randperm(size, generator=generator).numpy())
        return np.concatenate(passes)[:count] + offset

    def global_batches(self) -> np.ndarray:
        """The whole epoch's plan on all ranks: an array of shape (batches, batch_size)."""
        batches, size = self.num_global_batches, self.batch_size
        if self.ratio is None:
            return self._stream(0, 0, batches * size).reshape(batches, size)
        from_first, first_position, second_position, drawn = self._ratio_layout()
        first = self._stream(0, 0, drawn)
        second = self._stream(1, self.stream_sizes[0], batches * size - drawn)
        return np.where(from_first, first[first_position], second[second_position])

    def _ratio_layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Where each slot of the plan comes from; the same every epoch, so computed once."""
        if self._layout is None:
            batches, size = self.num_global_batches, self.batch_size
            running = cumulative_share(float(self.ratio), size, batches)  # type: ignore[arg-type]
            first_counts = np.diff(running)
            drawn = int(running[-1])
            column = np.arange(size)[None, :]
            from_first = column < first_counts[:, None]
            first_position = running[:-1, None] + column
            second_position = (np.arange(batches) * size - running[:-1])[:, None] + (
                column - first_counts[:, None]
            )
            self._layout = (
                from_first,
                np.clip(first_position, 0, max(drawn, 1) - 1),
                np.clip(second_position, 0, max(batches * size - drawn, 1) - 1),
                drawn,
            )
        return self._layout

    def __iter__(self) -> Iterator[int]:
        mine = self.global_batches()[self.rank :: self.num_replicas]
        return iter(mine.reshape(-1).tolist())
