# SPDX-License-Identifier: Apache-2.0
"""DFoT DiT3D: the Diffusion Forcing Transformer backbone (Song et al., 2025, arXiv 2502.06764).

A non-causal video DiT whose every frame carries its own noise level. Reading order: attention processor,
attention module, noise-level embeddings, 3D rotary embedding, transformer block, the model.

Shapes: ``B`` batch, ``F`` frames, ``C`` channels, ``H x W`` frame size, ``P = (H / p) * (W / p)`` patches per
frame, ``N = F * P`` tokens (frame-major), ``D`` hidden size.
"""

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin, AttentionModuleMixin, FeedForward
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import apply_lora_scale, logging
from diffusers.utils.torch_utils import maybe_allow_in_graph

from .._version import __version__

logger = logging.get_logger(__name__)  # pylint: disable=invalid-name

CAMERA_RAY_CHANNELS = {"ray": 6, "plucker": 6, "ray_encoding": 180}
NOISE_EMBEDDING_TYPES = ("sinusoidal", "fourier")
RESIDUAL_FORMS = ("standard", "dfot")


class DFoTAttnProcessor:
    """Full 3D self-attention with axial RoPE on queries and keys, through `dispatch_attention_fn`."""

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn: "DFoTAttention",
        hidden_states: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if attn.fused_projections:
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)

        # (B, N, heads, head_dim): the layout `dispatch_attention_fn` expects.
        query = query.unflatten(-1, (attn.heads, -1))
        key = key.unflatten(-1, (attn.heads, -1))
        value = value.unflatten(-1, (attn.heads, -1))

        if rotary_emb is not None:
            query = apply_interleaved_rotary_emb(query, *rotary_emb)
            key = apply_interleaved_rotary_emb(key, *rotary_emb)

        hidden_states = dispatch_attention_fn(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=0.0,
            is_causal=False,
            backend=self._attention_backend,
            parallel_config=self._parallel_config,
        )
        hidden_states = hidden_states.flatten(2, 3).type_as(query)
        hidden_states = attn.to_out[0](hidden_states)
        return attn.to_out[1](hidden_states)


class DFoTAttention(nn.Module, AttentionModuleMixin):
    """Multi-head self-attention with separate (fusable) q/k/v projections, all with bias as in DFoT."""

    _default_processor_cls = DFoTAttnProcessor
    _available_processors = [DFoTAttnProcessor]

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0, processor=None):
        super().__init__()
        self.heads = heads
        self.inner_dim = heads * dim_head
        self.use_bias = True
        self.is_cross_attention = False
        self.to_q = nn.Linear(dim, self.inner_dim, bias=True)
        self.to_k = nn.Linear(dim, self.inner_dim, bias=True)
        self.to_v = nn.Linear(dim, self.inner_dim, bias=True)
        self.to_out = nn.ModuleList([nn.Linear(self.inner_dim, dim, bias=True), nn.Dropout(dropout)])
        self.set_processor(processor if processor is not None else self._default_processor_cls())

    def forward(
        self,
        hidden_states: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.processor(self, hidden_states, rotary_emb=rotary_emb, attention_mask=attention_mask)


def apply_interleaved_rotary_emb(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs ``(x0, x1), (x2, x3), ...`` of ``x`` (B, N, heads, d) by angles whose
    cos/sin are (N, d) with each frequency repeated twice; computed in float32 as DFoT does."""
    dtype = x.dtype
    x = x.float()
    x_pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack((-x_pairs[..., 1], x_pairs[..., 0]), dim=-1).flatten(-2)
    cos, sin = cos[:, None, :], sin[:, None, :]  # broadcast over heads
    return (x * cos + rotated * sin).to(dtype)


class DFoTFourierEmbedding(nn.Module):
    """Random Fourier features of a continuous noise level (``0.125 * logSNR``), EDM2-style.

    ``freqs`` already include the factor ``2 * pi`` (``2 pi f``, ``f ~ N(0, 1)``) and ``phases`` are ``2 pi U[0, 1)``,
    matching the buffers of the official checkpoints; both are persistent because they are part of the weights.
    """

    def __init__(self, num_channels: int):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(num_channels))
        self.register_buffer("phases", 2 * math.pi * torch.rand(num_channels))

    def forward(self, noise_level: torch.Tensor) -> torch.Tensor:
        y = noise_level.float()[..., None] * self.freqs.float() + self.phases.float()
        return y.cos() * math.sqrt(2.0)


class DFoTRotaryPosEmbed(nn.Module):
    """3D axial rotary embedding over (frame, row, column) with DFoT's split of the rotary dimensions.

    A head of size ``d`` has ``d / 2`` frequency pairs; with ``k = d // 6`` they go to (t, h, w) as
    ``(k, k, k)``, ``(k + 1, k, k)`` or ``(k, k + 1, k + 1)`` when ``(d / 2) % 3`` is 0, 1 or 2. Each axis has its own
    frequencies ``theta ** (-2 i / d_axis)``. Positions are computed for the actual (F, H', W') grid, which equals
    slicing DFoT's flattened (max_frames, H', W') table whenever the grid matches the training size.
    """

    def __init__(self, attention_head_dim: int, theta: float = 10000.0):
        super().__init__()
        if attention_head_dim % 2 != 0:
            raise ValueError(f"`attention_head_dim` must be even for rotary embeddings, got {attention_head_dim}.")
        pairs = attention_head_dim // 2
        k = pairs // 3
        split = {0: (k, k, k), 1: (k + 1, k, k), 2: (k, k + 1, k + 1)}[pairs % 3]
        self.axis_dims = tuple(2 * n for n in split)  # rotary dims per axis (t, h, w)
        self.theta = theta

    def axis_angles(self, axis_dim: int, length: int, device: torch.device) -> torch.Tensor:
        freqs = 1.0 / (self.theta ** (torch.arange(0, axis_dim, 2, device=device).float() / axis_dim))
        angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * freqs[None, :]
        return angles.repeat_interleave(2, dim=-1)  # (length, axis_dim), each frequency twice (interleaved pairs)

    def forward(self, num_frames: int, height: int, width: int, device: torch.device):
        """Returns (cos, sin), each (num_frames * height * width, head_dim), frame-major like the tokens."""
        grid = (num_frames, height, width)
        per_axis = []
        for axis, (axis_dim, length) in enumerate(zip(self.axis_dims, grid)):
            shape = [1, 1, 1, axis_dim]
            shape[axis] = length
            per_axis.append(self.axis_angles(axis_dim, length, device).view(shape).expand(*grid, axis_dim))
        angles = torch.cat(per_axis, dim=-1).flatten(0, 2)
        return angles.cos(), angles.sin()


class DFoTAdaLayerNorm(nn.Module):
    """LayerNorm without affine, modulated by ``n_chunks`` vectors from ``Linear(SiLU(c))`` (shift, scale[, gate]).

    The modulation runs in float32 even under bf16 autocast: it sets the scale of every residual update.
    ``c`` may be per frame (B, F, 1, D) or per token (B, F, P, D); the output broadcasts against x (B, F, P, D).
    """

    def __init__(self, dim: int, n_chunks: int, eps: float = 1e-6):
        super().__init__()
        self.n_chunks = n_chunks
        self.eps = eps
        self.linear = nn.Linear(dim, n_chunks * dim, bias=True)

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.autocast(device_type=cond.device.type, enabled=False):
            emb = F.linear(F.silu(cond.float()), self.linear.weight.float(), self.linear.bias.float())
        return emb.chunk(self.n_chunks, dim=-1)

    def normalize(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = F.layer_norm(x.float(), (x.shape[-1],), eps=self.eps)
            return x * (1 + scale) + shift


@maybe_allow_in_graph
class DFoTTransformerBlock(nn.Module):
    """AdaLN-Zero DiT block: full 3D self-attention + GELU(tanh) MLP, per-token modulation.

    ``residual_form="standard"``: ``x = x + g * attn(mod(LN(x)))``. ``residual_form="dfot"`` reproduces the released
    DFoT code, whose residual stream is replaced by the modulated activations before each add:
    ``x = mod(LN(x)); x = x + g * attn(x)``; converted checkpoints need it.
    """

    def __init__(
        self,
        dim: int,
        num_attention_heads: int,
        attention_head_dim: int,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-6,
        residual_form: str = "standard",
    ):
        super().__init__()
        self.residual_form = residual_form
        self.norm1 = DFoTAdaLayerNorm(dim, 3, eps=norm_eps)
        self.attn = DFoTAttention(dim, heads=num_attention_heads, dim_head=attention_head_dim)
        self.norm2 = DFoTAdaLayerNorm(dim, 3, eps=norm_eps)
        self.ff = FeedForward(dim, mult=mlp_ratio, activation_fn="gelu-approximate")

    def forward(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """hidden_states (B, F, P, D); temb (B, F, 1 or P, D) per-frame or per-token conditioning."""
        batch_size, num_frames, num_patches, dim = hidden_states.shape
        compute_dtype = hidden_states.dtype  # the residual stream keeps the dtype the patch embedding produced

        shift_msa, scale_msa, gate_msa = self.norm1.modulation(temb)
        shift_mlp, scale_mlp, gate_mlp = self.norm2.modulation(temb)

        norm_hidden_states = self.norm1.normalize(hidden_states, shift_msa, scale_msa).to(compute_dtype)
        if self.residual_form == "dfot":
            hidden_states = norm_hidden_states
        attn_output = self.attn(norm_hidden_states.flatten(1, 2), rotary_emb=rotary_emb)
        hidden_states = hidden_states + gate_msa * attn_output.view(batch_size, num_frames, num_patches, dim)

        norm_hidden_states = self.norm2.normalize(hidden_states, shift_mlp, scale_mlp).to(compute_dtype)
        if self.residual_form == "dfot":
            hidden_states = norm_hidden_states
        hidden_states = hidden_states + gate_mlp * self.ff(norm_hidden_states)
        return hidden_states.to(compute_dtype)


class DFoTTransformer3DModel(ModelMixin, ConfigMixin, PeftAdapterMixin, CacheMixin, AttentionMixin):
    r"""
    The Diffusion Forcing Transformer (DFoT, DiT3D backbone) for video: every frame carries its own noise level.

    Args:
        in_channels (`int`, defaults to 4): Channels of the input frames (pixels or latents).
        out_channels (`int`, *optional*): Output channels; defaults to `in_channels`.
        sample_size (`int` or `tuple[int, int]`, defaults to 32): Training frame size (H, W); other sizes divisible
            by `patch_size` also run (RoPE positions are computed for the actual grid).
        max_frames (`int`, defaults to 16): Frame window the model was trained on (DFoT's `max_tokens`); inputs may
            have at most this many frames (longer videos are generated with a sliding window by the pipeline).
        patch_size (`int`, defaults to 2): Square per-frame patch size.
        num_layers (`int`, defaults to 12): Number of transformer blocks.
        num_attention_heads (`int`, defaults to 6): Attention heads.
        attention_head_dim (`int`, defaults to 64): Channels per head; hidden size is `heads * head_dim`.
        mlp_ratio (`float`, defaults to 4.0): MLP hidden size over hidden size.
        noise_embedding_type (`str`, defaults to `"sinusoidal"`): `"sinusoidal"` takes integer DDPM indices
            (0..999, -1 = clean context, clamped to 0); `"fourier"` takes continuous `0.125 * logSNR`.
        noise_embedding_dim (`int`, defaults to 256): Width of the sinusoidal / Fourier features.
        condition_dim (`int`, *optional*): Width of an optional per-frame condition vector (actions, etc.),
            embedded by an MLP and added to the noise-level embedding.
        condition_dropout (`float`, defaults to 0.0): Training-time probability of dropping a sample's condition.
        camera_ray_type (`str`, *optional*): `"ray"` (6), `"plucker"` (6) or `"ray_encoding"` (180 channels): a per-pixel
            camera ray map patch-embedded and added to the per-token conditioning (DFoT's pose FiLM design).
        camera_dropout (`float`, defaults to 0.0): Training-time probability of dropping a sample's camera rays.
        residual_form (`str`, defaults to `"standard"`): `"standard"` DiT residuals, or `"dfot"` for the released
            DFoT code's form (required by converted official checkpoints).
        norm_eps (`float`, defaults to 1e-6): LayerNorm epsilon.
        rope_theta (`float`, defaults to 10000.0): RoPE base.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["DFoTTransformerBlock"]
    _repeated_blocks = ["DFoTTransformerBlock"]
    _keep_in_fp32_modules = ["time_proj", "time_embedding", "condition_embedding", "norm1", "norm2", "norm_out"]
    _skip_layerwise_casting_patterns = ["patch_embedding", "camera_embedding", "time_", "condition_embedding", "norm"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int | None = None,
        sample_size: int | tuple[int, int] = 32,
        max_frames: int = 16,
        patch_size: int = 2,
        num_layers: int = 12,
        num_attention_heads: int = 6,
        attention_head_dim: int = 64,
        mlp_ratio: float = 4.0,
        noise_embedding_type: str = "sinusoidal",
        noise_embedding_dim: int = 256,
        condition_dim: int | None = None,
        condition_dropout: float = 0.0,
        camera_ray_type: str | None = None,
        camera_dropout: float = 0.0,
        residual_form: str = "standard",
        norm_eps: float = 1e-6,
        rope_theta: float = 10000.0,
    ):
        super().__init__()
        if noise_embedding_type not in NOISE_EMBEDDING_TYPES:
            raise ValueError(f"`noise_embedding_type` must be one of {NOISE_EMBEDDING_TYPES}, got {noise_embedding_type!r}.")
        if residual_form not in RESIDUAL_FORMS:
            raise ValueError(f"`residual_form` must be one of {RESIDUAL_FORMS}, got {residual_form!r}.")
        if camera_ray_type is not None and camera_ray_type not in CAMERA_RAY_CHANNELS:
            raise ValueError(
                f"`camera_ray_type` must be None or one of {tuple(CAMERA_RAY_CHANNELS)}, got {camera_ray_type!r}."
            )
        for name, p in (("condition_dropout", condition_dropout), ("camera_dropout", camera_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {p}.")
        out_channels = out_channels or in_channels
        inner_dim = num_attention_heads * attention_head_dim
        self.register_to_config(_syn2seq_version=__version__)

        # 1. Per-frame patch embedding and 3D RoPE (no absolute position embedding).
        self.patch_embedding = nn.Conv2d(in_channels, inner_dim, kernel_size=patch_size, stride=patch_size)
        self.rope = DFoTRotaryPosEmbed(attention_head_dim, theta=rope_theta)

        # 2. Per-frame conditioning: noise level [+ condition vector] [+ per-pixel camera rays].
        if noise_embedding_type == "sinusoidal":
            self.time_proj = Timesteps(noise_embedding_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        else:
            self.time_proj = DFoTFourierEmbedding(noise_embedding_dim)
        self.time_embedding = TimestepEmbedding(noise_embedding_dim, inner_dim)
        self.condition_embedding = TimestepEmbedding(condition_dim, inner_dim) if condition_dim else None
        self.camera_embedding = None
        if camera_ray_type is not None:
            self.camera_embedding = nn.Conv2d(
                CAMERA_RAY_CHANNELS[camera_ray_type], inner_dim, kernel_size=patch_size, stride=patch_size
            )

        # 3. Transformer blocks.
        self.transformer_blocks = nn.ModuleList(
            [
                DFoTTransformerBlock(
                    inner_dim, num_attention_heads, attention_head_dim, mlp_ratio, norm_eps, residual_form
                )
                for _ in range(num_layers)
            ]
        )

        # 4. Output: AdaLN (shift, scale) + linear to patch pixels.
        self.norm_out = DFoTAdaLayerNorm(inner_dim, 2, eps=norm_eps)
        self.proj_out = nn.Linear(inner_dim, patch_size * patch_size * out_channels)

        self.gradient_checkpointing = False
        self.initialize_weights()

    @property
    def camera_ray_channels(self) -> int | None:
        """Channels of the `camera_rays` input (6, 6 or 180), or None for a model without pose conditioning."""
        ray_type = self.config.camera_ray_type
        return None if ray_type is None else CAMERA_RAY_CHANNELS[ray_type]

    def initialize_weights(self) -> None:
        """DiT initialisation: xavier for linear layers and patch embeddings, N(0, 0.02) for the embedding MLPs,
        zero for every modulation and the output projection (AdaLN-Zero: each block starts as the identity)."""

        def _basic_init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.apply(_basic_init)
        for conv in (self.patch_embedding, self.camera_embedding):
            if conv is not None:  # like nn.Linear over the flattened patch
                nn.init.xavier_uniform_(conv.weight.data.view(conv.weight.shape[0], -1))
                nn.init.zeros_(conv.bias)
        for mlp in (self.time_embedding, self.condition_embedding):
            if mlp is not None:
                for linear in (mlp.linear_1, mlp.linear_2):
                    nn.init.normal_(linear.weight, std=0.02)
                    nn.init.zeros_(linear.bias)
        for norm in [self.norm_out] + [m for b in self.transformer_blocks for m in (b.norm1, b.norm2)]:
            nn.init.zeros_(norm.linear.weight)
            nn.init.zeros_(norm.linear.bias)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    # ----------------------------------------------------------------------------------------------------------------
    # Input checks: every message names the argument, the expected and the received value.
    # ----------------------------------------------------------------------------------------------------------------
    def _check_inputs(self, hidden_states, timestep, condition, camera_rays, condition_mask, camera_rays_mask):
        cfg = self.config
        if hidden_states.ndim != 5:
            raise ValueError(
                f"`hidden_states` must be (batch, channels, frames, height, width), got shape {tuple(hidden_states.shape)}."
            )
        batch_size, channels, num_frames, height, width = hidden_states.shape
        if channels != cfg.in_channels:
            raise ValueError(f"`hidden_states` must have {cfg.in_channels} channels (dim 1), got {channels}.")
        if height % cfg.patch_size or width % cfg.patch_size:
            raise ValueError(
                f"`hidden_states` height and width must be divisible by patch_size={cfg.patch_size}, got {height}x{width}."
            )
        if num_frames > cfg.max_frames:
            raise ValueError(
                f"`hidden_states` has {num_frames} frames but the model's window is max_frames={cfg.max_frames}; "
                "generate longer videos with the pipeline's sliding window."
            )
        if timestep.shape not in ((batch_size,), (batch_size, num_frames)) and timestep.ndim != 0:
            raise ValueError(
                f"`timestep` must have shape ({batch_size},) or ({batch_size}, {num_frames}), got {tuple(timestep.shape)}."
            )
        if cfg.condition_dim:
            if condition is None:
                raise ValueError(f"`condition` of shape ({batch_size}, {num_frames}, {cfg.condition_dim}) is required.")
            if tuple(condition.shape) != (batch_size, num_frames, cfg.condition_dim):
                raise ValueError(
                    f"`condition` must have shape ({batch_size}, {num_frames}, {cfg.condition_dim}), "
                    f"got {tuple(condition.shape)}."
                )
        elif condition is not None:
            raise ValueError("`condition` was given but the model has no condition embedding (condition_dim=None).")
        if self.camera_ray_channels is not None:
            expected = (batch_size, self.camera_ray_channels, num_frames, height, width)
            if camera_rays is None:
                raise ValueError(f"`camera_rays` of shape {expected} is required (camera_ray_type={cfg.camera_ray_type!r}).")
            if tuple(camera_rays.shape) != expected:
                raise ValueError(f"`camera_rays` must have shape {expected}, got {tuple(camera_rays.shape)}.")
        elif camera_rays is not None:
            raise ValueError("`camera_rays` was given but the model has no camera embedding (camera_ray_type=None).")
        for name, mask in (("condition_mask", condition_mask), ("camera_rays_mask", camera_rays_mask)):
            if mask is not None and tuple(mask.shape) != (batch_size, num_frames):
                raise ValueError(f"`{name}` must have shape ({batch_size}, {num_frames}), got {tuple(mask.shape)}.")

    def _drop_mask(self, keep_mask: torch.Tensor | None, dropout: float, shape: tuple[int, int], device) -> torch.Tensor | None:
        """(B, F, 1, 1) float keep-mask combining the caller's mask with training-time per-sample dropout."""
        keep = None if keep_mask is None else keep_mask.to(device=device, dtype=torch.bool)
        if self.training and dropout > 0:
            sample_keep = (torch.rand(shape[0], device=device) >= dropout)[:, None].expand(shape)
            keep = sample_keep if keep is None else keep & sample_keep
        return None if keep is None else keep[:, :, None, None].float()

    def embed_noise_levels(self, timestep: torch.Tensor, batch_size: int, num_frames: int) -> torch.Tensor:
        """(B,) or (B, F) noise levels -> (B, F, D) embeddings."""
        timestep = timestep.reshape(-1, 1) if timestep.ndim <= 1 else timestep
        timestep = timestep.expand(batch_size, num_frames)
        if self.config.noise_embedding_type == "sinusoidal":
            timestep = timestep.clamp(min=0)  # -1 labels clean context frames (DFoT clamps it to 0)
        features = self.time_proj(timestep.flatten()).float()
        with torch.autocast(device_type=features.device.type, enabled=False):
            emb = self.time_embedding(features.to(self.time_embedding.linear_1.weight.dtype))
        return emb.view(batch_size, num_frames, -1).float()

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
    ) -> torch.Tensor | Transformer2DModelOutput:
        r"""
        Args:
            hidden_states (`torch.Tensor`): Noisy video (B, C, F, H, W).
            timestep (`torch.Tensor`): Noise level per sample (B,) or per frame (B, F): integer DDPM indices for
                `noise_embedding_type="sinusoidal"` (-1 = clean context), `0.125 * logSNR` for `"fourier"`.
            condition (`torch.Tensor`, *optional*): Per-frame condition vectors (B, F, condition_dim).
            camera_rays (`torch.Tensor`, *optional*): Per-pixel camera ray map (B, C_ray, F, H, W) at the input
                resolution (see `diffusers_syn2seq.camera.ray_map`).
            condition_mask, camera_rays_mask (`torch.Tensor`, *optional*): (B, F) booleans; False drops that frame's
                condition / camera embedding (the null embedding, as in training-time dropout). Used for the
                unconditional branch of guidance and for frames without a valid pose.
            return_dict (`bool`): Return a `Transformer2DModelOutput` instead of a tuple.
            attention_kwargs (`dict`, *optional*): `{"scale": s}` scales LoRA layers.

        Returns:
            The model prediction (B, C_out, F, H, W) (v, epsilon or x0 depending on how the model was trained).
        """
        timestep = torch.as_tensor(timestep, device=hidden_states.device)
        self._check_inputs(hidden_states, timestep, condition, camera_rays, condition_mask, camera_rays_mask)
        batch_size, _, num_frames, height, width = hidden_states.shape
        p = self.config.patch_size
        grid_h, grid_w = height // p, width // p
        frame_layout = (batch_size, num_frames)

        # 1. Patchify every frame: (B, C, F, H, W) -> (B, F, P, D).
        frames = hidden_states.transpose(1, 2).flatten(0, 1)
        hidden_states = self.patch_embedding(frames).flatten(2).transpose(1, 2).unflatten(0, frame_layout)
        rotary_emb = self.rope(num_frames, grid_h, grid_w, hidden_states.device)

        # 2. Conditioning, per frame (B, F, 1, D); per token (B, F, P, D) once camera rays are added.
        temb = self.embed_noise_levels(timestep, batch_size, num_frames)
        if self.condition_embedding is not None:
            with torch.autocast(device_type=temb.device.type, enabled=False):
                cond = self.condition_embedding(condition.to(self.condition_embedding.linear_1.weight.dtype)).float()
            keep = self._drop_mask(condition_mask, self.config.condition_dropout, frame_layout, temb.device)
            temb = temb + (cond if keep is None else cond * keep[..., 0])
        temb = temb[:, :, None, :]
        if self.camera_embedding is not None:
            rays = camera_rays.transpose(1, 2).flatten(0, 1).to(self.camera_embedding.weight.dtype)
            ray_emb = self.camera_embedding(rays).flatten(2).transpose(1, 2).unflatten(0, frame_layout).float()
            keep = self._drop_mask(camera_rays_mask, self.config.camera_dropout, frame_layout, temb.device)
            temb = temb + (ray_emb if keep is None else ray_emb * keep)

        # 3. Transformer blocks.
        for block in self.transformer_blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(block, hidden_states, temb, rotary_emb)
            else:
                hidden_states = block(hidden_states, temb, rotary_emb)

        # 4. Output AdaLN + projection, then unpatchify (channel order within a patch: (p, q, c) as in DFoT).
        shift, scale = self.norm_out.modulation(temb)
        hidden_states = self.proj_out(self.norm_out.normalize(hidden_states, shift, scale).to(hidden_states.dtype))
        out_channels = self.config.out_channels or self.config.in_channels
        hidden_states = hidden_states.view(batch_size, num_frames, grid_h, grid_w, p, p, out_channels)
        output = hidden_states.permute(0, 6, 1, 2, 4, 3, 5).reshape(batch_size, out_channels, num_frames, height, width)

        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def _register_block_for_caching() -> None:
    """Let First-Block-Cache / MagCache hooks find our block: it returns only the hidden states."""
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry

    TransformerBlockRegistry.register(
        model_class=DFoTTransformerBlock,
        metadata=TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None),
    )


_register_block_for_caching()
