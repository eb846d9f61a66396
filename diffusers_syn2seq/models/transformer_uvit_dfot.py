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
The 3D rotary embedding and the Fourier noise features are shared with the DiT (``modules_dfot.py``), and so are the
checks of the configuration and of the inputs (``checks_dfot.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin, AttentionModuleMixin
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.embeddings import TimestepEmbedding
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import apply_lora_scale
from diffusers.utils.torch_utils import maybe_allow_in_graph
from torch import nn

from .._version import __version__
from ..camera import RAY_MAP_CHANNELS
from .checks_dfot import check_dfot_inputs, check_uvit_config
from .modules_dfot import (
    RotaryEmbedding,
    apply_rope3d,
    condition_keep_mask,
    fourier_noise_features,
    register_fourier_buffers,
    retire_camera_dropout,
    rope3d,
    sinusoidal_noise_features,
)


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
            query, key = apply_rope3d(query, rotary_emb), apply_rope3d(key, rotary_emb)
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
      ``fourier_noise_features`` with the ``freqs`` and ``phases`` buffers (part of the trained network).
    * ``"sinusoidal"`` (discrete models): input is the integer DDPM index 0..T-1 (-1 = clean context, clamped to 0);
      ``sinusoidal_noise_features``.
    """

    def __init__(self, emb_dim: int, features: int = 256, kind: str = "fourier"):
        super().__init__()
        if kind not in ("fourier", "sinusoidal"):
            raise ValueError(f"`noise_embedding_type` must be 'fourier' or 'sinusoidal', got {kind!r}.")
        self.kind = kind
        self.features = features
        if kind == "fourier":
            register_fourier_buffers(self, features)
        self.mlp = TimestepEmbedding(features, emb_dim)

    def forward(self, noise_levels: torch.Tensor) -> torch.Tensor:
        if self.kind == "fourier":
            feats = fourier_noise_features(noise_levels, self.freqs, self.phases)
        else:
            feats = sinusoidal_noise_features(noise_levels, self.features)
        return self.mlp(feats.to(self.mlp.linear_1.weight.dtype))


# ----------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------
#: The RealEstate10K DFoT U-ViT3D-Pose (pixel space, 256x256, 8 frames, ~459M parameters; dfot.md).
#: ``num_attention_heads`` is not stated in the paper; conversion checks it against the checkpoint's
#: QK-norm width. DFoT trained it with pose dropout 0.1: pass ``--camera_dropout 0.1`` to the training objective.
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
)


class DFoTUViT3DModel(ModelMixin, ConfigMixin, PeftAdapterMixin, CacheMixin, AttentionMixin):
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
        condition_dim: optional per-frame vector condition (e.g. actions), embedded by a 2-layer MLP and added to
            the noise embedding.
        condition_dropout: probability, in training, to drop the vector ``condition`` of a whole sample (DFoT's
            ``external_cond_dropout`` of non-pose models). Poses are never dropped by the model: pose dropout (for
            pose guidance) is done by the training objective through ``camera_rays_mask``.
        mlp_ratio: hidden width multiplier of the transformer MLPs.
        norm_num_groups: GroupNorm groups of the ResBlocks.
        norm_eps: epsilon of all norms.
        rope_theta: RoPE base.
        num_train_timesteps: levels of the discrete schedule of a ``"sinusoidal"`` model; its ``timestep`` must be an
            integer in ``[-1, num_train_timesteps - 1]`` (unused by ``"fourier"``).

    Every option is checked at construction (``checks_dfot.check_uvit_config``, the same rules as the DiT's).
    Configs saved with the retired ``camera_dropout`` still load (see ``modules_dfot.retire_camera_dropout``); the
    vector condition of such a model keeps the dropout it was trained with, as ``condition_dropout``.
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
        condition_dim: int | None = None,
        condition_dropout: float = 0.0,
        mlp_ratio: int = 4,
        norm_num_groups: int = 32,
        norm_eps: float = 1e-6,
        rope_theta: float = 10000.0,
        num_train_timesteps: int = 1000,
    ):
        super().__init__()
        checked = check_uvit_config(self.config)  # plain Python values, safe in the JSON config
        self.register_to_config(**checked, _syn2seq_version=__version__)
        channels, block_types = checked["block_out_channels"], checked["block_types"]
        block_dropouts, layers_per_block = checked["block_dropouts"], checked["layers_per_block"]
        in_channels, patch_size, emb_channels = checked["in_channels"], checked["patch_size"], checked["emb_channels"]
        num_attention_heads, condition_dim = checked["num_attention_heads"], checked["condition_dim"]
        num_levels, sample_size = len(channels), checked["sample_size"]
        self.height, self.width = (sample_size, sample_size) if isinstance(sample_size, int) else tuple(sample_size)
        mlp_ratio, norm_eps, norm_num_groups = checked["mlp_ratio"], checked["norm_eps"], checked["norm_num_groups"]
        noise_embedding_dim, num_mid_blocks = checked["noise_embedding_dim"], checked["num_mid_blocks"]
        self.is_transformer = [kind == "TransformerBlock" for kind in block_types]
        out_channels = checked["out_channels"] or in_channels

        # Conditioning.
        self.noise_embedding = DFoTNoiseLevelEmbedding(emb_channels, noise_embedding_dim, noise_embedding_type)
        self.camera_embed = None
        if camera_ray_type is not None:
            ray_channels = RAY_MAP_CHANNELS[camera_ray_type]
            self.camera_embed = nn.Conv2d(ray_channels, emb_channels, kernel_size=patch_size, stride=patch_size)
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

    @classmethod
    def extract_init_dict(cls, config_dict: Mapping[str, Any], **kwargs):
        config_dict = dict(config_dict)
        if config_dict.get("condition_dim") and "camera_dropout" in config_dict:
            # Before `condition_dropout` existed, `camera_dropout` also dropped the vector condition: keep that rate.
            config_dict.setdefault("condition_dropout", config_dict["camera_dropout"])
        # Old saved configs carry the retired `camera_dropout`: drop it before diffusers matches the keys.
        return super().extract_init_dict(retire_camera_dropout(config_dict, cls.__name__), **kwargs)

    def enable_cache(self, config) -> None:
        """`CacheMixin.enable_cache`, refusing First-Block-Cache and MagCache: both hook the first and last block of a
        flat block list, which a U-Net of levels does not have (diffusers raises `IndexError: pop from empty list`
        for the one and silently applies nothing for the other). Caches that hook attention modules (Pyramid Attention
        Broadcast, TaylorSeer) are accepted."""
        from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig

        if isinstance(config, (FirstBlockCacheConfig, MagCacheConfig)):
            raise ValueError(f"`config` must be a cache that works on attention modules (e.g. "
                             f"PyramidAttentionBroadcastConfig) for DFoTUViT3DModel, got {type(config).__name__}, "
                             "which needs a flat list of transformer blocks; the U-ViT's blocks are spread over "
                             "resolution levels. Use DFoTTransformer3DModel (the DiT) for First-Block-Cache.")
        super().enable_cache(config)

    # ------------------------------------------------------------------------------------------------------
    def _run_level(
        self, blocks: nn.ModuleList, x: torch.Tensor, emb: torch.Tensor, level: int, batch: int, frames: int
    ) -> torch.Tensor:
        """Run one level's blocks on ``(B*F, C, h, w)`` features (tokens ``(B, F*h*w, C)`` at transformer levels)."""
        rotary_emb = None
        height, width = x.shape[-2:]
        if self.is_transformer[level]:
            x, emb = (t.unflatten(0, (batch, frames)).permute(0, 1, 3, 4, 2).flatten(1, 3) for t in (x, emb))
            head_dim = self.config.block_out_channels[level] // self.config.num_attention_heads
            rotary_emb = rope3d(head_dim, frames, height, width, self.config.rope_theta, device=x.device)
        for block in blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, x, emb, rotary_emb)
            else:
                x = block(x, emb, rotary_emb)
        if self.is_transformer[level]:
            x = x.unflatten(1, (frames, height, width)).permute(0, 1, 4, 2, 3).flatten(0, 1)
        return x

    def embed_conditions(
        self,
        timestep: torch.Tensor,
        condition: torch.Tensor | None,
        condition_mask: torch.Tensor | None,
        camera_rays: torch.Tensor | None,
        camera_rays_mask: torch.Tensor | None,
        x: torch.Tensor,
    ) -> list[torch.Tensor]:
        """Per-pixel conditioning ``(B*F, E, h0 / 2**l, w0 / 2**l)`` of every level ``l``, in the dtype of the stem
        output ``x`` ``(B*F, C0, h0, w0)``: the per-frame embedding of ``timestep`` ``(B, F)`` and ``condition``,
        plus the patch-embedded rays (zeros, the null pose, where masked or when ``camera_rays`` is None)."""
        batch, frames = timestep.shape
        emb = self.noise_embedding(timestep)  # (B, F, E)
        if condition is not None:
            cond = self.condition_embed(condition.to(self.condition_embed.linear_1.weight.dtype)).float()
            keep = condition_keep_mask(
                condition_mask, self.config.condition_dropout, batch, frames, cond.device, self.training
            )
            emb = emb + (cond if keep is None else cond * keep[..., None])
        emb = emb.to(x.dtype).flatten(0, 1)[..., None, None]
        if self.camera_embed is None:
            emb = emb.expand(-1, -1, *x.shape[-2:])
        elif camera_rays is None:
            emb = emb + torch.zeros(batch * frames, emb.shape[1], *x.shape[-2:], dtype=x.dtype, device=x.device)
        else:
            rays = camera_rays.transpose(1, 2).flatten(0, 1).to(self.camera_embed.weight.dtype)
            pose = self.camera_embed(rays).to(x.dtype)  # (B*F, E, h0, w0)
            if camera_rays_mask is not None:
                keep = camera_rays_mask.to(device=pose.device, dtype=torch.bool)
                pose = pose * keep.flatten()[:, None, None, None].to(pose.dtype)
            emb = emb + pose
        num_levels = len(self.config.block_out_channels)
        return [emb] + [F.avg_pool2d(emb, kernel_size=2**level) for level in range(1, num_levels)]

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor | float,
        condition: torch.Tensor | None = None,
        camera_rays: torch.Tensor | None = None,
        condition_mask: torch.Tensor | None = None,
        camera_rays_mask: torch.Tensor | None = None,
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        r"""Predict the denoising target (v) of every frame.

        Args:
            hidden_states: ``(B, C, F, H, W)`` noisy frames (pixel space for RealEstate10K, roughly [-1, 1]); another
                float dtype than the model's is cast to the patch embedding's dtype (also the output's).
            timestep: a scalar, ``(B,)`` or ``(B, F)`` per-frame noise levels as DFoT feeds them: any finite
                ``0.125 * logSNR`` for ``noise_embedding_type="fourier"``, an integer in
                ``[-1, num_train_timesteps - 1]`` for ``"sinusoidal"`` (-1 = clean context, embedded as 0).
            condition: optional ``(B, F, condition_dim)`` per-frame vector condition; None means no condition.
            camera_rays: ``(B, C_ray, F, H, W)`` ray map of poses normalised by the window's first frame
                (``diffusers_syn2seq.camera.ray_map(poses, H, W, kind=config.camera_ray_type)``). ``None`` gives every
                frame the dropped (null) pose embedding, the same as an all-False ``camera_rays_mask``: the
                unconditional branch of pose guidance.
            condition_mask: optional ``(B, F)`` bool, False drops ``condition`` for that frame.
            camera_rays_mask: optional ``(B, F)`` bool, False gives that frame the null pose embedding (zeros after
                the ray patch embedding, as the official dropout).
            return_dict: return a :class:`Transformer2DModelOutput` instead of a tuple.
            attention_kwargs: ``{"scale": lora_scale}`` for PEFT LoRA layers.

        Returns:
            ``sample`` of shape ``(B, out_channels, F, H, W)``.

        Raises:
            ValueError: bad shape, dtype, device or value (NaN/inf, timestep range), naming the argument.
        """
        cfg = self.config
        num_levels = len(cfg.block_out_channels)
        timestep = check_dfot_inputs(
            hidden_states, timestep, condition, camera_rays, condition_mask, camera_rays_mask, cfg,
            size_multiple=cfg.patch_size * 2 ** (num_levels - 1),
        )
        batch, _, frames, height, width = hidden_states.shape

        # (B, C, F, H, W) -> (B*F, C, H, W): every 2D layer acts per frame.
        x = hidden_states.transpose(1, 2).flatten(0, 1)
        x = self.patch_embed(x.to(self.patch_embed.weight.dtype))  # (B*F, C0, h0, w0)
        embs = self.embed_conditions(timestep, condition, condition_mask, camera_rays, camera_rays_mask, x)

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
