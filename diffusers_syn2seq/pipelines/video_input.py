# SPDX-License-Identifier: Apache-2.0
"""The video inputs `Syn2SeqPipeline` accepts, converted to one tensor layout."""

import os
from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch

from ..data.video_io import read_video

VideoInput = torch.Tensor | np.ndarray | Sequence[PIL.Image.Image] | str | os.PathLike


def video_to_tensor(source_video: VideoInput) -> torch.Tensor:
    """Any supported video input -> float32 `(B, F, 3, H, W)` in [-1, 1].

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
            "`source_video` must be a torch.Tensor, a numpy array, a list of PIL images or a video file path, got "
            f"{type(source_video).__name__}."
        )
    if video.ndim == 4:
        video = video[None]
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
