# SPDX-License-Identifier: Apache-2.0
"""Windows of a Syn2Seq sequence: sampling plans, random training windows, batching, and a window's camera rays.

A DFoT model sees at most `max_frames` frames at once. Sampling splits `[source | frames to generate]` into windows
with `plan_windows`; training draws one random window per take with `sample_window` (deterministically, in
`Syn2SeqTrainingWindows`) and batches them with `collate_syn2seq`. Both paths condition a window on its cameras with
the one function `window_camera_rays`, so a model is sampled with exactly the rays it was trained with.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..camera import interpolate_masked_poses, ray_map
from .sequence import SEGMENT_EGO, SEGMENT_EXO, build_syn2seq_sequence

__all__ = [
    "EpochShuffleSampler",
    "Syn2SeqTrainingWindows",
    "collate_syn2seq",
    "plan_windows",
    "sample_window",
    "window_camera_rays",
    "window_history_lengths",
]

logger = logging.getLogger(__name__)
WINDOW_KEYS = ("frames", "poses", "pose_mask", "segment_ids", "frame_mask", "frame_index")


def window_camera_rays(poses: torch.Tensor, pose_mask: torch.Tensor, height: int, width: int, ray_type: str
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The camera conditioning of windows: `(camera_rays, camera_rays_mask)`.

    One rule, for training and sampling alike: frames without a pose get a placeholder interpolated between the known
    frames of the window (`camera.interpolate_masked_poses`, DFoT's rule; frames before the first known one copy it),
    then every pose is expressed relative to the window's first frame, which is therefore the window's *first frame
    with a known pose*. The placeholders' embeddings are dropped through the mask.

    Args:
        poses: `(B, F, 16)` poses in any world frame (float64 keeps the normalisation exact).
        pose_mask: `(B, F)` bool, True where the pose is known.
        height, width: the model's input grid (pixels or latents).
        ray_type: `"plucker"`, `"ray"` or `"ray_encoding"` (the transformer's `camera_ray_type`).

    Returns:
        `camera_rays` float32 `(B, C_ray, F, height, width)` and `camera_rays_mask` bool `(B, F)`.
    """
    pose_mask = pose_mask.to(device=poses.device, dtype=torch.bool)
    if not bool(pose_mask.all()):
        poses = interpolate_masked_poses(poses, ~pose_mask)
    return ray_map(poses, height, width, kind=ray_type, normalize=True).float(), pose_mask


def window_history_lengths(segment_ids: torch.Tensor, reversed_: torch.Tensor) -> torch.Tensor:
    """`(B,)` number of leading source frames of each window: the frames a sampling window would hold as clean
    history (exo frames of an Exo2Ego sequence, ego frames of a reversed one).

    Args:
        segment_ids: `(B, F)` segment ids of the windows (padding -1).
        reversed_: `(B,)` bool, True for Ego2Exo (reversed) windows.
    """
    source = torch.where(reversed_.to(torch.bool), SEGMENT_EGO, SEGMENT_EXO).to(segment_ids.device)
    is_source = segment_ids == source[:, None]
    return is_source.to(torch.int64).cumprod(dim=1).sum(dim=1)  # length of the leading run


def plan_windows(
    num_history: int,
    num_generate: int,
    max_frames: int,
    context_frames: int | None = None,
    sliding_window: bool = True,
) -> list[tuple[int, int, int]]:
    """Split the sequence `[num_history known | num_generate to generate]` into sampling windows. Counts are model
    frames: latent frames with a causal video VAE (`data.sequence.LatentLayout`), where every window boundary is a
    latent boundary.

    Returns a list of `(start, num_history_frames, num_generated_frames)`: the window covers sequence frames
    `start .. start + h + g - 1`, its first `h` frames are history (known or generated earlier), the next `g` are
    generated in it. When everything fits in `max_frames` there is one window with all source frames. Otherwise:

    - `sliding_window=True`: each window keeps the last `context_frames` (default `max_frames // 2`, DFoT's choice)
      known frames as history and generates up to `max_frames - context_frames` new ones;
    - `sliding_window=False`: one window with as many of the *latest* source frames as fit; raises if the frames to
      generate alone do not leave room for one history frame.
    """
    total = num_history + num_generate
    if total <= max_frames:
        return [(0, num_history, num_generate)]
    if not sliding_window:
        if num_generate >= max_frames:
            raise ValueError(
                f"`num_transition_frames + num_frames` must be at most max_frames - 1 = {max_frames - 1} frames "
                f"(one window with at least one history frame) when `sliding_window=False`, got {num_generate}; "
                "pass `sliding_window=True` to generate longer sequences with a sliding window."
            )
        kept = max_frames - num_generate
        logger.info(f"Only the last {kept} of {num_history} source frames fit in the {max_frames}-frame window.")
        return [(num_history - kept, kept, num_generate)]
    context = max_frames // 2 if context_frames is None else int(context_frames)
    if not 1 <= context < max_frames:
        raise ValueError(f"`context_frames` must be in [1, {max_frames - 1}] (max_frames - 1), got {context_frames!r}.")
    windows, known = [], num_history
    while known < total:
        history = min(known, context)
        generate = min(total - known, max_frames - history)
        windows.append((known - history, history, generate))
        known += generate
    return windows


def sample_window(
    sequence: Mapping[str, Any],
    max_frames: int,
    start: int | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """A window of `min(max_frames, F)` consecutive frames of a sequence (`build_syn2seq_sequence`).

    Args:
        max_frames: window length (>= 1); a shorter sequence is returned whole.
        start: first frame; None draws it uniformly from `[0, F - max_frames]` with `rng`.

    Returns:
        the per-frame tensors of the window (same keys as the sequence; poses stay in the take's world frame, the
        conditioning normalises them) plus `window_start`, `reversed`, `mode`, `take_id`.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    total = len(sequence["frames"])
    length = min(max_frames, total)
    if start is None:
        rng = rng if rng is not None else np.random.default_rng()
        start = int(rng.integers(0, total - length + 1))
    if not 0 <= start <= total - length:
        raise ValueError(
            f"start must be in [0, {total - length}] for a window of {length} of {total} frames, got {start}"
        )
    out = {key: sequence[key][start : start + length] for key in WINDOW_KEYS}
    out.update(window_start=start, reversed=sequence["reversed"], mode=sequence["mode"],
               take_id=sequence.get("take_id"))
    return out


def collate_syn2seq(batch: Sequence[Mapping[str, Any]], pad_to: int | None = None) -> dict[str, Any]:
    """Stack windows into a batch, padding shorter ones at the end to the longest (or `pad_to`) frames.

    Padding frames are zeros with `frame_mask` False, `pose_mask` False, `segment_ids` -1 and identity poses
    (fx = fy = 1, px = py = 0.5, R = I, T = 0), so they are valid numbers that carry nothing.

    Returns:
        `frames` float32 `(B, F, C, H, W)`, `poses` `(B, F, 16)` (dtype of the windows' poses), `pose_mask`,
        `frame_mask` bool `(B, F)`, `segment_ids`, `frame_index` int64 `(B, F)`, `window_start` int64 `(B,)`,
        `reversed` bool `(B,)`, and lists `take_id`, `mode`.
    """
    if not batch:
        raise ValueError("batch must hold at least one window, got an empty batch")
    length = max(len(item["frames"]) for item in batch)
    if pad_to is not None:
        if pad_to < length:
            raise ValueError(f"pad_to={pad_to} is shorter than the longest window ({length} frames)")
        length = pad_to
    shape = batch[0]["frames"].shape[1:]
    identity = torch.tensor([1.0, 1.0, 0.5, 0.5, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0], dtype=batch[0]["poses"].dtype)
    padding = {"pose_mask": False, "frame_mask": False, "segment_ids": -1, "frame_index": -1}
    out: dict[str, list] = {key: [] for key in WINDOW_KEYS}
    for item in batch:
        if item["frames"].shape[1:] != shape:
            raise ValueError(
                f"all windows must have frames of shape (F, {tuple(shape)}), got {tuple(item['frames'].shape)}"
            )
        pad = length - len(item["frames"])
        out["frames"].append(torch.cat([item["frames"], item["frames"].new_zeros(pad, *shape)]))
        out["poses"].append(torch.cat([item["poses"], identity.expand(pad, 16)]))
        for key, value in padding.items():
            out[key].append(torch.cat([item[key], torch.full((pad,), value, dtype=item[key].dtype)]))
    result: dict[str, Any] = {key: torch.stack(value) for key, value in out.items()}
    result["window_start"] = torch.tensor([int(item.get("window_start", 0)) for item in batch])
    result["reversed"] = torch.tensor([bool(item["reversed"]) for item in batch])
    result["take_id"] = [item.get("take_id") for item in batch]
    result["mode"] = [item["mode"] for item in batch]
    return result


class Syn2SeqTrainingWindows(torch.utils.data.Dataset):
    """Training windows of a take dataset; the window start and the Ego2Exo reversal of item `i` in epoch `e` are drawn
    from `numpy.random.default_rng([seed, e, i])`, so they do not depend on workers, processes or resumption.

    Args:
        takes: map-style dataset of takes (`Syn2SeqClipDataset` items: `exo`, `ego`, poses, optional `transition`),
            decoded in the DataLoader workers, or kept in memory once decoded (`memory.InMemoryTakes`).
        mode, reversal, transition_fn, num_transition_frames: as in `build_syn2seq_sequence`.
        max_frames: window length.
        reverse_prob: probability of the Ego2Exo reversal (0.5 trains one model for both directions).
        seed: base seed.
        latents: optional per-take cache (`diffusers_syn2seq.latents.encode_take_latents`); when given, videos are
            not decoded and windows hold latents in `frames`. A per-frame VAE's cache holds `exo`, `ego`,
            `transition` as `(T, C, h, w)` latents plus the poses, laid out here like images; a causal video VAE's
            cache holds the jointly encoded sequence of each direction (`sequences`), built for one `mode` and
            `reversal` (checked here), whose windows are cut in latent frames (every window start is a latent
            boundary, so `max_frames` counts latent frames).

    Item: a window of `sample_window` (`frames` `(F, C, H, W)`, `poses`, `pose_mask`, `segment_ids`, ...).
    """

    def __init__(
        self,
        takes: Sequence[Mapping[str, Any]],
        mode: str,
        max_frames: int,
        reverse_prob: float = 0.0,
        reversal: str = "full",
        transition_fn=None,
        num_transition_frames: int | None = None,
        seed: int = 0,
        latents: Sequence[Mapping[str, Any]] | None = None,
    ):
        if not 0.0 <= reverse_prob <= 1.0:
            raise ValueError(f"reverse_prob must be in [0, 1], got {reverse_prob}")
        self.takes, self.latents = takes, latents
        for entry in latents or ():
            if "sequences" in entry and (entry["mode"], entry["reversal"]) != (mode, reversal):
                raise ValueError(f"`latents` of take {entry.get('take_id')!r} were encoded for mode "
                                 f"{entry['mode']!r} and reversal {entry['reversal']!r}, got mode {mode!r} and "
                                 f"reversal {reversal!r}; rebuild the cache with the training settings.")
        self.mode, self.max_frames, self.reverse_prob, self.reversal = mode, max_frames, reverse_prob, reversal
        self.transition_fn, self.num_transition_frames = transition_fn, num_transition_frames
        self.seed, self.epoch = seed, 0

    def select_epoch(self, epoch: int) -> None:
        """Select the epoch whose windows are drawn (call before creating the DataLoader iterator). Deliberately not
        named `set_epoch`: accelerate's prepared loaders call that with their own iteration count, which restarts at 0
        in a resumed run and would break exact resumption."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.latents) if self.latents is not None else len(self.takes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        reverse = bool(rng.uniform() < self.reverse_prob)
        if self.latents is None:
            sequence = build_syn2seq_sequence(self.takes[index], self.mode, reverse, self.reversal,
                                              self.transition_fn, self.num_transition_frames)
        elif "sequences" in self.latents[index]:  # a causal video VAE's jointly encoded sequences
            direction = "ego2exo" if reverse else "exo2ego"
            sequences = self.latents[index]["sequences"]
            if direction not in sequences:
                raise ValueError(f"`latents` of take {self.latents[index].get('take_id')!r} hold the directions "
                                 f"{sorted(sequences)}, got a draw of {direction!r} (reverse_prob="
                                 f"{self.reverse_prob}); encode the cache for both directions.")
            sequence = sequences[direction]
        else:
            # A latent cache has the keys of a take with `(T, C, h, w)` latents as clips (its transition, if any, was
            # made and encoded when the cache was built): the same layout applies, no fake frames needed.
            sequence = build_syn2seq_sequence(self.latents[index], self.mode, reverse, self.reversal)
        return sample_window(sequence, self.max_frames, rng=rng)


class EpochShuffleSampler(torch.utils.data.Sampler):
    """A permutation of `range(num_items)` drawn from `torch.Generator().manual_seed(seed + epoch)`: the same on every
    process and after resumption (accelerate shards the batches of this order across processes)."""

    def __init__(self, num_items: int, seed: int = 0, shuffle: bool = True):
        self.num_items, self.seed, self.shuffle, self.epoch = num_items, seed, shuffle, 0

    def select_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.num_items))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_items, generator=generator).tolist())
