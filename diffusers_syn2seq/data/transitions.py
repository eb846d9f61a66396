# SPDX-License-Identifier: Apache-2.0
"""Transition sources: the frames that bridge the last exo frame and the first ego frame.

Every source is a callable with one interface::

    source(first_frame, last_frame, num_frames, sample=None) -> frames

- `first_frame`, `last_frame`: uint8 RGB `(H, W, 3)` in [0, 255] (the last exo and the first ego frame);
- `num_frames`: number of *in-between* frames N (the endpoints are not repeated: frame i sits at path
  parameter `(i + 1) / (N + 1)`, like `camera.interpolate_camera_path`);
- `sample`: the take (a dataset item or a `render_synthetic_clip` dict), for sources that need more
  than the two frames (`render`);
- returns uint8 `(N, H, W, 3)` at the size of `first_frame`.

Sources:

- :class:`CrossfadeTransition`: linear blend in pixel space, or in the latent space of an image VAE
  (`vae=`, any diffusers autoencoder with `encode(x).latent_dist` and `decode(z).sample`, e.g.
  `AutoencoderKL`, applied per frame);
- :class:`RenderTransition`: the true fly-through of a SynthEgoExo scene (synthetic takes only);
- :class:`FirstLastFrameTransition`: any diffusers first-last-frame video pipeline called like
  `WanImageToVideoPipeline` (`image=`, `last_image=`, `num_frames=`, `height=`, `width=`,
  `output_type="np"`); its output (which includes both end frames) is trimmed to the interior,
  resampled to N frames and resized to the clip's size.

:func:`transition_path_poses` gives the poses stored with a cached transition (the interpolated camera
path); `training/cache_transitions.py` runs a source over a whole dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from ..camera import interpolate_camera_path
from ..validation import check_positive_int

__all__ = [
    "CrossfadeTransition",
    "FirstLastFrameTransition",
    "RenderTransition",
    "TransitionSource",
    "make_transition_source",
    "transition_path_poses",
]


class TransitionSource(Protocol):
    """`(first_frame, last_frame, num_frames, sample=None) -> uint8 (N, H, W, 3)`; see the module docstring."""

    name: str

    def __call__(
        self, first_frame: np.ndarray, last_frame: np.ndarray, num_frames: int, sample: Mapping[str, Any] | None = None
    ) -> np.ndarray: ...


def _check_ends(first_frame: np.ndarray, last_frame: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    first, last = np.asarray(first_frame), np.asarray(last_frame)
    if first.ndim != 3 or first.shape[-1] != 3 or first.dtype != np.uint8:
        raise ValueError(f"first_frame must be uint8 (H, W, 3), got {first.dtype} {tuple(first.shape)}")
    if last.shape != first.shape or last.dtype != np.uint8:
        raise ValueError(
            f"last_frame must be uint8 {tuple(first.shape)} like first_frame, got {last.dtype} {tuple(last.shape)}"
        )
    check_positive_int("num_frames", num_frames)
    return first, last


def _fractions(num_frames: int) -> np.ndarray:
    return np.arange(1, num_frames + 1, dtype=np.float64) / (num_frames + 1)


def transition_path_poses(start_pose: np.ndarray, end_pose: np.ndarray, num_frames: int) -> np.ndarray:
    """float64 `(N, 16)` poses of the N in-between frames on the SLERP/lerp path from `start_pose` (the
    last exo pose) to `end_pose` (the first ego pose), from `camera.interpolate_camera_path`."""
    start = torch.as_tensor(np.asarray(start_pose, dtype=np.float64))
    end = torch.as_tensor(np.asarray(end_pose, dtype=np.float64))
    return interpolate_camera_path(start, end, num_frames).numpy()


class CrossfadeTransition:
    """Linear blend from `first_frame` to `last_frame`: frame i is `(1 - a) first + a last` with
    `a = (i + 1) / (N + 1)`, in pixel space, or in the latent space of `vae` (decoded per frame).

    Args:
        vae: optional image autoencoder (`encode(x (B, 3, H, W) in [-1, 1]).latent_dist`,
            `decode(z).sample`); None blends pixels.
        sample_latent: use the posterior mode (False, deterministic) or a sample (True).
    """

    def __init__(self, vae: Any | None = None, sample_latent: bool = False):
        self.vae = vae
        self.sample_latent = sample_latent
        self.name = "crossfade" if vae is None else "crossfade_latent"

    def __call__(
        self, first_frame: np.ndarray, last_frame: np.ndarray, num_frames: int, sample: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        first, last = _check_ends(first_frame, last_frame, num_frames)
        alpha = _fractions(num_frames)[:, None, None, None]
        if self.vae is None:
            blend = (1 - alpha) * first.astype(np.float64) + alpha * last.astype(np.float64)
            return np.clip(np.round(blend), 0, 255).astype(np.uint8)
        vae = self.vae
        param = next(vae.parameters())
        x = torch.from_numpy(np.stack([first, last])).permute(0, 3, 1, 2).to(param.device, param.dtype)
        x = x / 127.5 - 1.0
        with torch.no_grad():
            posterior = vae.encode(x).latent_dist
            z = posterior.sample() if self.sample_latent else posterior.mode()
            a = torch.as_tensor(alpha[:, :, 0, 0], dtype=z.dtype, device=z.device)[..., None, None]  # (N, 1, 1, 1)
            zs = (1 - a) * z[:1] + a * z[1:2]
            decoded = vae.decode(zs).sample
        decoded = ((decoded.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        return _resize(decoded, first.shape[0], first.shape[1])


class RenderTransition:
    """The true transition of a SynthEgoExo take: rendered along the camera path from the last exo pose to
    the first ego pose while scene time runs from the last exo instant to the first ego instant.

    Needs `sample` with `seed`, `fps`, `exo_poses`, `ego_poses` (synthetic takes only; exo and ego
    synchronised, frame i at time i / fps), and reads its scene `style` (`"textured"` or `"flat"`, the take's
    `style` column; missing or None means `"textured"`, the only style of takes written before the option
    existed), so the transition is drawn like the take. `first_frame`/`last_frame` only fix the output size.
    """

    name = "render"

    def __call__(
        self, first_frame: np.ndarray, last_frame: np.ndarray, num_frames: int, sample: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        from .synthetic import SynthEgoExo

        first, _ = _check_ends(first_frame, last_frame, num_frames)
        if sample is None or sample.get("seed") is None or int(sample["seed"]) < 0:
            take = None if sample is None else sample.get("take_id")
            raise ValueError(
                f"the 'render' transition needs a synthetic take with a scene seed, got take {take!r} without one"
            )
        style = sample.get("style") or "textured"
        scene = SynthEgoExo(int(sample["seed"]), fps=float(sample["fps"]), style=style)
        exo_poses = np.asarray(sample["exo_poses"], dtype=np.float64)
        ego_poses = np.asarray(sample["ego_poses"], dtype=np.float64)
        times = scene.frame_times(len(exo_poses))
        poses, path_times = scene.transition_path(
            exo_poses[-1], ego_poses[0], times[-1], times[0], _fractions(num_frames)
        )
        return scene.render(poses, path_times, first.shape[:2])


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in frames])


class FirstLastFrameTransition:
    """Transitions from a diffusers first-last-frame video pipeline (e.g. `WanImageToVideoPipeline` with
    a first-last-frame checkpoint).

    The pipeline is called as `pipeline(image=PIL, last_image=PIL, prompt=prompt, num_frames=M,
    height=h, width=w, output_type="np", generator=..., **pipeline_kwargs)` and must return an object
    whose `.frames[0]` is `(M, h, w, 3)` in [0, 1] (first and last frames included). M is the smallest
    `temporal_multiple * k + 1 >= N + 2` (Wan's VAE needs `M - 1` divisible by 4); the M - 2 interior
    frames are resampled to N (nearest in time) and resized (bicubic) to the clip's size.

    Args:
        pipeline: the pipeline object (duck-typed).
        prompt: text prompt (not passed when `prompt_embeds` is given in `pipeline_kwargs`; Wan's
            prompt cleaning needs the `ftfy` package, precomputed embeddings do not).
        height, width: generation size (multiples of `size_multiple`); None: the clip's size rounded up.
        size_multiple: Wan needs multiples of 16.
        temporal_multiple: Wan's temporal VAE factor (4).
        seed: generator seed per call (deterministic caches).
        pipeline_kwargs: passed through (e.g. `num_inference_steps`, `guidance_scale`).
    """

    name = "flf"

    def __init__(
        self,
        pipeline: Any,
        prompt: str = "",
        height: int | None = None,
        width: int | None = None,
        size_multiple: int = 16,
        temporal_multiple: int = 4,
        seed: int = 0,
        **pipeline_kwargs: Any,
    ):
        for name, value in (("height", height), ("width", width)):
            if value is not None and (value < 1 or value % size_multiple):
                raise ValueError(f"{name} must be a positive multiple of {size_multiple}, got {value}")
        self.pipeline, self.prompt = pipeline, prompt
        self.height, self.width = height, width
        self.size_multiple, self.temporal_multiple = size_multiple, temporal_multiple
        self.seed = seed
        self.pipeline_kwargs = pipeline_kwargs

    def __call__(
        self, first_frame: np.ndarray, last_frame: np.ndarray, num_frames: int, sample: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        first, last = _check_ends(first_frame, last_frame, num_frames)
        height, width = first.shape[:2]
        m = self.size_multiple
        gen_h = self.height or -(-height // m) * m
        gen_w = self.width or -(-width // m) * m
        k = self.temporal_multiple
        total = -(-(num_frames + 1) // k) * k + 1  # smallest k * j + 1 >= N + 2
        kwargs = dict(self.pipeline_kwargs)
        if "prompt_embeds" not in kwargs:
            kwargs["prompt"] = self.prompt
        output = self.pipeline(
            image=Image.fromarray(first).resize((gen_w, gen_h), Image.BICUBIC),
            last_image=Image.fromarray(last).resize((gen_w, gen_h), Image.BICUBIC),
            num_frames=total,
            height=gen_h,
            width=gen_w,
            output_type="np",
            generator=torch.Generator().manual_seed(self.seed),
            **kwargs,
        )
        video = np.asarray(output.frames[0])
        if video.ndim != 4 or video.shape[-1] != 3 or len(video) < 3:
            raise ValueError(
                "the first-last-frame pipeline must return frames[0] of shape (M >= 3, H, W, 3), "
                f"got {tuple(video.shape)}"
            )
        interior = video[1:-1]
        # interior frame j sits at (j + 1) / (M - 1); pick the nearest for each wanted (i + 1) / (N + 1)
        have = np.arange(1, len(interior) + 1) / (len(interior) + 1)
        pick = np.abs(have[None, :] - _fractions(num_frames)[:, None]).argmin(axis=1)
        frames = (np.clip(interior[pick], 0.0, 1.0) * 255.0).round().astype(np.uint8)
        return _resize(frames, height, width)


def make_transition_source(name: str, **kwargs: Any) -> TransitionSource:
    """The source called `name` (`"crossfade"`, `"crossfade_latent"` (needs `vae=`), `"render"`, `"flf"`
    (needs `pipeline=`)), for command-line tools."""
    if name == "crossfade":
        return CrossfadeTransition(**kwargs)
    if name == "crossfade_latent":
        if kwargs.get("vae") is None:
            raise ValueError("the 'crossfade_latent' transition needs vae=")
        return CrossfadeTransition(**kwargs)
    if name == "render":
        return RenderTransition(**kwargs)
    if name == "flf":
        return FirstLastFrameTransition(**kwargs)
    raise ValueError(
        f"transition source must be one of ['crossfade', 'crossfade_latent', 'render', 'flf'], got {name!r}"
    )
