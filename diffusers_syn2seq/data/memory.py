# SPDX-License-Identifier: Apache-2.0
"""Decoded takes kept in memory, so that a training run decodes every clip once instead of once per batch.

Decoding a take's MP4 clips (PyAV) cost about 15% of a training step of the bundled model's recipe (32x32, batch 4,
one CPU thread); the decoded uint8 frames and poses of that recipe's 2000 takes hold about 73 MiB. `InMemoryTakes`
decodes a take dataset once and serves the same items afterwards; `decoded_take_bytes` says, from the metadata table
alone, how much memory that needs, so a caller can check a budget before decoding anything (`train.py --cache_data`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .dataset import Syn2SeqClipDataset

__all__ = ["DEFAULT_CACHE_BUDGET_MB", "InMemoryTakes", "decoded_take_bytes"]

# Default memory budget of `train.py --cache_data auto` per process: decoded takes above it are decoded per batch.
DEFAULT_CACHE_BUDGET_MB = 2048.0
_POSE_BYTES = 16 * 8  # one float64 pose row


def decoded_take_bytes(takes: Syn2SeqClipDataset) -> int:
    """Bytes the decoded items of `takes` hold (uint8 frames of exo, ego and, when the dataset loads it, the cached
    transition, plus float64 poses), computed from the metadata table without decoding anything."""
    table = takes.table
    total = 0
    rows = zip(table["num_frames"], table["height"], table["width"], table["transition_video"],
               table["transition_poses"])
    for num_frames, height, width, transition_video, transition_poses in rows:
        kept = num_frames if takes.num_frames is None else min(num_frames, takes.num_frames)
        frames, poses = 2 * kept, 2 * kept
        if takes.load_transition and transition_video is not None:
            frames += len(transition_poses)
            poses += len(transition_poses)
        total += frames * height * width * 3 + poses * _POSE_BYTES
    return total


class InMemoryTakes(Sequence):
    """Every item of a map-style take dataset (`Syn2SeqClipDataset`), read once at construction and served from
    memory afterwards: `InMemoryTakes(takes)[i]` is the item `takes[i]` returned when the cache was built.

    Items are shared, not copied: consumers must not modify them in place (`build_syn2seq_sequence` converts clips
    into new tensors and never writes to them).

    Args:
        takes: the dataset to read (anything with `__len__` and `__getitem__`).
        progress: optional wrapper of the index iterable while reading (e.g. a `tqdm` progress bar).
    """

    def __init__(self, takes: Sequence[dict[str, Any]],
                 progress: Callable[[Iterable[int]], Iterable[int]] | None = None):
        indices: Iterable[int] = range(len(takes))
        self.items = [takes[i] for i in (progress(indices) if progress is not None else indices)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} takes")
        return self.items[index]
