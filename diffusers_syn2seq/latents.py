# SPDX-License-Identifier: Apache-2.0
"""VAE encoding and decoding between pixels and model space (per-frame image VAEs and causal video VAEs), shared by
the pipeline and training, and the per-take latent cache.

Per-frame VAEs (`AutoencoderKL`): each frame is encoded on its own (posterior mode) and shifted and scaled into model
space, `(z - shift_factor) * scaling_factor`, or, when the config carries per-channel `latents_mean` / `latents_std`
(DFoT's ImageVAE; diffusers' SDXL convention), `(z - latents_mean) * scaling_factor / latents_std`. Causal video VAEs
(`AutoencoderKLWan`, whose config has `temperal_downsample`, and `AutoencoderKLDFoTVideo`, whose config has
`temporal_compression_ratio`): a whole clip is encoded at once, frame 0 alone and then chunks of `t` frames
(`vae_scale_factors`), and normalised per channel, `(z - latents_mean) / latents_std`. Such a VAE is causal: encoding
a prefix gives the prefix of the joint encoding and decoding likewise (exactly for Wan; only approximately for DFoT's,
whose norms pool over the clip), but a clip encoded on its own differs from the
same frames inside a longer clip (its first latent becomes an image latent) and `enc(flip(x)) != flip(enc(x))`. So
sequences are encoded jointly, in sequence order, and decoded from their first latent. The pipeline, the training
script and the latent cache all go through these functions, so training and sampling cannot disagree on that space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .data.sequence import DIRECTIONS, build_syn2seq_sequence, frames_to_tensor, latent_sequence

__all__ = [
    "decode_frames",
    "decode_video",
    "encode_frames",
    "encode_take_latents",
    "encode_video",
    "is_video_vae",
    "load_vae",
    "vae_latent_channels",
    "vae_scale_factors",
]


def load_vae(name_or_path: str, subfolder: str | None = None, **kwargs: Any):
    """The VAE of a folder or Hub repo as the class its config names: a causal `AutoencoderKLWan` or
    `AutoencoderKLDFoTVideo`, else an `AutoencoderKL`; safetensors only (a checkpoint a user was handed is never
    unpickled). `kwargs` go to `from_pretrained` (`torch_dtype`, `revision`, ...)."""
    from diffusers import AutoencoderKL, AutoencoderKLWan

    from .models import AutoencoderKLDFoTVideo

    name = AutoencoderKL.load_config(name_or_path, subfolder=subfolder).get("_class_name")
    vae_class = {c.__name__: c for c in (AutoencoderKLWan, AutoencoderKLDFoTVideo)}.get(name, AutoencoderKL)
    kwargs["use_safetensors"] = True  # whatever the caller passed: never unpickle
    return vae_class.from_pretrained(name_or_path, subfolder=subfolder, **kwargs)


def is_video_vae(vae) -> bool:
    """True for a causal video VAE (`AutoencoderKLWan`, whose config has `temperal_downsample`, or one whose config
    states `temporal_compression_ratio`, as `AutoencoderKLDFoTVideo`), which encodes `(B, 3, F, H, W)` clips
    jointly; False for a per-frame image VAE and for None."""
    if vae is None:
        return False
    return any(getattr(vae.config, name, None) is not None for name in ("temperal_downsample",
                                                                         "temporal_compression_ratio"))


def vae_scale_factors(vae) -> tuple[int, int]:
    """`(temporal, spatial)` compression: `(1, 1)` without a VAE, `(1, 2 ** (levels - 1))` for a per-frame
    `AutoencoderKL`, the `temporal_compression_ratio` and `spatial_compression_ratio` a video VAE's config states,
    and for a Wan VAE `2 ** (temporal downsamplings)` pixel frames per latent frame after
    the first (4 for Wan) and its `scale_factor_spatial` (else `2 ** len(temperal_downsample)`, 8 for Wan)."""
    if vae is None:
        return 1, 1
    if getattr(vae.config, "temporal_compression_ratio", None) is not None:
        return int(vae.config.temporal_compression_ratio), int(vae.config.spatial_compression_ratio)
    if is_video_vae(vae):
        downsample = list(vae.config.temperal_downsample)
        spatial = getattr(vae.config, "scale_factor_spatial", None) or 2 ** len(downsample)
        return 2 ** sum(bool(d) for d in downsample), int(spatial)
    return 1, 2 ** (len(vae.config.block_out_channels) - 1)


def vae_latent_channels(vae) -> int:
    """Channels of the model space: 3 (pixels) without a VAE, else the VAE's latent channels (`latent_channels` of
    an `AutoencoderKL` or `AutoencoderKLDFoTVideo`, `z_dim` of an `AutoencoderKLWan`)."""
    if vae is None:
        return 3
    return getattr(vae.config, "latent_channels", None) or vae.config.z_dim


def _video_normalisation(vae, channels: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel `(mean, std)` of a video VAE's latents, shaped `(1, C, 1, 1, 1)` (0 and 1 when not configured)."""
    mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
    if mean is None or std is None or len(mean) != channels or len(std) != channels:
        return torch.zeros(1, channels, 1, 1, 1, device=device), torch.ones(1, channels, 1, 1, 1, device=device)
    shape = (1, channels, 1, 1, 1)
    return (torch.tensor(mean, device=device).view(shape), torch.tensor(std, device=device).view(shape))


def _frame_normalisation(vae, channels: int, device) -> tuple[torch.Tensor | float, torch.Tensor | float]:
    """`(shift, scale)` of a per-frame VAE, model space = `(z - shift) * scale`: per channel `(1, C, 1, 1)` from
    `latents_mean` and `scaling_factor / latents_std` when the config has both, else `shift_factor` (or 0) and
    `scaling_factor`."""
    mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
    if mean is not None and std is not None and len(mean) == channels and len(std) == channels:
        shape = (1, channels, 1, 1)
        return (torch.tensor(mean, device=device).view(shape),
                vae.config.scaling_factor / torch.tensor(std, device=device).view(shape))
    return getattr(vae.config, "shift_factor", None) or 0.0, vae.config.scaling_factor


def encode_frames(vae, frames: torch.Tensor) -> torch.Tensor:
    """Per-frame VAE encoding: `(N, 3, H, W)` pixels in [-1, 1] -> `(N, C, h, w)` float32 model-space latents
    (posterior mode, shifted and scaled by `_frame_normalisation`)."""
    latents = vae.encode(frames.to(vae.device, vae.dtype)).latent_dist.mode().float()
    shift, scale = _frame_normalisation(vae, latents.shape[1], latents.device)
    return (latents - shift) * scale


def decode_frames(vae, latents: torch.Tensor) -> torch.Tensor:
    """Inverse of `encode_frames`: `(N, C, h, w)` model-space latents -> `(N, 3, H, W)` float32 pixels in [-1, 1]
    (undo the scaling and shift, then decode each frame)."""
    shift, scale = _frame_normalisation(vae, latents.shape[1], latents.device)
    z = latents.float() / scale + shift
    return vae.decode(z.to(vae.device, vae.dtype)).sample.float()


def _frame_by_frame(fn, clips: torch.Tensor) -> torch.Tensor:
    """`fn` over every frame of `(B, C, F, H, W)` clips as one `(B F, C, H, W)` batch, back in clip layout."""
    batch, frames = clips.shape[0], clips.shape[2]
    return fn(clips.transpose(1, 2).flatten(0, 1)).unflatten(0, (batch, frames)).transpose(1, 2)


def encode_video(vae, video: torch.Tensor) -> torch.Tensor:
    """Clips `(B, 3, F, H, W)` in [-1, 1] -> model space `(B, C, F', h, w)` float32: the pixels themselves without a
    VAE, each frame encoded on its own by a per-frame VAE (`F' = F`), or the whole clip encoded jointly by a causal
    video VAE (`F = 1 + t a` frames -> `F' = 1 + a` latents; other counts raise, since the VAE would silently drop
    the frames of an incomplete chunk)."""
    if vae is None:
        return video.float()
    if not is_video_vae(vae):
        return _frame_by_frame(lambda images: encode_frames(vae, images), video)
    t, frames = vae_scale_factors(vae)[0], video.shape[2]
    if frames < 1 or (frames - 1) % t:
        raise ValueError(f"`video` must have 1 + {t} * a frames for a VAE compressing time {t}x, got {frames}.")
    z = vae.encode(video.to(vae.device, vae.dtype)).latent_dist.mode().float()
    mean, std = _video_normalisation(vae, z.shape[1], z.device)
    return (z - mean) / std


def decode_video(vae, latents: torch.Tensor) -> torch.Tensor:
    """Inverse of `encode_video`: model space `(B, C, F', h, w)` -> pixels `(B, 3, F, H, W)` float32 in [-1, 1]. A
    causal video VAE decodes the latents as one clip from their first latent (`F = 1 + t (F' - 1)` frames): pass the
    whole sequence, source latents first, and keep the part you need."""
    if vae is None:
        return latents.float()
    if not is_video_vae(vae):
        return _frame_by_frame(lambda frames: decode_frames(vae, frames), latents)
    mean, std = _video_normalisation(vae, latents.shape[1], latents.device)
    z = latents.float() * std + mean
    return vae.decode(z.to(vae.device, vae.dtype)).sample.float()


@torch.no_grad()
def encode_take_latents(vae, take: Mapping[str, Any], transition_fn=None, num_transition_frames: int | None = None,
                        batch_size: int = 16, mode: str = "video+pose", reversal: str = "full",
                        directions: Sequence[str] = DIRECTIONS) -> dict[str, Any]:
    """Latents of one decoded take for `Syn2SeqTrainingWindows(latents=...)`.

    Per-frame VAE: `exo`, `ego`, `transition` (the cached transition, else `transition_fn(exo[-1], ego[0], n)`, else
    None) as CPU `(T, C, h, w)`, encoded `batch_size` frames at a time, and their poses; any mode, direction and
    reversal can be laid out from them (a latent per frame, so flipping latents is flipping frames).

    Causal video VAE: that is not exact (a clip encoded alone differs from the same frames in the sequence, and
    `enc(flip(x)) != flip(enc(x))`), so the cache holds, for each of `directions`, the whole pixel sequence of
    `build_syn2seq_sequence(take, mode, direction == "ego2exo", reversal, ...)`, cut to latent boundaries and encoded
    jointly in sequence order: exactly the latents the pipeline sees when it encodes that source and decodes after
    it. Returned: `{"take_id", "mode", "reversal", "sequences": {direction: latent sequence (`latent_sequence`)}}`.
    """
    if is_video_vae(vae):
        t = vae_scale_factors(vae)[0]
        sequences = {}
        for direction in directions:
            pixels = build_syn2seq_sequence(take, mode, direction == "ego2exo", reversal, transition_fn,
                                            num_transition_frames, temporal_compression=t)
            latents = encode_video(vae, pixels["frames"].transpose(0, 1)[None])[0].transpose(0, 1).cpu()
            sequences[direction] = latent_sequence(pixels, latents, t)
        return {"take_id": take.get("take_id"), "mode": mode, "reversal": reversal, "sequences": sequences}

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
