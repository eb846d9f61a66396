# SPDX-License-Identifier: Apache-2.0
"""The video, pose and condition inputs `Syn2SeqPipeline` accepts, converted to one tensor layout (a batch)."""

import os
from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from ..data.video_io import read_video
from ..validation import check_finite, describe

# One video: tensor `(F, 3, H, W)`, array `(F, H, W, 3)`, a list of PIL images, or a file path; tensors and arrays may
# also hold a batch `(B, F, ...)`. A list of videos (anything but a list of PIL images) is a batch.
VideoInput = torch.Tensor | np.ndarray | Sequence[PIL.Image.Image] | str | os.PathLike
PoseInput = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]
# Per-frame condition vectors (actions, ...) of one segment: `(F, D)` shared by the batch, `(B, F, D)`, or a list of
# `B` `(F, D)`.
ConditionInput = PoseInput


def videos_to_tensor(source_video: VideoInput | Sequence[VideoInput], size: tuple[int, int] | None = None
                     ) -> torch.Tensor:
    """Any supported video input, or a list of them (a batch), -> float32 `(B, F, 3, H, W)` in [-1, 1].

    `size` `(H, W)`: frames of another size are resized to it (bicubic with antialiasing, per video, clamped to
    [-1, 1]); None keeps them as they are. The videos of a batch must have the same number of frames.
    """
    if isinstance(source_video, (list, tuple)) and source_video \
            and not all(isinstance(img, PIL.Image.Image) for img in source_video):
        if any(isinstance(img, PIL.Image.Image) for img in source_video):
            raise ValueError("`source_video` as a list must be a list of PIL images (one video) or a list of videos "
                             "(a batch), got a mix of PIL images and "
                             f"{sorted({type(v).__name__ for v in source_video} - {'Image'})}.")
        videos = [videos_to_tensor(video, size) for video in source_video]
        lengths = sorted({v.shape[1] for v in videos})
        if len(lengths) > 1 or len({tuple(v.shape[-2:]) for v in videos}) > 1:
            raise ValueError(
                "the videos of a `source_video` batch must have the same number of frames and frame size, got "
                f"{[tuple(v.shape[1:]) for v in videos]} (F, 3, H, W); pass height/width to resize them all."
            )
        return torch.cat(videos)
    video = video_to_tensor(source_video)
    if size is not None and tuple(video.shape[-2:]) != tuple(size):
        batch, frames = video.shape[:2]
        resized = F.interpolate(video.flatten(0, 1), size=tuple(size), mode="bicubic", antialias=True,
                                align_corners=False)
        video = resized.clamp(-1.0, 1.0).unflatten(0, (batch, frames))
    return video


def video_to_tensor(source_video: VideoInput) -> torch.Tensor:
    """One supported video input -> float32 `(B, F, 3, H, W)` in [-1, 1].

    Accepted: tensor `(F, 3, H, W)` / `(B, F, 3, H, W)` and array `(F, H, W, 3)` / `(B, F, H, W, 3)`, uint8 in
    [0, 255] or float in [0, 1]; a list of PIL images (one video); a video file path (decoded with
    `diffusers_syn2seq.data.video_io.read_video`).
    """
    if isinstance(source_video, (str, os.PathLike)):
        source_video = read_video(source_video)
    if isinstance(source_video, (list, tuple)):
        if len(source_video) == 0:
            raise ValueError("`source_video` must hold at least 2 frames, got an empty list.")
        if not all(isinstance(img, PIL.Image.Image) for img in source_video):
            raise ValueError(
                "`source_video` given as a list must be a list of PIL images, got element types "
                f"{sorted({type(img).__name__ for img in source_video})}."
            )
        source_video = np.stack([np.asarray(img.convert("RGB")) for img in source_video])
    if isinstance(source_video, np.ndarray):
        if source_video.ndim not in (4, 5) or source_video.shape[-1] != 3:
            raise ValueError(
                "`source_video` as a numpy array must have shape (F, H, W, 3) or (B, F, H, W, 3), got "
                f"{source_video.shape}."
            )
        video = torch.from_numpy(np.ascontiguousarray(source_video))
        video = video.movedim(-1, -3)
    elif isinstance(source_video, torch.Tensor):
        if source_video.ndim not in (4, 5) or source_video.shape[-3] != 3:
            raise ValueError(
                "`source_video` as a tensor must have shape (F, 3, H, W) or (B, F, 3, H, W), got "
                f"{tuple(source_video.shape)}."
            )
        video = source_video.detach()
    else:
        raise ValueError(
            "`source_video` must be a torch.Tensor, a numpy array, a list of PIL images, a video file path or a list "
            f"of those (a batch), got {type(source_video).__name__}."
        )
    if video.ndim == 4:
        video = video[None]
    if video.shape[0] == 0:
        raise ValueError(f"`source_video` must hold at least one video, got a batch of shape {tuple(video.shape)}.")
    if video.shape[1] < 2:
        raise ValueError(f"`source_video` must have at least 2 frames, got {video.shape[1]}.")
    if video.dtype == torch.uint8:
        video = video.float() / 255.0
    elif video.is_floating_point():
        video = video.float()
        if not torch.isfinite(video).all() or video.min() < 0 or video.max() > 1:
            raise ValueError(
                "float `source_video` values must be finite and in [0, 1], got range "
                f"[{video.min().item():.3g}, {video.max().item():.3g}]."
            )
    else:
        raise ValueError(f"`source_video` must be uint8 or float, got dtype {video.dtype}.")
    return video * 2.0 - 1.0


def num_pose_frames(poses) -> int | None:
    """Frames in `(F, 16)` / `(B, F, 16)` poses or a list of `(F, 16)`; None when not given or not readable."""
    if isinstance(poses, (list, tuple)) and poses and hasattr(poses[0], "shape") and len(poses[0].shape) >= 2:
        return int(poses[0].shape[-2])
    if hasattr(poses, "shape") and len(poses.shape) >= 2:
        return int(poses.shape[-2])
    return None


def batch_poses(poses: PoseInput, name: str, batch: int, frames: int) -> torch.Tensor:
    """Float64 `(B, F, 16)` poses from `(F, 16)` (shared by the batch), `(B, F, 16)` or a list of `B` `(F, 16)` poses
    (tensors or float arrays), checked with `camera.validate_poses`."""
    from ..camera import validate_poses  # pure torch, imported with the pose path only

    expected = (f"a float tensor or array of shape ({frames}, 16) or ({batch}, {frames}, 16), or a list of {batch} "
                f"({frames}, 16) poses")
    if isinstance(poses, (list, tuple)) and poses and all(isinstance(p, (torch.Tensor, np.ndarray)) for p in poses) \
            and len({tuple(p.shape) for p in poses}) == 1:
        poses = torch.stack([torch.as_tensor(p) for p in poses])
    if isinstance(poses, np.ndarray):
        poses = torch.from_numpy(poses)
    if not isinstance(poses, torch.Tensor) or not poses.is_floating_point():
        raise ValueError(f"`{name}` must be {expected}, got {describe(poses)}.")
    if poses.ndim == 2:
        poses = poses[None].expand(batch, -1, -1)
    if poses.ndim != 3 or tuple(poses.shape) != (batch, frames, 16):
        raise ValueError(f"`{name}` must be {expected}, got shape {tuple(poses.shape)}.")
    validate_poses(poses, name)
    return poses.double()


def batch_conditions(conditions: ConditionInput, name: str, batch: int, frames: int, dim: int) -> torch.Tensor:
    """Float32 `(B, F, D)` condition vectors from `(F, D)` (shared by the batch), `(B, F, D)` or a list of `B`
    `(F, D)` (tensors or float arrays), checked for shape and finite values."""
    expected = (f"a float tensor or array of shape ({frames}, {dim}) or ({batch}, {frames}, {dim}) (frames, "
                f"condition_dim), or a list of {batch} ({frames}, {dim}) tensors")
    if isinstance(conditions, (list, tuple)) and conditions \
            and all(isinstance(c, (torch.Tensor, np.ndarray)) for c in conditions) \
            and len({tuple(c.shape) for c in conditions}) == 1:
        conditions = torch.stack([torch.as_tensor(c) for c in conditions])
    if isinstance(conditions, np.ndarray):
        conditions = torch.from_numpy(conditions)
    if not isinstance(conditions, torch.Tensor) or not conditions.is_floating_point():
        raise ValueError(f"`{name}` must be {expected}, got {describe(conditions)}.")
    if tuple(conditions.shape) not in ((frames, dim), (batch, frames, dim)):
        raise ValueError(f"`{name}` must be {expected}, got shape {tuple(conditions.shape)}.")
    conditions = check_finite(name, conditions).float()
    return conditions[None].expand(batch, -1, -1) if conditions.ndim == 2 else conditions
