# SPDX-License-Identifier: Apache-2.0
"""Per-frame VAE encoding and decoding between pixels and model space, shared by the pipeline and training.

Latent models see each frame encoded on its own by a 2D `AutoencoderKL` (posterior mode), shifted and scaled into
model space: `(z - shift_factor) * scaling_factor`. The pipeline, the training script and the latent cache all go
through these functions, so training and sampling cannot disagree on that space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .data.sequence import frames_to_tensor

__all__ = ["decode_frames", "encode_frames", "encode_take_latents"]


def encode_frames(vae, frames: torch.Tensor) -> torch.Tensor:
    """Per-frame VAE encoding: `(N, 3, H, W)` pixels in [-1, 1] -> `(N, C, h, w)` float32 model-space latents
    (posterior mode, `(z - shift_factor) * scaling_factor`)."""
    latents = vae.encode(frames.to(vae.device, vae.dtype)).latent_dist.mode().float()
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (latents - shift) * vae.config.scaling_factor


def decode_frames(vae, latents: torch.Tensor) -> torch.Tensor:
    """Inverse of `encode_frames`: `(N, C, h, w)` model-space latents -> `(N, 3, H, W)` float32 pixels in [-1, 1]
    (undo the scaling and shift, then decode each frame)."""
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    z = latents.float() / vae.config.scaling_factor + shift
    return vae.decode(z.to(vae.device, vae.dtype)).sample.float()


@torch.no_grad()
def encode_take_latents(vae, take: Mapping[str, Any], transition_fn=None, num_transition_frames: int | None = None,
                        batch_size: int = 16) -> dict[str, Any]:
    """Latents of one decoded take for `Syn2SeqTrainingWindows(latents=...)`: `exo`, `ego`, `transition` (the cached
    transition, else `transition_fn(exo[-1], ego[0], n)`, else None) as CPU `(T, C, h, w)`, and their poses.

    `take` holds uint8 `(T, H, W, 3)` videos (`Syn2SeqClipDataset` items); they are encoded `batch_size` frames at a
    time.
    """

    def encode(video: np.ndarray) -> torch.Tensor:
        pixels = frames_to_tensor(video)
        return torch.cat([encode_frames(vae, chunk).cpu() for chunk in pixels.split(batch_size)])

    transition, transition_poses = take.get("transition"), take.get("transition_poses")
    if transition is None and transition_fn is not None and num_transition_frames:
        transition, transition_poses = transition_fn(take["exo"][-1], take["ego"][0], num_transition_frames), None
    return {
        "take_id": take.get("take_id"),
        "exo": encode(take["exo"]),
        "ego": encode(take["ego"]),
        "transition": None if transition is None else encode(transition),
        "exo_poses": np.asarray(take["exo_poses"]),
        "ego_poses": np.asarray(take["ego_poses"]),
        "transition_poses": None if transition_poses is None else np.asarray(transition_poses),
    }
