# SPDX-License-Identifier: Apache-2.0
"""The Syn2Seq sequence `[source | transition | target]`: its frame layout, the gather that applies it, its poses.

One home for the sequence, used by training (`build_syn2seq_sequence`, `data/windows.py`) and sampling
(`Syn2SeqPipeline`), so both see the same frame order, segment ids, pose masks and poses.

    S = [exo_1 .. exo_Ne | transition_1 .. transition_Ni | ego_1 .. ego_Ng]     (direction "exo2ego")

Modes (`MODES`):

- `"jump"`: no transition, `S = [exo | ego]` (the condition-output baseline);
- `"video"`: transition frames are present but their pose is unknown (`pose_mask` False there; the stored pose is
  a placeholder on the interpolated camera path whose embedding the model drops);
- `"video+pose"`: transition frames carry poses on the camera path (cached `transition_poses`, or
  `camera.interpolate_camera_path` from the last exo to the first ego pose).

Direction `"ego2exo"` runs the same model on the reversed sequence. `reversal="full"` (default) plays the whole
sequence backwards, `[ego_Ng .. ego_1 | transition reversed | exo_Ne .. exo_1]`, the only order continuous at both
boundaries; `reversal="segments"` keeps each clip's own time order, `[ego | reversed transition | exo]`. Segment ids
name the content (ego frames are `SEGMENT_EGO` in both directions).

Per-frame tensors of a built sequence (F frames): `frames` `(F, C, H, W)` float32 (pixels in [-1, 1], or model-space
latents); `poses` float64 `(F, 16)` in the take's world frame (the DFoT pose vector of `camera.py`; normalised per
window by `windows.window_camera_rays`); `pose_mask` bool `(F,)`; `segment_ids` int64 `(F,)`; `frame_mask` bool
`(F,)` (False only for collate padding); `frame_index` int64 `(F,)`, the frame's index within its own clip.

Causal video VAEs (`AutoencoderKLWan`, time compressed `t = 4`x: pixel frame 0 alone, then chunks of `t`): a
sequence is encoded jointly, in sequence order, and must lie on latent boundaries: the source (first segment) holds
`1 + t*a` pixel frames, the transition `t*b` and the target `t*c`. `LatentLayout` counts such a sequence in latent
frames (`1 + a | b | c`); `trim_to_latent_boundaries` fits a built pixel sequence to them and `latent_sequence` turns
it into the per-frame tensors of its latents. Latents are never flipped (`enc(flip(x)) != flip(enc(x))`): Ego2Exo
reverses the pixels before encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..camera import interpolate_camera_path
from ..validation import check_choice, check_non_negative_int, check_positive_int
from .choices import DIRECTIONS, MODES, REVERSALS

__all__ = [
    "DEFAULT_NUM_TRANSITION_FRAMES",
    "DIRECTIONS",
    "LatentLayout",
    "MODES",
    "REVERSALS",
    "SEGMENT_EGO",
    "SEGMENT_EXO",
    "SEGMENT_TRANSITION",
    "SequenceLayout",
    "build_syn2seq_sequence",
    "frames_to_tensor",
    "latent_sequence",
    "trim_to_latent_boundaries",
]

SEGMENT_EXO, SEGMENT_TRANSITION, SEGMENT_EGO = 0, 1, 2
SEGMENT_NAMES = {SEGMENT_EXO: "exo", SEGMENT_TRANSITION: "transition", SEGMENT_EGO: "ego"}
# The one default transition length (training, pipeline config, command line); "jump" always has none.
DEFAULT_NUM_TRANSITION_FRAMES = 4
TransitionFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
# The per-frame tensors of a built sequence (one row per frame, sequence order).
PER_FRAME_KEYS = ("frames", "poses", "pose_mask", "segment_ids", "frame_mask", "frame_index")


@dataclass(frozen=True)
class SequenceLayout:
    """Where each frame of a Syn2Seq sequence comes from, in model (sequence) order.

    Args:
        num_exo, num_transition, num_ego: segment lengths (`num_transition` must be 0 in `"jump"` mode).
        mode: one of `MODES`; decides which transition frames carry a pose.
        direction: `"exo2ego"` (source = exo clip) or `"ego2exo"` (source = ego clip, reversed sequence).
        reversal: `"full"` or `"segments"` (module docstring); only read for `"ego2exo"`.
    """

    num_exo: int
    num_transition: int
    num_ego: int
    mode: str = "video+pose"
    direction: str = "exo2ego"
    reversal: str = "full"

    def __post_init__(self):
        check_choice("mode", self.mode, MODES)
        check_choice("direction", self.direction, DIRECTIONS)
        check_choice("reversal", self.reversal, REVERSALS)
        for name in ("num_exo", "num_transition", "num_ego"):
            check_non_negative_int(name, getattr(self, name))
        if self.mode == "jump" and self.num_transition:
            raise ValueError(f"`num_transition` must be 0 in 'jump' mode (no transition), got {self.num_transition}.")

    # -------------------------------------------------------------------------------------------- segments
    @property
    def segments(self) -> tuple[tuple[int, int, bool], ...]:
        """`(segment_id, length, reversed_in_time)` of each segment, in sequence order."""
        lengths = {SEGMENT_EXO: self.num_exo, SEGMENT_TRANSITION: self.num_transition, SEGMENT_EGO: self.num_ego}
        if self.direction == "exo2ego":
            return tuple((sid, lengths[sid], False) for sid in (SEGMENT_EXO, SEGMENT_TRANSITION, SEGMENT_EGO))
        # The transition always plays backwards in Ego2Exo; the clips too with the full reversal.
        full = self.reversal == "full"
        order = ((SEGMENT_EGO, full), (SEGMENT_TRANSITION, True), (SEGMENT_EXO, full))
        return tuple((sid, lengths[sid], flipped) for sid, flipped in order)

    @property
    def num_frames(self) -> int:
        return self.num_exo + self.num_transition + self.num_ego

    @property
    def source(self) -> str:
        """Name of the clip given to the model as clean history (`"exo"` or `"ego"`)."""
        return "exo" if self.direction == "exo2ego" else "ego"

    @property
    def target(self) -> str:
        """Name of the clip the model generates."""
        return "ego" if self.direction == "exo2ego" else "exo"

    @property
    def segment_ids(self) -> torch.Tensor:
        """int64 `(F,)`: `SEGMENT_EXO`, `SEGMENT_TRANSITION` or `SEGMENT_EGO` of each frame."""
        return torch.cat([torch.full((n,), sid, dtype=torch.int64) for sid, n, _ in self.segments])

    @property
    def frame_index(self) -> torch.Tensor:
        """int64 `(F,)`: index of each frame within its own clip (counting down in reversed segments)."""
        parts = [torch.arange(n - 1, -1, -1) if flipped else torch.arange(n) for _, n, flipped in self.segments]
        return torch.cat(parts).to(torch.int64)

    @property
    def pose_mask(self) -> torch.Tensor:
        """bool `(F,)`: True where the pose is known (every frame but the transition of `"video"` mode)."""
        known = {SEGMENT_EXO: True, SEGMENT_EGO: True, SEGMENT_TRANSITION: self.mode == "video+pose"}
        return torch.cat([torch.full((n,), known[sid], dtype=torch.bool) for sid, n, _ in self.segments])

    # -------------------------------------------------------------------------------------------- gather
    def gather(self, exo: torch.Tensor, transition: torch.Tensor | None, ego: torch.Tensor, dim: int = 0
               ) -> torch.Tensor:
        """Concatenate per-frame tensors (pixels, latents, noise, poses), each in natural time order along `dim`,
        into sequence order. `transition` may be None when the layout has no transition frames."""
        parts = {SEGMENT_EXO: exo, SEGMENT_TRANSITION: transition, SEGMENT_EGO: ego}
        out = []
        for sid, n, flipped in self.segments:
            part = parts[sid]
            if part is None:
                if n:
                    raise ValueError(f"`{SEGMENT_NAMES[sid]}` is None but the layout has {n} such frames.")
                continue
            if part.shape[dim] != n:
                raise ValueError(f"`{SEGMENT_NAMES[sid]}` must have {n} frames along dim {dim}, got "
                                 f"{part.shape[dim]} (shape {tuple(part.shape)}).")
            out.append(part.flip(dim) if flipped else part)
        return torch.cat(out, dim=dim)

    def source_in_sequence_order(self, source: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """The source clip (natural time order) as it stands at the start of the sequence."""
        flipped = self.segments[0][2]
        return source.flip(dim) if flipped else source

    def split(self, sequence: torch.Tensor, dim: int = 0) -> dict[str, torch.Tensor]:
        """Inverse of `gather`: `{"exo", "transition", "ego"}` slices of a sequence-order tensor, natural time order."""
        if sequence.shape[dim] != self.num_frames:
            raise ValueError(f"`sequence` must have {self.num_frames} frames along dim {dim}, got "
                             f"{sequence.shape[dim]}.")
        out, start = {}, 0
        for sid, n, flipped in self.segments:
            part = sequence.narrow(dim, start, n)
            out[SEGMENT_NAMES[sid]] = part.flip(dim) if flipped else part
            start += n
        return out

    # -------------------------------------------------------------------------------------------- poses
    def poses(self, exo_poses: torch.Tensor, ego_poses: torch.Tensor,
              transition_poses: torch.Tensor | None = None) -> torch.Tensor:
        """`(..., F, 16)` float64 poses in sequence order from natural-order `(..., N, 16)` clip poses.

        Transition frames get `transition_poses` when given in `"video+pose"` mode, else the camera path from the last
        exo to the first ego pose (`camera.interpolate_camera_path`); in `"video"` mode that path is only a
        placeholder (`pose_mask` False: the model drops its embedding).
        """
        exo_poses, ego_poses = exo_poses.double(), ego_poses.double()
        transition = None
        if self.num_transition:
            if transition_poses is not None and self.mode == "video+pose":
                transition = transition_poses.double()
            else:
                transition = interpolate_camera_path(exo_poses[..., -1, :], ego_poses[..., 0, :], self.num_transition)
        return self.gather(exo_poses, transition, ego_poses, dim=-2)


@dataclass(frozen=True)
class LatentLayout:
    """A `SequenceLayout` counted in the latent frames of a causal video VAE that compresses time `t` times.

    The VAE encodes pixel frame 0 of the sequence alone, then chunks of `t` frames: latent frame 0 holds pixel frame 0
    and latent frame `j >= 1` pixel frames `1 + t (j - 1) .. t j` (sequence order). Segments start on latent
    boundaries when the first segment (the source) has `1 + t a` pixel frames and the other two `t b` and `t c`; the
    latent sequence is then `[1 + a | b | c]`. Every latent frame carries the pose, pose mask, segment id and clip
    index of the last pixel frame it encodes (`pixel_index`: `0, t, 2t, ...`). Latents stay in sequence order: a
    reversed segment cannot be flipped back in latent space (`slices`, unlike `SequenceLayout.split`).

    Args:
        pixels: the layout in pixel frames.
        temporal_compression: `t` (>= 1).
    """

    pixels: SequenceLayout
    temporal_compression: int

    def __post_init__(self):
        t = check_positive_int("temporal_compression", self.temporal_compression)
        for position, (sid, n, _) in enumerate(self.pixels.segments):
            name = f"num_{SEGMENT_NAMES[sid]}"
            if position == 0 and (n < 1 or (n - 1) % t):
                raise ValueError(f"`{name}` (the source, first in sequence order) must be 1 + {t} * a pixel frames "
                                 f"(1, {1 + t}, {1 + 2 * t}, ...) for a VAE compressing time {t}x, got {n}.")
            if position > 0 and n % t:
                raise ValueError(f"`{name}` must be a multiple of {t} pixel frames (whole latent frames of a VAE "
                                 f"compressing time {t}x), got {n}.")

    @property
    def segments(self) -> tuple[tuple[int, int, bool], ...]:
        """`(segment_id, latent frames, reversed_in_time)` of each segment, in sequence order."""
        t = self.temporal_compression
        return tuple((sid, (n - 1) // t + 1 if position == 0 else n // t, flipped)
                     for position, (sid, n, flipped) in enumerate(self.pixels.segments))

    @property
    def num_frames(self) -> int:
        return sum(n for _, n, _ in self.segments)

    @property
    def source(self) -> str:
        return self.pixels.source

    @property
    def target(self) -> str:
        return self.pixels.target

    @property
    def pixel_index(self) -> torch.Tensor:
        """int64 `(L,)`: the pixel frame (sequence order) whose pose, mask and ids each latent frame carries."""
        return torch.arange(self.num_frames, dtype=torch.int64) * self.temporal_compression

    def subsample(self, per_pixel_frame: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """A per-pixel-frame tensor in sequence order -> its values at the latent frames (`pixel_index`)."""
        if per_pixel_frame.shape[dim] != self.pixels.num_frames:
            raise ValueError(f"`per_pixel_frame` must have {self.pixels.num_frames} frames along dim {dim}, got "
                             f"{per_pixel_frame.shape[dim]}.")
        return per_pixel_frame.index_select(dim, self.pixel_index.to(per_pixel_frame.device))

    @property
    def segment_ids(self) -> torch.Tensor:
        return self.subsample(self.pixels.segment_ids)

    @property
    def pose_mask(self) -> torch.Tensor:
        return self.subsample(self.pixels.pose_mask)

    @property
    def frame_index(self) -> torch.Tensor:
        return self.subsample(self.pixels.frame_index)

    def slices(self, sequence: torch.Tensor, dim: int = 0) -> dict[str, torch.Tensor]:
        """`{"exo", "transition", "ego"}` slices of a latent sequence, each left in sequence order."""
        if sequence.shape[dim] != self.num_frames:
            raise ValueError(f"`sequence` must have {self.num_frames} latent frames along dim {dim}, got "
                             f"{sequence.shape[dim]}.")
        out, start = {}, 0
        for sid, n, _ in self.segments:
            out[SEGMENT_NAMES[sid]] = sequence.narrow(dim, start, n)
            start += n
        return out


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 `(T, H, W, 3)` in [0, 255] -> float32 `(T, 3, H, W)` in [-1, 1]."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def _clip_tensor(frames: Any, name: str) -> torch.Tensor:
    """A clip as float `(T, C, H, W)`: uint8 `(T, H, W, 3)` images are converted, model-space tensors kept."""
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4:
            raise ValueError(f"{name} must be a (T, C, h, w) tensor, got shape {tuple(frames.shape)}")
        return frames.float()
    return frames_to_tensor(frames)


def _poses(poses: Any, num: int, name: str) -> torch.Tensor:
    arr = np.asarray(poses, dtype=np.float64)
    if arr.shape != (num, 16):
        raise ValueError(f"{name} must have shape ({num}, 16) (one pose per frame), got {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        row = int(np.argmax(~np.isfinite(arr).all(axis=1)))
        raise ValueError(f"{name} row {row} contains NaN or inf")
    return torch.from_numpy(arr)


def _transition_frames(sample: Mapping[str, Any], mode: str, transition_fn: TransitionFn | None,
                       num_transition_frames: int | None) -> Any:
    """The sample's transition clip (cached, else made by `transition_fn`), None in `"jump"` mode."""
    if mode == "jump":
        return None
    if sample.get("transition") is not None:
        return sample["transition"]
    if transition_fn is not None:
        if not num_transition_frames or num_transition_frames < 1:
            raise ValueError(f"num_transition_frames must be >= 1 with transition_fn, got {num_transition_frames}")
        return np.asarray(transition_fn(np.asarray(sample["exo"][-1]), np.asarray(sample["ego"][0]),
                                        num_transition_frames))
    raise ValueError(f"mode {mode!r} needs a transition: sample {sample.get('take_id')!r} has none and no "
                     "transition_fn was given")


def build_syn2seq_sequence(
    sample: Mapping[str, Any],
    mode: str = "video+pose",
    reverse: bool = False,
    reversal: str = "full",
    transition_fn: TransitionFn | None = None,
    num_transition_frames: int | None = None,
    temporal_compression: int = 1,
) -> dict[str, Any]:
    """Lay out one exo/ego take as a Syn2Seq sequence (module docstring for the tensors).

    Args:
        sample: mapping with `exo`, `ego` (uint8 `(T, H, W, 3)` images, or model-space `(T, C, h, w)` tensors such as
            cached latents), `exo_poses`, `ego_poses` (`(T, 16)`), optionally `transition` (same kind as the clips)
            and `transition_poses` (`(N, 16)`).
        mode: one of `MODES`.
        reverse: build the Ego2Exo sequence (see `reversal`).
        reversal: `"full"` or `"segments"`.
        transition_fn: makes the transition of image clips that have none (`first_frame, last_frame, num_frames ->
            frames`, e.g. `transitions.CrossfadeTransition`); required then in the `video` modes.
        num_transition_frames: frames for `transition_fn` (required with it).
        temporal_compression: `t` of the causal video VAE the pixel sequence will be encoded with; above 1 the
            sequence is cut to latent boundaries (`trim_to_latent_boundaries`).

    Returns:
        dict with `frames`, `poses`, `pose_mask`, `segment_ids`, `frame_mask`, `frame_index` (full length),
        `layout` (the `SequenceLayout`), `reversed`, `mode`, `num_frames` per segment in sequence order and `take_id`.
    """
    check_choice("mode", mode, MODES)
    exo, ego = _clip_tensor(sample["exo"], "exo"), _clip_tensor(sample["ego"], "ego")
    if exo.shape[1:] != ego.shape[1:]:
        raise ValueError(f"exo and ego must have the same frame size, got {tuple(exo.shape)} and {tuple(ego.shape)}")
    transition = _transition_frames(sample, mode, transition_fn, num_transition_frames)
    if transition is not None:
        transition = _clip_tensor(transition, "transition")
        if transition.shape[1:] != exo.shape[1:]:
            raise ValueError(f"transition must have frames of shape {tuple(exo.shape[1:])}, got "
                             f"{tuple(transition.shape)}")
    layout = SequenceLayout(len(exo), 0 if transition is None else len(transition), len(ego), mode,
                            "ego2exo" if reverse else "exo2ego", reversal)
    has_cached_path = mode == "video+pose" and sample.get("transition") is not None
    cached_path = sample.get("transition_poses") if has_cached_path else None
    poses = layout.poses(
        _poses(sample["exo_poses"], len(exo), "exo_poses"),
        _poses(sample["ego_poses"], len(ego), "ego_poses"),
        None if cached_path is None else _poses(cached_path, layout.num_transition, "transition_poses"),
    )
    sequence = {
        "frames": layout.gather(exo, transition, ego),
        "poses": poses,
        "pose_mask": layout.pose_mask,
        "segment_ids": layout.segment_ids,
        "frame_mask": torch.ones(layout.num_frames, dtype=torch.bool),
        "frame_index": layout.frame_index,
        "layout": layout,
        "reversed": bool(reverse),
        "mode": mode,
        "num_frames": tuple(n for _, n, _ in layout.segments),
        "take_id": sample.get("take_id"),
    }
    if check_positive_int("temporal_compression", temporal_compression) > 1:
        sequence = trim_to_latent_boundaries(sequence, temporal_compression)
    return sequence


def trim_to_latent_boundaries(sequence: Mapping[str, Any], temporal_compression: int) -> dict[str, Any]:
    """Cut a built pixel sequence (`build_syn2seq_sequence`) to the latent boundaries of a causal video VAE that
    compresses time `t` times: the source keeps its last `1 + t a` frames in sequence order and the target its first
    `t c` (the frames next to the transition; at most `t - 1` frames of each are dropped), so every direction of any
    take fits. The transition is never cut: its length must be a multiple of `t`.
    """
    t = check_positive_int("temporal_compression", temporal_compression)
    layout: SequenceLayout = sequence["layout"]
    (source_id, num_source, _), (_, num_transition, _), (target_id, num_target, _) = layout.segments
    if num_transition % t:
        raise ValueError(f"the transition must be a multiple of {t} frames (whole latent frames of a VAE compressing "
                         f"time {t}x; `num_transition_frames` or the cached transition clip), got {num_transition}.")
    keep_source, keep_target = 1 + t * ((num_source - 1) // t), t * (num_target // t)
    if num_source < 1 or keep_target < 1:
        raise ValueError(f"take {sequence.get('take_id')!r}: the source needs at least 1 frame and the target at "
                         f"least {t} for a VAE compressing time {t}x, got {num_source} and {num_target}.")
    start = num_source - keep_source
    end = start + keep_source + num_transition + keep_target
    trimmed = replace(layout, **{f"num_{SEGMENT_NAMES[source_id]}": keep_source,
                                 f"num_{SEGMENT_NAMES[target_id]}": keep_target})
    out = dict(sequence)
    out.update({key: sequence[key][start:end] for key in PER_FRAME_KEYS})
    out.update(layout=trimmed, num_frames=tuple(n for _, n, _ in trimmed.segments))
    return out


def latent_sequence(sequence: Mapping[str, Any], latents: torch.Tensor, temporal_compression: int
                    ) -> dict[str, Any]:
    """A pixel sequence on latent boundaries (`trim_to_latent_boundaries`) and its joint encoding `latents`
    `(L, C, h, w)` (sequence order) -> the same sequence in latent frames: `frames` = `latents`, the per-frame
    tensors at the latent frames (`LatentLayout.subsample`), `layout` the `LatentLayout`, `num_frames` in latents."""
    layout = LatentLayout(sequence["layout"], temporal_compression)
    if latents.ndim != 4 or latents.shape[0] != layout.num_frames:
        raise ValueError(f"`latents` must be ({layout.num_frames}, C, h, w) (the joint encoding of the "
                         f"{layout.pixels.num_frames}-frame sequence), got {tuple(latents.shape)}.")
    out = dict(sequence)
    out.update({key: layout.subsample(sequence[key]) for key in PER_FRAME_KEYS if key != "frames"})
    out.update(frames=latents, layout=layout, num_frames=tuple(n for _, n, _ in layout.segments))
    return out
