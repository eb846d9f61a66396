# SPDX-License-Identifier: Apache-2.0
"""Syn2Seq sequences: exo / transition / ego triplets turned into per-frame training tensors.

A sample (from :class:`~.dataset.Syn2SeqClipDataset` or :func:`~.synthetic.render_synthetic_clip`) holds
synchronised `exo` and `ego` clips (uint8 `(T, H, W, 3)`), their poses (`(T, 16)`, the pose format of
`shared/design/dfot.md`) and optionally a cached `transition` with `transition_poses`.
:func:`build_syn2seq_sequence` lays them out as one sequence

    S = [exo_1 .. exo_Ne | transition_1 .. transition_Ni | ego_1 .. ego_Ng]

in one of three modes (`MODES`):

- `"jump"`: no transition, `S = [exo | ego]` (the condition-output baseline);
- `"video"`: the transition frames are present but their pose is unknown: `pose_mask` is False there
  and the stored pose is only a placeholder (the nearest valid pose) that a model must ignore;
- `"video+pose"`: the transition frames carry poses on the interpolated camera path (the cached
  `transition_poses`, or `diffusers_syn2seq.camera.interpolate_camera_path` from the last exo pose to
  the first ego pose when none are cached).

Reversal (Ego2Exo) plays the whole sequence backwards, `[ego_Ng .. ego_1 | transition reversed |
exo_Ne .. exo_1]`, the only order that stays continuous at both boundaries (`reversal="full"`, default);
`reversal="segments"` keeps each clip's own time order, `[ego | reversed transition | exo]`, with a jump
inside the sequence at each boundary. Segment ids name the content (ego frames are `SEGMENT_EGO` in both
directions).

:func:`sample_window` cuts a window of at most `max_frames` frames at a random start (inside one
segment or across boundaries) and normalises its poses by its first valid frame (that camera becomes
the world frame). :class:`Syn2SeqSequenceBuilder` does both with a random reversal of probability `p`,
and :func:`collate_syn2seq` batches windows, padding to the longest.

Per-frame tensors of a sequence / window (F frames):

- `frames`: float32 `(F, C, H, W)`, C = 3 RGB, values in [-1, 1] (uint8 / 127.5 - 1), frame-major like
  DFoT's `(B, T, C, H, W)` input;
- `poses`: float32 `(F, 16)`;  `pose_mask`: bool `(F,)`, True where the pose is known;
- `segment_ids`: int64 `(F,)`, `SEGMENT_EXO` 0, `SEGMENT_TRANSITION` 1, `SEGMENT_EGO` 2;
- `frame_mask`: bool `(F,)`, True for real frames (False only for collate padding);
- `frame_index`: int64 `(F,)` index of the frame within its own clip (exo/ego frame i, transition frame i).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from ..camera import interpolate_camera_path, normalize_by_first

__all__ = [
    "MODES",
    "SEGMENT_EGO",
    "SEGMENT_EXO",
    "SEGMENT_TRANSITION",
    "Syn2SeqSequenceBuilder",
    "Syn2SeqSequenceDataset",
    "build_syn2seq_sequence",
    "collate_syn2seq",
    "frames_to_tensor",
    "sample_window",
]

MODES = ("jump", "video", "video+pose")
SEGMENT_EXO, SEGMENT_TRANSITION, SEGMENT_EGO = 0, 1, 2
TransitionFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 `(T, H, W, 3)` in [0, 255] -> float32 `(T, 3, H, W)` in [-1, 1]."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def _poses(poses: Any, num: int, name: str) -> np.ndarray:
    arr = np.asarray(poses, dtype=np.float64)
    if arr.shape != (num, 16):
        raise ValueError(f"{name} must have shape ({num}, 16) (one pose per frame), got {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        row = int(np.argmax(~np.isfinite(arr).all(axis=1)))
        raise ValueError(f"{name} row {row} contains NaN or inf")
    return arr


def build_syn2seq_sequence(
    sample: Mapping[str, Any],
    mode: str = "video+pose",
    reverse: bool = False,
    reversal: Literal["full", "segments"] = "full",
    transition_fn: TransitionFn | None = None,
    num_transition_frames: int | None = None,
) -> dict[str, Any]:
    """Lay out one exo/ego sample as a Syn2Seq sequence (module docstring for the tensors).

    Args:
        sample: mapping with `exo`, `ego` (uint8 `(T, H, W, 3)`, same shape), `exo_poses`, `ego_poses`
            (`(T, 16)`), optionally `transition` (`(N, H, W, 3)`) and `transition_poses` (`(N, 16)`).
        mode: one of `MODES`.
        reverse: build the Ego2Exo sequence (see `reversal`).
        reversal: `"full"` (whole sequence backwards, continuous) or `"segments"` (`[ego | reversed
            transition | exo]`, clips in their own order).
        transition_fn: makes the transition when the sample has none (`first_frame, last_frame,
            num_frames -> frames`, e.g. `transitions.CrossfadeTransition`); required then in the
            `video` modes.
        num_transition_frames: frames for `transition_fn` (required with it).

    Returns:
        dict with `frames`, `poses`, `pose_mask`, `segment_ids`, `frame_mask`, `frame_index` (torch,
        full length), `reversed` (bool), `mode`, `num_frames` per segment (`(Ne, Ni, Ng)` in sequence
        order), and `take_id` when the sample has one. Poses are float64 in the sample's world frame;
        `sample_window` normalises them and returns float32.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if reversal not in ("full", "segments"):
        raise ValueError(f"reversal must be 'full' or 'segments', got {reversal!r}")
    exo, ego = np.asarray(sample["exo"]), np.asarray(sample["ego"])
    if exo.ndim != 4 or exo.shape[1:] != ego.shape[1:]:
        raise ValueError(f"exo and ego must be (T, H, W, 3) with the same frame size, got {exo.shape} and {ego.shape}")
    exo_poses = _poses(sample["exo_poses"], len(exo), "exo_poses")
    ego_poses = _poses(sample["ego_poses"], len(ego), "ego_poses")
    take = sample.get("take_id")

    transition = np.zeros((0, *exo.shape[1:]), np.uint8)
    tr_poses = np.zeros((0, 16))
    if mode != "jump":
        if sample.get("transition") is not None:
            transition = np.asarray(sample["transition"])
            if transition.ndim != 4 or transition.shape[1:] != exo.shape[1:]:
                raise ValueError(f"transition must be (N, {exo.shape[1]}, {exo.shape[2]}, 3), got {transition.shape}")
        elif transition_fn is not None:
            if not num_transition_frames or num_transition_frames < 1:
                raise ValueError(f"num_transition_frames must be >= 1 with transition_fn, got {num_transition_frames}")
            transition = np.asarray(transition_fn(exo[-1], ego[0], num_transition_frames))
        else:
            raise ValueError(
                f"mode {mode!r} needs a transition: sample {take!r} has none and no transition_fn was given"
            )
        n = len(transition)
        if mode == "video+pose" and n:
            if sample.get("transition") is not None and sample.get("transition_poses") is not None:
                tr_poses = _poses(sample["transition_poses"], n, "transition_poses")
            else:
                tr_poses = interpolate_camera_path(
                    torch.from_numpy(exo_poses[-1]), torch.from_numpy(ego_poses[0]), n
                ).numpy()
        else:
            tr_poses = np.full((n, 16), np.nan)  # unknown; replaced by a placeholder below

    segments = [
        (exo, exo_poses, SEGMENT_EXO, True),
        (transition, tr_poses, SEGMENT_TRANSITION, mode == "video+pose"),
        (ego, ego_poses, SEGMENT_EGO, True),
    ]
    if reverse:
        segments = segments[::-1]
        flip_clips = reversal == "full"
        segments = [
            (f[::-1], p[::-1], sid, valid) if (flip_clips or sid == SEGMENT_TRANSITION) else (f, p, sid, valid)
            for f, p, sid, valid in segments
        ]
    frames = np.concatenate([s[0] for s in segments])
    poses = np.concatenate([s[1] for s in segments])
    pose_mask = np.concatenate([np.full(len(s[0]), s[3]) for s in segments])
    segment_ids = np.concatenate([np.full(len(s[0]), s[2]) for s in segments])
    frame_index = np.concatenate(
        [
            np.arange(len(s[0]))[::-1]
            if reverse and (reversal == "full" or s[2] == SEGMENT_TRANSITION)
            else np.arange(len(s[0]))
            for s in segments
        ]
    )
    # Placeholders for unknown poses: the nearest valid pose (earlier in the sequence, else later).
    valid_idx = np.flatnonzero(pose_mask)
    for i in np.flatnonzero(~pose_mask):
        before = valid_idx[valid_idx < i]
        poses[i] = poses[before[-1] if len(before) else valid_idx[valid_idx > i][0]]
    return {
        "frames": frames_to_tensor(frames),
        "poses": torch.from_numpy(poses),  # float64 until `sample_window`
        "pose_mask": torch.from_numpy(pose_mask),
        "segment_ids": torch.from_numpy(segment_ids.astype(np.int64)),
        "frame_mask": torch.ones(len(frames), dtype=torch.bool),
        "frame_index": torch.from_numpy(frame_index.astype(np.int64).copy()),
        "reversed": bool(reverse),
        "mode": mode,
        "num_frames": tuple(len(s[0]) for s in segments),
        "take_id": take,
    }


def sample_window(
    sequence: Mapping[str, Any],
    max_frames: int,
    start: int | None = None,
    rng: np.random.Generator | None = None,
    normalize_poses: bool = True,
) -> dict[str, Any]:
    """A window of `min(max_frames, F)` consecutive frames of a sequence.

    Args:
        sequence: output of `build_syn2seq_sequence`.
        max_frames: window length (>= 1); a shorter sequence is returned whole.
        start: first frame; None draws it uniformly from `[0, F - max_frames]` with `rng`.
        normalize_poses: express poses relative to the window's first valid-pose frame
            (`camera.normalize_by_first`), so that camera becomes the world frame; computed in float64.

    Returns:
        the per-frame tensors of the window (same keys as the sequence) plus `window_start`.
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
    window = slice(start, start + length)
    out = {
        k: sequence[k][window] for k in ("frames", "poses", "pose_mask", "segment_ids", "frame_mask", "frame_index")
    }
    if normalize_poses:
        poses64 = out["poses"].double()
        valid = torch.nonzero(out["pose_mask"]).flatten()
        ref = int(valid[0]) if len(valid) else 0
        out["poses"] = normalize_by_first(torch.cat([poses64[ref : ref + 1], poses64]))[1:]
    out["poses"] = out["poses"].float()
    out.update(
        window_start=start,
        reversed=sequence["reversed"],
        mode=sequence["mode"],
        take_id=sequence.get("take_id"),
    )
    return out


class Syn2SeqSequenceBuilder:
    """Sample -> training window: Syn2Seq layout, random Ego2Exo reversal, random window.

    Args:
        mode: one of `MODES`.
        max_frames: window length.
        reverse_prob: probability of the Ego2Exo reversal (0.5 trains one model for both directions).
        reversal: see `build_syn2seq_sequence`.
        transition_fn, num_transition_frames: transition for samples without a cached one.
        normalize_poses: see `sample_window`.
        seed: seed of the builder's own random generator (reversal and window start).
    """

    def __init__(
        self,
        mode: str = "video+pose",
        max_frames: int = 16,
        reverse_prob: float = 0.0,
        reversal: Literal["full", "segments"] = "full",
        transition_fn: TransitionFn | None = None,
        num_transition_frames: int | None = None,
        normalize_poses: bool = True,
        seed: int | None = None,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0.0 <= reverse_prob <= 1.0:
            raise ValueError(f"reverse_prob must be in [0, 1], got {reverse_prob}")
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self.mode, self.max_frames, self.reverse_prob, self.reversal = mode, max_frames, reverse_prob, reversal
        self.transition_fn, self.num_transition_frames = transition_fn, num_transition_frames
        self.normalize_poses = normalize_poses
        self.rng = np.random.default_rng(seed)

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        reverse = bool(self.rng.uniform() < self.reverse_prob)
        sequence = build_syn2seq_sequence(
            sample, self.mode, reverse, self.reversal, self.transition_fn, self.num_transition_frames
        )
        return sample_window(sequence, self.max_frames, rng=self.rng, normalize_poses=self.normalize_poses)


class Syn2SeqSequenceDataset(torch.utils.data.Dataset):
    """Applies a `Syn2SeqSequenceBuilder` to every item of a sample dataset (e.g. `Syn2SeqClipDataset`).

    In a DataLoader worker the builder's generator is reseeded once from the worker's seed, so workers
    (which start from copies of the same builder) do not draw identical windows and reversals.
    """

    def __init__(self, samples: Sequence[Mapping[str, Any]], builder: Syn2SeqSequenceBuilder):
        self.samples, self.builder = samples, builder
        self._worker_seeded: int | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and self._worker_seeded != worker.id:
            self.builder.rng = np.random.default_rng(worker.seed)
            self._worker_seeded = worker.id
        return self.builder(self.samples[index])


def collate_syn2seq(batch: Sequence[Mapping[str, Any]], pad_to: int | None = None) -> dict[str, Any]:
    """Stack windows into a batch, padding shorter ones at the end to the longest (or `pad_to`) frames.

    Padding frames are zeros with `frame_mask` False, `pose_mask` False, `segment_ids` -1 and identity
    poses (fx = fy = 1, px = py = 0.5, R = I, T = 0), so they are valid numbers that carry nothing.

    Returns:
        `frames` float32 `(B, F, C, H, W)`, `poses` float32 `(B, F, 16)`, `pose_mask`, `frame_mask` bool
        `(B, F)`, `segment_ids`, `frame_index` int64 `(B, F)`, `window_start` int64 `(B,)`, `reversed`
        bool `(B,)`, and lists `take_id`, `mode`.
    """
    if not batch:
        raise ValueError("batch must hold at least one window, got an empty batch")
    length = max(len(item["frames"]) for item in batch)
    if pad_to is not None:
        if pad_to < length:
            raise ValueError(f"pad_to={pad_to} is shorter than the longest window ({length} frames)")
        length = pad_to
    shape = batch[0]["frames"].shape[1:]
    identity = torch.tensor([1.0, 1.0, 0.5, 0.5, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    out: dict[str, list] = {
        k: [] for k in ("frames", "poses", "pose_mask", "frame_mask", "segment_ids", "frame_index")
    }
    for item in batch:
        if item["frames"].shape[1:] != shape:
            raise ValueError(
                f"all windows must have frames of shape (F, {tuple(shape)}), got {tuple(item['frames'].shape)}"
            )
        pad = length - len(item["frames"])
        out["frames"].append(torch.cat([item["frames"], item["frames"].new_zeros(pad, *shape)]))
        out["poses"].append(torch.cat([item["poses"], identity.expand(pad, 16)]))
        out["pose_mask"].append(torch.cat([item["pose_mask"], torch.zeros(pad, dtype=torch.bool)]))
        out["frame_mask"].append(torch.cat([item["frame_mask"], torch.zeros(pad, dtype=torch.bool)]))
        out["segment_ids"].append(torch.cat([item["segment_ids"], torch.full((pad,), -1, dtype=torch.int64)]))
        out["frame_index"].append(torch.cat([item["frame_index"], torch.full((pad,), -1, dtype=torch.int64)]))
    result: dict[str, Any] = {k: torch.stack(v) for k, v in out.items()}
    result["window_start"] = torch.tensor([int(item.get("window_start", 0)) for item in batch])
    result["reversed"] = torch.tensor([bool(item["reversed"]) for item in batch])
    result["take_id"] = [item.get("take_id") for item in batch]
    result["mode"] = [item["mode"] for item in batch]
    return result
