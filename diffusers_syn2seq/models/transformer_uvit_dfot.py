# SPDX-License-Identifier: Apache-2.0
"""Pose-conditioned U-ViT3D of DFoT (RealEstate10K), as a diffusers model.

A SiD2-style residual U-ViT ("Simpler Diffusion", Hoogeboom et al. 2024) applied to every frame of a video,
with full 3D attention across frames at the transformer levels. It reproduces the official DFoT
``UViT3DPose`` backbone numerically (see ``conversion_uvit_dfot.py`` for loading official checkpoints):

* stem: per-frame ``Conv2d`` patch embedding (kernel = stride = ``patch_size``);
* conditioning: noise-level embedding (random Fourier or sinusoidal, then a 2-layer MLP) of shape
  ``(B, F, E)`` broadcast over pixels **plus** the per-frame patch-embedded camera-ray map ``(B, F, E, h, w)``,
  average-pooled to each level's resolution: every pixel gets its own FiLM conditioning;
* ResBlock levels: GroupNorm(32) -> SiLU -> conv3x3, GroupNorm FiLM (``conv1x1`` of the embedding), SiLU, conv3x3;
* transformer levels (tokens ordered frame-major ``(f, h, w)``): ViT-22B-style parallel block, one RMSNorm with
  FiLM feeding both attention (QK-RMSNorm, 3D axial RoPE) and a SiLU MLP, zero-initialised output projections;
* mid blocks at the coarsest level, then the mirrored up path with one skip per resolution change
  (``x = upsample(x - h_after_down) + h_before_down``), and a ``ConvTranspose2d`` output (zero init).

Layout in this project: videos are channel-first ``(B, C, F, H, W)`` (the official code uses ``(B, T, C, H, W)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin, AttentionModuleMixin
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import TimestepEmbedding, get_timestep_embedding
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import apply_lora_scale
from diffusers.utils.torch_utils import maybe_allow_in_graph
from torch import nn

from .._version import __version__

__all__ = [
    "DFoTUViT3DModel",
    "DFoTUViTAttention",
    "DFoTUViTAttnProcessor",
    "DFoTUViTResBlock",
    "DFoTUViTTransformerBlock",
    "UVIT_REALESTATE10K_CONFIG",
    "uvit_rope3d",
]

# Channels of each camera-ray map kind (see `diffusers_syn2seq.camera.ray_map`).
CAMERA_RAY_CHANNELS = {"ray_encoding": 180, "plucker": 6, "ray": 6}

RotaryEmbedding = tuple[torch.Tensor, torch.Tensor]


# ----------------------------------------------------------------------------------------------------------
# Normalisation (computed in float32)
# ----------------------------------------------------------------------------------------------------------
class DFoTRMSNorm(nn.Module):
    """RMSNorm over the last axis with a learnable scale (Llama form: normalise in float32, then scale)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).to(x.dtype)


class DFoTGroupNorm(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the activation dtype (statistics of bf16 activations are noisy)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


class DFoTFiLMRMSNorm(nn.Module):
    """RMSNorm followed by FiLM from a per-token embedding: ``norm(x) * (1 + scale) + shift``.

    ``x``: ``(B, N, C)``; ``emb``: ``(B, N, E)`` (one embedding per token, so per pixel and frame).
    """

    def __init__(self, dim: int, emb_dim: int, eps: float = 1e-6):
        super().__init__()
        self.linear = nn.Linear(emb_dim, dim * 2)
        self.norm = DFoTRMSNorm(dim, eps)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(emb.to(self.linear.weight.dtype)).float().chunk(2, dim=-1)
        return (self.norm(x).float() * (1 + scale) + shift).to(x.dtype)


# ----------------------------------------------------------------------------------------------------------
# Rotary position embedding (3D axial, interleaved pairs)
# ----------------------------------------------------------------------------------------------------------
def rope3d_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Rotary dims of the (frame, height, width) axes for a head of ``head_dim`` channels.

    ``head_dim / 2`` frequency pairs are split over the three axes; when not divisible by 3 the extra pair goes to
    frames (remainder 1) or to height and width (remainder 2), as DFoT does. Returns channel counts (2 x pairs).
    """
    if head_dim % 2 != 0:
        raise ValueError(f"RoPE3D needs an even attention head dim, got {head_dim}.")
    pairs = head_dim // 2
    third = pairs // 3
    split = {0: (third, third, third), 1: (third + 1, third, third), 2: (third, third + 1, third + 1)}[pairs % 3]
    return tuple(2 * p for p in split)  # type: ignore[return-value]


def uvit_rope3d(
    head_dim: int, frames: int, height: int, width: int, theta: float = 10000.0, device: torch.device | None = None
) -> RotaryEmbedding:
    """``(cos, sin)``, each ``(frames * height * width, head_dim)`` float32, for tokens ordered ``(f, h, w)``.

    Axis ``a`` with ``d_a`` channels rotates pairs ``(x_{2i}, x_{2i+1})`` by ``pos_a / theta^(2i / d_a)``; the three
    axes occupy consecutive channel blocks in the order frame, height, width.
    """
    tables = []
    for axis, (dim, length) in enumerate(zip(rope3d_axis_dims(head_dim), (frames, height, width))):
        inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, device=device)[: dim // 2].float() / dim))
        angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_freq  # (L, d/2)
        angles = angles.repeat_interleave(2, dim=-1)  # each frequency for both members of its pair
        shape = [1, 1, 1, dim]
        shape[axis] = length
        tables.append(angles.view(shape).expand(frames, height, width, dim))
    angles = torch.cat(tables, dim=-1).flatten(0, 2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, rotary_emb: RotaryEmbedding) -> torch.Tensor:
    """Rotate interleaved pairs of ``x`` ``(B, N, heads, D)`` by ``rotary_emb`` ``(N, D)``; float32 arithmetic."""
    cos, sin = (t[None, :, None, :] for t in rotary_emb)
    x32 = x.float()
    x1, x2 = x32.unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack([-x2, x1], dim=-1).flatten(-2)  # (x0, x1) -> (-x1, x0)
    return (x32 * cos + rotated * sin).to(x.dtype)


# ----------------------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------------------
class DFoTUViTAttnProcessor:
    """Self-attention with QK-RMSNorm and RoPE3D through ``diffusers``' attention dispatcher (no mask)."""

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn: DFoTUViTAttention,
        hidden_states: torch.Tensor,
        rotary_emb: RotaryEmbedding | None = None,
    ) -> torch.Tensor:
        if attn.fused_projections:
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        # (B, N, C) -> (B, N, heads, head_dim)
        query, key, value = (t.unflatten(-1, (attn.heads, -1)) for t in (query, key, value))
        query, key = attn.norm_q(query), attn.norm_k(key)
        if rotary_emb is not None:
            query, key = apply_rope(query, rotary_emb), apply_rope(key, rotary_emb)
        hidden_states = dispatch_attention_fn(
            query, key, value, backend=self._attention_backend, parallel_config=self._parallel_config
        )
        return attn.to_out(hidden_states.flatten(2, 3).type_as(value))


class DFoTUViTAttention(nn.Module, AttentionModuleMixin):
    """Multi-head self-attention of a U-ViT transformer block: ``to_q/k/v`` (bias), QK-RMSNorm, ``to_out`` (bias)."""

    _default_processor_cls = DFoTUViTAttnProcessor
    _available_processors = [DFoTUViTAttnProcessor]

    def __init__(self, dim: int, heads: int, eps: float = 1e-6, processor: Any | None = None):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"Attention width {dim} is not divisible by the number of heads {heads}.")
        self.heads = heads
        self.head_dim = dim // heads
        self.use_bias = True  # read by `fuse_projections`
        self.is_cross_attention = False
        self.to_q = nn.Linear(dim, dim, bias=True)
        self.to_k = nn.Linear(dim, dim, bias=True)
        self.to_v = nn.Linear(dim, dim, bias=True)
        self.norm_q = DFoTRMSNorm(self.head_dim, eps)
        self.norm_k = DFoTRMSNorm(self.head_dim, eps)
        self.to_out = nn.Linear(dim, dim, bias=True)
        self.set_processor(processor if processor is not None else self._default_processor_cls())

    def forward(self, hidden_states: torch.Tensor, rotary_emb: RotaryEmbedding | None = None) -> torch.Tensor:
        return self.processor(self, hidden_states, rotary_emb=rotary_emb)


# ----------------------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------------------
class DFoTUViTFeedForward(nn.Module):
    """Two-layer SiLU MLP (hidden = ``mult * dim``) of the parallel transformer block."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.proj_in = nn.Linear(dim, dim * mult)
        self.act = nn.SiLU()
        self.dropout = nn.Dropout(dropout)
        self.proj_out = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_out(self.dropout(self.act(self.proj_in(x))))


@maybe_allow_in_graph
class DFoTUViTTransformerBlock(nn.Module):
    """Parallel attention + MLP block (ViT-22B): ``h = FiLM(RMSNorm(x)); x = x + attn(h); x = x + mlp(h)``.

    ``hidden_states``: ``(B, N, C)`` tokens ordered ``(f, h, w)``; ``emb``: ``(B, N, E)`` per-token conditioning.
    """

    def __init__(
        self, dim: int, emb_dim: int, heads: int, dropout: float = 0.0, mlp_ratio: int = 4, eps: float = 1e-6
    ):
        super().__init__()
        self.norm = DFoTFiLMRMSNorm(dim, emb_dim, eps)
        self.attn = DFoTUViTAttention(dim, heads, eps)
        self.ff = DFoTUViTFeedForward(dim, mlp_ratio, dropout)

    def forward(
        self, hidden_states: torch.Tensor, emb: torch.Tensor, rotary_emb: RotaryEmbedding | None = None
    ) -> torch.Tensor:
        normed = self.norm(hidden_states, emb)
        hidden_states = hidden_states + self.attn(normed, rotary_emb)
        return hidden_states + self.ff(normed)


class DFoTUViTResBlock(nn.Module):
    """Residual conv block with per-pixel FiLM: ``x + conv2(SiLU(FiLM(GN(conv1(SiLU(GN(x)))))))``.

    ``hidden_states``: ``(B*F, C, h, w)``; ``emb``: ``(B*F, E, h, w)``.
    """

    def __init__(self, channels: int, emb_dim: int, num_groups: int = 32, eps: float = 1e-6):
        super().__init__()
        self.norm1 = DFoTGroupNorm(num_groups, channels, eps=eps)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.emb_proj = nn.Conv2d(emb_dim, channels * 2, kernel_size=1)
        self.norm2 = DFoTGroupNorm(num_groups, channels, eps=eps)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.act = nn.SiLU()

    def forward(
        self, hidden_states: torch.Tensor, emb: torch.Tensor, rotary_emb: RotaryEmbedding | None = None
    ) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(hidden_states)))
        # `emb` arrives in the activation dtype; no cast here so that layerwise casting (bf16 storage, fp32
        # compute) can upcast this conv's weights itself.
        scale, shift = self.emb_proj(emb).float().chunk(2, dim=1)
        h = (self.norm2(h).float() * (1 + scale) + shift).to(h.dtype)
        return hidden_states + self.conv2(self.act(h))


class DFoTUViTDownsample(nn.Module):
    """2x average pooling, then conv3x3 to the next level's channels."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.avg_pool2d(x, kernel_size=2, stride=2))


class DFoTUViTUpsample(nn.Module):
    """conv3x3 to the finer level's channels, then 2x nearest-neighbour upsampling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=2, mode="nearest")


class DFoTUViTDownLevel(nn.Module):
    def __init__(self, blocks: list[nn.Module], downsample: DFoTUViTDownsample):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


class DFoTUViTUpLevel(nn.Module):
    def __init__(self, upsample: DFoTUViTUpsample, blocks: list[nn.Module]):
        super().__init__()
        self.upsample = upsample
        self.blocks = nn.ModuleList(blocks)


# ----------------------------------------------------------------------------------------------------------
# Conditioning embeddings
# ----------------------------------------------------------------------------------------------------------
class DFoTNoiseLevelEmbedding(nn.Module):
    """Noise level ``(...)`` -> ``(..., emb_dim)``: Fourier or sinusoidal features, then a 2-layer SiLU MLP.

    * ``"fourier"`` (continuous models, e.g. RealEstate10K): input is DFoT's noise level ``0.125 * logSNR``;
      features ``sqrt(2) cos(freqs * x + phases)`` with ``freqs = 2 pi N(0, 1)``, ``phases = 2 pi U[0, 1)`` stored as
      buffers (saved with the model, they are part of the trained network).
    * ``"sinusoidal"`` (discrete models): input is the integer DDPM index 0..999; ``[cos, sin]`` features.
    """

    def __init__(self, emb_dim: int, features: int = 256, kind: str = "fourier"):
        super().__init__()
        if kind not in ("fourier", "sinusoidal"):
            raise ValueError(f"`noise_embedding_type` must be 'fourier' or 'sinusoidal', got {kind!r}.")
        self.kind = kind
        self.features = features
        if kind == "fourier":
            self.register_buffer("freqs", 2 * torch.pi * torch.randn(features))
            self.register_buffer("phases", 2 * torch.pi * torch.rand(features))
        self.mlp = TimestepEmbedding(features, emb_dim)

    def forward(self, noise_levels: torch.Tensor) -> torch.Tensor:
        levels = noise_levels.float()
        if self.kind == "fourier":
            feats = torch.cos(levels[..., None] * self.freqs.float() + self.phases.float()) * (2.0**0.5)
        else:
            feats = get_timestep_embedding(
                levels.flatten(), self.features, flip_sin_to_cos=True, downscale_freq_shift=0
            )
            feats = feats.unflatten(0, levels.shape)
        return self.mlp(feats.to(self.mlp.linear_1.weight.dtype))


# ----------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------
#: The RealEstate10K DFoT U-ViT3D-Pose (pixel space, 256x256, 8 frames, ~459M parameters; dfot.md).
#: ``num_attention_heads`` is not stated in the paper; conversion checks it against the checkpoint's
#: QK-norm width.
UVIT_REALESTATE10K_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    sample_size=256,
    max_frames=8,
    patch_size=2,
    block_out_channels=[128, 256, 576, 1152],
    block_types=["ResBlock", "ResBlock", "TransformerBlock", "TransformerBlock"],
    block_dropouts=[0.0, 0.0, 0.1, 0.1],
    layers_per_block=[3, 3, 6],
    num_mid_blocks=20,
    num_attention_heads=9,
    emb_channels=1024,
    noise_embedding_type="fourier",
    camera_ray_type="ray_encoding",
    camera_dropout=0.1,
)


class DFoTUViT3DModel(ModelMixin, ConfigMixin, PeftAdapterMixin, AttentionMixin):
    r"""Pose-conditioned U-ViT3D denoiser of DFoT (RealEstate10K), predicting v for every frame.

    Args:
        in_channels: channels of the input video (3 for pixel space).
        out_channels: channels of the prediction (defaults to ``in_channels``).
        sample_size: spatial size ``H`` (square) or ``[H, W]``; each side must be divisible by
            ``patch_size * 2 ** (len(block_out_channels) - 1)``.
        max_frames: largest number of frames ``F`` per forward (the training window of the original model).
        patch_size: stem patch size (kernel = stride of the input conv and output transposed conv).
        block_out_channels: channels of each resolution level, finest first.
        block_types: ``"ResBlock"`` or ``"TransformerBlock"`` per level (the last level is also used by the mid
            blocks).
        block_dropouts: MLP dropout per level (ResBlocks must use 0).
        layers_per_block: blocks per level on the down and on the up path, for all but the last level.
        num_mid_blocks: blocks at the coarsest level.
        num_attention_heads: heads of every transformer level (head dim = channels / heads, must be even for RoPE).
        emb_channels: width of the conditioning embedding.
        noise_embedding_type: ``"fourier"`` (continuous noise levels, ``0.125 * logSNR``) or ``"sinusoidal"``
            (integer DDPM indices).
        noise_embedding_dim: width of the Fourier / sinusoidal features before the MLP.
        camera_ray_type: ray map kind fed as ``camera_rays`` (``"ray_encoding"`` 180 ch., ``"plucker"`` or ``"ray"``
            6 ch.; see ``diffusers_syn2seq.camera.ray_map``); ``None`` builds an unconditional model.
        camera_dropout: probability, in training, to drop the pose embedding of a whole sample (enables pose
            guidance); the optional vector ``condition`` is dropped with the same probability (independent draw).
        condition_dim: optional per-frame vector condition (e.g. actions), embedded by a 2-layer MLP and added to
            the noise embedding.
        mlp_ratio: hidden width multiplier of the transformer MLPs.
        norm_num_groups: GroupNorm groups of the ResBlocks.
        norm_eps: epsilon of all norms.
        rope_theta: RoPE base.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["DFoTUViTTransformerBlock", "DFoTUViTResBlock"]
    _repeated_blocks = ["DFoTUViTTransformerBlock"]
    # Matched against dotted name components: the noise embedding (Fourier features of logSNR lose precision in
    # bf16) and every norm, including the FiLM linears inside `norm`, which compute the modulation.
    _keep_in_fp32_modules = ["noise_embedding", "norm", "norm1", "norm2", "norm_q", "norm_k"]
    _skip_layerwise_casting_patterns = ["patch_embed", "camera_embed", "condition_embed", "noise_embedding", "norm"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,
        sample_size: int | Sequence[int] = 256,
        max_frames: int = 8,
        patch_size: int = 2,
        block_out_channels: Sequence[int] = (128, 256, 576, 1152),
        block_types: Sequence[str] = ("ResBlock", "ResBlock", "TransformerBlock", "TransformerBlock"),
        block_dropouts: Sequence[float] = (0.0, 0.0, 0.1, 0.1),
        layers_per_block: Sequence[int] = (3, 3, 6),
        num_mid_blocks: int = 20,
        num_attention_heads: int = 9,
        emb_channels: int = 1024,
        noise_embedding_type: str = "fourier",
        noise_embedding_dim: int = 256,
        camera_ray_type: str | None = "ray_encoding",
        camera_dropout: float = 0.1,
        condition_dim: int | None = None,
        mlp_ratio: int = 4,
        norm_num_groups: int = 32,
        norm_eps: float = 1e-6,
        rope_theta: float = 10000.0,
    ):
        super().__init__()
        self.register_to_config(_syn2seq_version=__version__)
        channels, block_types = list(block_out_channels), list(block_types)
        block_dropouts, layers_per_block = list(block_dropouts), list(layers_per_block)
        num_levels = len(channels)
        if not (len(block_types) == len(block_dropouts) == num_levels and len(layers_per_block) == num_levels - 1):
            raise ValueError(
                "`block_types` and `block_dropouts` need one entry per level and `layers_per_block` one per level but "
                f"the last; got {num_levels} levels, {len(block_types)} block types, {len(block_dropouts)} dropouts, "
                f"{len(layers_per_block)} layers_per_block."
            )
        unknown = sorted(set(block_types) - {"ResBlock", "TransformerBlock"})
        if unknown:
            raise ValueError(f"`block_types` entries must be 'ResBlock' or 'TransformerBlock', got {unknown}.")
        for level, (kind, ch, p) in enumerate(zip(block_types, channels, block_dropouts)):
            if kind == "ResBlock" and p != 0.0:
                raise ValueError(f"ResBlock levels do not support dropout; level {level} has {p}.")
            if kind == "TransformerBlock" and (ch % num_attention_heads or (ch // num_attention_heads) % 2):
                raise ValueError(
                    f"Level {level} width {ch} must split into {num_attention_heads} heads of even size (RoPE)."
                )
        if camera_ray_type is not None and camera_ray_type not in CAMERA_RAY_CHANNELS:
            raise ValueError(
                f"`camera_ray_type` must be one of {sorted(CAMERA_RAY_CHANNELS)} or None, got {camera_ray_type!r}."
            )
        self.height, self.width = (sample_size, sample_size) if isinstance(sample_size, int) else tuple(sample_size)
        factor = patch_size * 2 ** (num_levels - 1)
        if self.height % factor or self.width % factor:
            raise ValueError(
                f"`sample_size` {sample_size} must be divisible by patch_size * 2**(levels-1) = {factor}."
            )
        self.is_transformer = [kind == "TransformerBlock" for kind in block_types]
        out_channels = out_channels or in_channels

        # Conditioning.
        self.noise_embedding = DFoTNoiseLevelEmbedding(emb_channels, noise_embedding_dim, noise_embedding_type)
        self.camera_embed = (
            nn.Conv2d(CAMERA_RAY_CHANNELS[camera_ray_type], emb_channels, kernel_size=patch_size, stride=patch_size)
            if camera_ray_type is not None
            else None
        )
        self.condition_embed = TimestepEmbedding(condition_dim, emb_channels) if condition_dim else None

        # Stem and output.
        self.patch_embed = nn.Conv2d(in_channels, channels[0], kernel_size=patch_size, stride=patch_size)
        self.proj_out = nn.ConvTranspose2d(channels[0], out_channels, kernel_size=patch_size, stride=patch_size)

        def make_block(level: int) -> nn.Module:
            if self.is_transformer[level]:
                return DFoTUViTTransformerBlock(
                    channels[level], emb_channels, num_attention_heads, block_dropouts[level], mlp_ratio, norm_eps
                )
            return DFoTUViTResBlock(channels[level], emb_channels, norm_num_groups, norm_eps)

        self.down_blocks = nn.ModuleList(
            DFoTUViTDownLevel(
                [make_block(level) for _ in range(layers_per_block[level])],
                DFoTUViTDownsample(channels[level], channels[level + 1]),
            )
            for level in range(num_levels - 1)
        )
        self.mid_blocks = nn.ModuleList(make_block(num_levels - 1) for _ in range(num_mid_blocks))
        self.up_blocks = nn.ModuleList(
            DFoTUViTUpLevel(
                DFoTUViTUpsample(channels[level + 1], channels[level]),
                [make_block(level) for _ in range(layers_per_block[level])],
            )
            for level in reversed(range(num_levels - 1))
        )
        self.gradient_checkpointing = False
        self.initialize_weights()

    # ------------------------------------------------------------------------------------------------------
    def initialize_weights(self) -> None:
        """Zero-initialise every layer that writes into the residual stream or the output.

        With the output convs of ResBlocks, the attention/MLP output projections and the final transposed conv at
        zero, each block starts as the identity and the untrained network predicts 0 (as SiD2 / DFoT).
        """
        zero = [self.proj_out]
        for module in self.modules():
            if isinstance(module, DFoTUViTResBlock):
                zero.append(module.conv2)
            elif isinstance(module, DFoTUViTTransformerBlock):
                zero += [module.attn.to_out, module.ff.proj_out]
        for layer in zero:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @classmethod
    def from_realestate10k_config(cls, **overrides: Any) -> DFoTUViT3DModel:
        """The RealEstate10K U-ViT3D-Pose (:data:`UVIT_REALESTATE10K_CONFIG`), randomly initialised."""
        return cls(**{**UVIT_REALESTATE10K_CONFIG, **overrides})

    # ------------------------------------------------------------------------------------------------------
    def _check_inputs(self, hidden_states, timestep, condition, camera_rays, condition_mask, camera_rays_mask):
        cfg = self.config
        if hidden_states.ndim != 5 or hidden_states.shape[1] != cfg.in_channels:
            raise ValueError(
                f"`hidden_states` must have shape (B, {cfg.in_channels}, F, H, W), got {tuple(hidden_states.shape)}."
            )
        batch, _, frames, height, width = hidden_states.shape
        factor = cfg.patch_size * 2 ** (len(cfg.block_out_channels) - 1)
        if height % factor or width % factor:
            raise ValueError(f"`hidden_states` H and W must be divisible by {factor}, got {height} x {width}.")
        if frames > cfg.max_frames:
            raise ValueError(f"`hidden_states` has {frames} frames, more than max_frames={cfg.max_frames}.")
        if timestep.shape not in ((batch,), (batch, frames)):
            raise ValueError(
                f"`timestep` must have shape ({batch},) or ({batch}, {frames}), got {tuple(timestep.shape)}."
            )
        if camera_rays is not None:
            if self.camera_embed is None:
                raise ValueError(
                    "`camera_rays` was given but the model has no pose conditioning (camera_ray_type=None)."
                )
            expected = (batch, self.camera_embed.in_channels, frames, height, width)
            if tuple(camera_rays.shape) != expected:
                raise ValueError(
                    f"`camera_rays` must have shape {expected} (B, C, F, H, W; {cfg.camera_ray_type}), got "
                    f"{tuple(camera_rays.shape)}."
                )
        if camera_rays_mask is not None and tuple(camera_rays_mask.shape) != (batch, frames):
            raise ValueError(
                f"`camera_rays_mask` must have shape ({batch}, {frames}), got {tuple(camera_rays_mask.shape)}."
            )
        if condition is not None:
            if self.condition_embed is None:
                raise ValueError("`condition` was given but the model has no vector condition (condition_dim=None).")
            if tuple(condition.shape) != (batch, frames, cfg.condition_dim):
                raise ValueError(
                    f"`condition` must have shape ({batch}, {frames}, {cfg.condition_dim}), "
                    f"got {tuple(condition.shape)}."
                )
        if condition_mask is not None and tuple(condition_mask.shape) != (batch, frames):
            raise ValueError(
                f"`condition_mask` must have shape ({batch}, {frames}), got {tuple(condition_mask.shape)}."
            )

    def _keep_mask(self, mask: torch.Tensor | None, batch: int, frames: int, device) -> torch.Tensor | None:
        """``(B, F)`` bool, True = keep the condition; combines the caller's mask with training dropout of whole
        samples (DFoT drops the pose of a whole video with probability ``camera_dropout``)."""
        if self.training and self.config.camera_dropout > 0:
            drop = torch.rand(batch, 1, device=device) < self.config.camera_dropout
            keep = (~drop).expand(batch, frames)
            return keep if mask is None else keep & mask.bool()
        return None if mask is None else mask.bool()

    def _run_level(
        self, blocks: nn.ModuleList, x: torch.Tensor, emb: torch.Tensor, level: int, batch: int, frames: int
    ) -> torch.Tensor:
        """Run one level's blocks on ``(B*F, C, h, w)`` features (tokens ``(B, F*h*w, C)`` at transformer levels)."""
        rotary_emb = None
        height, width = x.shape[-2:]
        if self.is_transformer[level]:
            x, emb = (t.unflatten(0, (batch, frames)).permute(0, 1, 3, 4, 2).flatten(1, 3) for t in (x, emb))
            head_dim = self.config.block_out_channels[level] // self.config.num_attention_heads
            rotary_emb = uvit_rope3d(head_dim, frames, height, width, self.config.rope_theta, device=x.device)
        for block in blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, x, emb, rotary_emb)
            else:
                x = block(x, emb, rotary_emb)
        if self.is_transformer[level]:
            x = x.unflatten(1, (frames, height, width)).permute(0, 1, 4, 2, 3).flatten(0, 1)
        return x

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        condition: torch.Tensor | None = None,
        camera_rays: torch.Tensor | None = None,
        condition_mask: torch.Tensor | None = None,
        camera_rays_mask: torch.Tensor | None = None,
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        r"""Predict the denoising target (v) of every frame.

        Args:
            hidden_states: ``(B, C, F, H, W)`` noisy frames (pixel space for RealEstate10K, roughly [-1, 1]).
            timestep: ``(B,)`` or ``(B, F)`` per-frame noise levels as DFoT feeds them: ``0.125 * logSNR`` for
                ``noise_embedding_type="fourier"``, the integer index 0..999 for ``"sinusoidal"``; clean (context)
                frames use the level of noise 0.
            condition: optional ``(B, F, condition_dim)`` per-frame vector condition.
            camera_rays: ``(B, C_ray, F, H, W)`` ray map of poses normalised by the window's first frame
                (``diffusers_syn2seq.camera.ray_map(poses, H, W, kind=config.camera_ray_type)``). ``None`` gives every
                frame the dropped (null) pose embedding, i.e. the unconditional branch of pose guidance.
            condition_mask: optional ``(B, F)`` bool, False drops ``condition`` for that frame.
            camera_rays_mask: optional ``(B, F)`` bool, False gives that frame the null pose embedding (zeros after
                the ray patch embedding, as the official dropout).
            return_dict: return a :class:`Transformer2DModelOutput` instead of a tuple.
            attention_kwargs: ``{"scale": lora_scale}`` for PEFT LoRA layers.

        Returns:
            ``sample`` of shape ``(B, out_channels, F, H, W)``.
        """
        if not torch.is_tensor(timestep):
            timestep = torch.as_tensor(timestep, device=hidden_states.device)
        self._check_inputs(hidden_states, timestep, condition, camera_rays, condition_mask, camera_rays_mask)
        batch, _, frames, height, width = hidden_states.shape
        device = hidden_states.device

        # (B, C, F, H, W) -> (B*F, C, H, W): every 2D layer acts per frame.
        x = hidden_states.transpose(1, 2).flatten(0, 1)
        x = self.patch_embed(x.to(self.patch_embed.weight.dtype))  # (B*F, C0, h0, w0)

        # Per-frame embedding (B, F, E), then per-pixel with the pose (B*F, E, h0, w0).
        emb = self.noise_embedding(
            timestep.expand(batch, frames) if timestep.ndim == 2 else timestep[:, None].expand(batch, frames)
        )
        if condition is not None:
            cond = self.condition_embed(condition.to(self.condition_embed.linear_1.weight.dtype)).float()
            keep = self._keep_mask(condition_mask, batch, frames, device)
            emb = emb + (cond if keep is None else cond * keep[..., None])
        emb = emb.to(x.dtype).flatten(0, 1)[..., None, None]
        if self.camera_embed is not None:
            if camera_rays is None:
                keep = torch.zeros(batch, frames, dtype=torch.bool, device=device)
                pose = torch.zeros(batch * frames, emb.shape[1], *x.shape[-2:], dtype=x.dtype, device=device)
            else:
                rays = camera_rays.transpose(1, 2).flatten(0, 1).to(self.camera_embed.weight.dtype)
                pose = self.camera_embed(rays).to(x.dtype)  # (B*F, E, h0, w0)
                keep = self._keep_mask(camera_rays_mask, batch, frames, device)
                if keep is not None:
                    pose = pose * keep.flatten()[:, None, None, None].to(pose.dtype)
            emb = emb + pose
        else:
            emb = emb.expand(-1, -1, *x.shape[-2:])
        num_levels = len(self.config.block_out_channels)
        embs = [emb] + [F.avg_pool2d(emb, kernel_size=2**level) for level in range(1, num_levels)]

        skips_before, skips_after = [], []
        for level, down in enumerate(self.down_blocks):
            x = self._run_level(down.blocks, x, embs[level], level, batch, frames)
            skips_before.append(x)
            x = down.downsample(x)
            skips_after.append(x)
        x = self._run_level(self.mid_blocks, x, embs[-1], num_levels - 1, batch, frames)
        for index, up in enumerate(self.up_blocks):
            level = num_levels - 2 - index
            # SiD2 residual U-ViT: the coarse path only adds what it changed since the downsample.
            x = up.upsample(x - skips_after.pop()) + skips_before.pop()
            x = self._run_level(up.blocks, x, embs[level], level, batch, frames)

        x = self.proj_out(x)  # (B*F, C_out, H, W)
        sample = x.unflatten(0, (batch, frames)).transpose(1, 2)
        if not return_dict:
            return (sample,)
        return Transformer2DModelOutput(sample=sample)


TransformerBlockRegistry.register(
    model_class=DFoTUViTTransformerBlock,
    metadata=TransformerBlockMetadata(return_hidden_states_index=None, return_encoder_hidden_states_index=None),
)
