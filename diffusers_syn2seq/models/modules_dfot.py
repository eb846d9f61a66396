# SPDX-License-Identifier: Apache-2.0
"""Building blocks shared by the two DFoT backbones (DiT3D and U-ViT3D): 3D rotary embedding, Fourier noise-level
features, the keep-mask of the per-frame vector condition, and the retired `camera_dropout` config key.

The inputs both backbones take, and the checks of their configuration and inputs, are in `checks_dfot.py`.
"""

import functools
import math
from collections.abc import Mapping
from typing import Any

import torch
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.utils import logging
from torch import nn

logger = logging.get_logger(__name__)  # pylint: disable=invalid-name

#: ``(N, head_dim / 2, 2)`` float32 ``(cos, sin)`` of the rotation of each channel pair, for ``N`` tokens ordered
#: frame-major ``(f, h, w)`` (:func:`rope3d`).
RotaryEmbedding = torch.Tensor


# ----------------------------------------------------------------------------------------------------------------
# 3D rotary position embedding (axial, interleaved pairs), as DFoT's RoPE3D
# ----------------------------------------------------------------------------------------------------------------
def rope3d_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Rotary channels of the (frame, height, width) axes for a head of ``head_dim`` channels.

    The ``head_dim / 2`` frequency pairs are split over the three axes as ``(k, k, k)``, ``(k + 1, k, k)`` or
    ``(k, k + 1, k + 1)`` with ``k = head_dim // 6`` when ``(head_dim / 2) % 3`` is 0, 1 or 2, as DFoT does.
    Returns channel counts (twice the pairs).
    """
    if head_dim % 2 != 0:
        raise ValueError(f"`attention_head_dim` must be even for rotary embeddings, got {head_dim}.")
    pairs = head_dim // 2
    k = pairs // 3
    split = {0: (k, k, k), 1: (k + 1, k, k), 2: (k, k + 1, k + 1)}[pairs % 3]
    return tuple(2 * n for n in split)  # type: ignore[return-value]


def rope3d(
    head_dim: int,
    num_frames: int,
    height: int,
    width: int,
    theta: float = 10000.0,
    device: torch.device | str | None = None,
) -> RotaryEmbedding:
    """``(num_frames * height * width, head_dim / 2, 2)`` float32 ``(cos, sin)`` of each channel pair's rotation,
    for tokens ordered ``(f, h, w)``.

    Axis ``a`` with ``d_a`` channels rotates pairs ``(x_2i, x_2i+1)`` by ``pos_a / theta ** (2 i / d_a)``; the axes
    occupy consecutive channel blocks in the order frame, height, width. Positions are computed for the actual grid,
    which equals slicing DFoT's flattened (max_frames, h, w) table whenever the grid matches the training size.

    Tables are cached per shape, base and device (every forward of a model asks for the same one), so the returned
    tensor is shared: read it, never modify it in place.
    """
    device = torch.device("cpu" if device is None else device)
    if torch.compiler.is_compiling():  # traced into the graph (constant for the compiled shape) rather than cached
        return _rope3d_table(head_dim, num_frames, height, width, float(theta), device)
    return _cached_rope3d_table(head_dim, num_frames, height, width, float(theta), device)


def _rope3d_table(
    head_dim: int, num_frames: int, height: int, width: int, theta: float, device: torch.device
) -> RotaryEmbedding:
    grid = (num_frames, height, width)
    tables = []
    for axis, (axis_dim, length) in enumerate(zip(rope3d_axis_dims(head_dim), grid)):
        inv_freq = 1.0 / (theta ** (torch.arange(0, axis_dim, 2, device=device).float() / axis_dim))
        angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
        shape = [1, 1, 1, axis_dim // 2]
        shape[axis] = length
        tables.append(angles.view(shape).expand(*grid, axis_dim // 2))
    angles = torch.cat(tables, dim=-1).flatten(0, 2)  # (N, head_dim / 2): one angle per channel pair
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


@functools.lru_cache(maxsize=32)
def _cached_rope3d_table(
    head_dim: int, num_frames: int, height: int, width: int, theta: float, device: torch.device
) -> RotaryEmbedding:
    # Built outside inference mode: a table first built under `torch.inference_mode()` must still serve training.
    with torch.inference_mode(False), torch.no_grad():
        return _rope3d_table(head_dim, num_frames, height, width, theta, device)


def apply_rope3d(x: torch.Tensor, rotary_emb: RotaryEmbedding) -> torch.Tensor:
    """Rotate interleaved pairs ``(x0, x1), (x2, x3), ...`` of ``x`` ``(B, N, ..., head_dim)`` by ``rotary_emb``
    (:func:`rope3d`, ``N`` tokens on dim 1; any dims between, such as heads, broadcast); computed in (at least)
    float32 as DFoT does, returned in the dtype of ``x``.

    Eager: one complex multiply, which reads ``x`` in place (a float32 view of a fused q/k/v projection is not
    copied). Under `torch.compile`: the same products written with real tensors, which Inductor fuses into one kernel
    (it has no code generation for complex operators).
    """
    compute_dtype = torch.promote_types(x.dtype, torch.float32)
    table = rotary_emb.view(rotary_emb.shape[0], *([1] * (x.ndim - 3)), *rotary_emb.shape[1:])
    pairs = x.to(compute_dtype).unflatten(-1, (-1, 2))  # (B, N, ..., head_dim / 2, 2)
    rotate = _rotate_pairs_real if torch.compiler.is_compiling() else _rotate_pairs_complex
    return rotate(pairs, table).flatten(-2).to(x.dtype)


def _rotate_pairs_complex(pairs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``(x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin)`` as the complex product ``(x0 + i x1)(cos + i sin)``."""
    if not _viewable_as_complex(pairs):
        pairs = pairs.contiguous()
    return torch.view_as_real(torch.view_as_complex(pairs) * torch.view_as_complex(table))


def _rotate_pairs_real(pairs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The rotation of :func:`_rotate_pairs_complex` with real tensors only (for Inductor)."""
    x_even, x_odd = pairs.unbind(-1)
    cos, sin = table.unbind(-1)
    return torch.stack([x_even * cos - x_odd * sin, x_odd * cos + x_even * sin], dim=-1)


def _viewable_as_complex(pairs: torch.Tensor) -> bool:
    """Whether `torch.view_as_complex` accepts ``pairs`` ``(..., 2)``: unit-stride pairs, even strides and offset."""
    return (
        pairs.stride(-1) == 1
        and pairs.storage_offset() % 2 == 0
        and all(stride % 2 == 0 for stride in pairs.stride()[:-1])
    )


# ----------------------------------------------------------------------------------------------------------------
# Noise-level features: sinusoidal for integer DDPM indices, random Fourier for continuous levels
# ----------------------------------------------------------------------------------------------------------------
def sinusoidal_noise_features(noise_level: torch.Tensor, num_channels: int) -> torch.Tensor:
    """Integer DDPM indices ``(...)`` -> ``(..., num_channels)`` float32 ``[cos, sin]`` features (as diffusers'
    ``Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0)``); -1 (clean context) is clamped to 0 as DFoT does."""
    levels = noise_level.clamp(min=0)
    features = get_timestep_embedding(levels.flatten(), num_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
    return features.unflatten(0, levels.shape)


def register_fourier_buffers(module: nn.Module, num_channels: int) -> None:
    """Register the random ``freqs`` (``2 pi N(0, 1)``) and ``phases`` (``2 pi U[0, 1)``) buffers of
    :func:`fourier_noise_features` on ``module``, under the names the official checkpoints use.

    They are persistent: a trained network is only reproduced with the draws it was trained with.
    """
    module.register_buffer("freqs", 2 * math.pi * torch.randn(num_channels))
    module.register_buffer("phases", 2 * math.pi * torch.rand(num_channels))


def fourier_noise_features(noise_level: torch.Tensor, freqs: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
    """EDM2-style random Fourier features ``sqrt(2) cos(freqs * x + phases)`` of noise levels ``x`` ``(...)``
    (DFoT's ``0.125 * logSNR``) -> ``(..., num_channels)`` float32."""
    return torch.cos(noise_level.float()[..., None] * freqs.float() + phases.float()) * math.sqrt(2.0)


class DFoTFourierEmbedding(nn.Module):
    """Random Fourier features of a continuous noise level (``0.125 * logSNR``), with their buffers
    (:func:`register_fourier_buffers`): ``(...)`` -> ``(..., num_channels)`` float32."""

    def __init__(self, num_channels: int):
        super().__init__()
        register_fourier_buffers(self, num_channels)

    def forward(self, noise_level: torch.Tensor) -> torch.Tensor:
        return fourier_noise_features(noise_level, self.freqs, self.phases)


# ----------------------------------------------------------------------------------------------------------------
# Per-frame vector condition
# ----------------------------------------------------------------------------------------------------------------
def condition_keep_mask(
    condition_mask: torch.Tensor | None,
    dropout: float,
    batch_size: int,
    num_frames: int,
    device: torch.device,
    training: bool,
) -> torch.Tensor | None:
    """``(B, F)`` bool keep-mask of the per-frame vector condition, or None when everything is kept.

    Combines the caller's ``condition_mask`` (False drops that frame) with, in training only, the dropout of a whole
    sample's condition with probability ``dropout`` (DFoT's ``external_cond_dropout``, which trains the null condition
    used by guidance). Camera poses are not dropped here: the training objective masks them through
    ``camera_rays_mask``.
    """
    keep = None if condition_mask is None else condition_mask.to(device=device, dtype=torch.bool)
    if training and dropout > 0:
        sample_keep = (torch.rand(batch_size, device=device) >= dropout)[:, None].expand(batch_size, num_frames)
        keep = sample_keep if keep is None else keep & sample_keep
    return keep


# ----------------------------------------------------------------------------------------------------------------
# Saved configs
# ----------------------------------------------------------------------------------------------------------------
def retire_camera_dropout(config: Mapping[str, Any], class_name: str) -> dict[str, Any]:
    """Copy of a saved model config without the retired ``camera_dropout`` key.

    Both backbones used to drop the poses of whole training samples themselves (``camera_dropout``). Pose dropout is
    now done only by the training objective (``train.py --camera_dropout``), which masks poses through
    ``camera_rays_mask`` with a per-step seeded generator. Old configs still load: the key is ignored (and not written
    back by ``save_pretrained``); a nonzero value on a pose model logs a warning, so that a run resumed from it can
    pass the same probability to the objective.
    """
    config = dict(config)
    value = config.pop("camera_dropout", None)
    if value and config.get("camera_ray_type") is not None:
        logger.warning(
            f"{class_name} config has camera_dropout={value}, which is no longer a model option and is ignored: pose "
            f"dropout is done by the training objective now (pass `--camera_dropout {value}` to training/train.py)."
        )
    return config
