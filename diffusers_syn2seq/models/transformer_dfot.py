# SPDX-License-Identifier: Apache-2.0
"""DFoT DiT3D: the Diffusion Forcing Transformer backbone (Song et al., 2025, arXiv 2502.06764).

A non-causal video DiT whose every frame carries its own noise level. Reading order: attention processor,
attention module, AdaLN, transformer block, the model, then its size presets (`DIT_PRESETS`). The 3D rotary
embedding and the Fourier noise features are shared with the U-ViT (`modules_dfot.py`), and so are the checks of the
configuration and of the inputs (`checks_dfot.py`).

Shapes: ``B`` batch, ``F`` frames, ``C`` channels, ``H x W`` frame size, ``P = (H / p) * (W / p)`` patches per
frame, ``N = F * P`` tokens (frame-major), ``D`` hidden size.
"""

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin, AttentionModuleMixin, FeedForward
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.embeddings import TimestepEmbedding
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import apply_lora_scale, logging
from diffusers.utils.torch_utils import maybe_allow_in_graph

from .._version import __version__
from ..camera import RAY_MAP_CHANNELS
from .checks_dfot import check_dfot_inputs, check_dit_config
from .modules_dfot import (
    DFoTFourierEmbedding,
    RotaryEmbedding,
    apply_rope3d,
    condition_keep_mask,
    retire_camera_dropout,
    rope3d,
    sinusoidal_noise_features,
)

logger = logging.get_logger(__name__)  # pylint: disable=invalid-name


class DFoTAttnProcessor:
    """Full 3D self-attention with axial RoPE on queries and keys, through `dispatch_attention_fn`.

    Queries, keys and values are views of the projections in the ``(B, N, heads, head_dim)`` layout the dispatcher
    takes; with fused projections (`fuse_qkv_projections`) RoPE rotates queries and keys in one call on the
    ``(B, N, 2, heads, head_dim)`` view of the fused output.
    """

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn: "DFoTAttention",
        hidden_states: torch.Tensor,
        rotary_emb: RotaryEmbedding | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if attn.fused_projections:
            qkv = attn.to_qkv(hidden_states).unflatten(-1, (3, attn.heads, -1))  # (B, N, 3, heads, head_dim)
            query_key, value = qkv[:, :, :2], qkv[:, :, 2]
            if rotary_emb is not None:
                query_key = apply_rope3d(query_key, rotary_emb)
            query, key = query_key.unbind(2)
        else:
            query, key, value = (
                proj(hidden_states).unflatten(-1, (attn.heads, -1)) for proj in (attn.to_q, attn.to_k, attn.to_v)
            )
            if rotary_emb is not None:
                query, key = apply_rope3d(query, rotary_emb), apply_rope3d(key, rotary_emb)

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
        rotary_emb: RotaryEmbedding | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.processor(self, hidden_states, rotary_emb=rotary_emb, attention_mask=attention_mask)


class DFoTAdaLayerNorm(nn.Module):
    """LayerNorm without affine, modulated by ``n_chunks`` vectors from ``Linear(SiLU(c))`` (shift, scale[, gate]).

    ``c`` may be per frame (B, F, 1, D) or per token (B, F, P, D); the output broadcasts against x (B, F, P, D). The
    model applies the SiLU once for all its norms (:meth:`modulation` takes ``SiLU(c)``). The modulation is computed
    in the compute dtype: the autocast dtype under autocast (the linear's weights stay float32 when
    `_keep_in_fp32_modules` keeps them, and autocast casts them), else the linear's dtype, cast to the dtype of the
    residual stream; the LayerNorm statistics are always accumulated in float32 by the kernel.
    """

    def __init__(self, dim: int, n_chunks: int, eps: float = 1e-6):
        super().__init__()
        self.n_chunks = n_chunks
        self.eps = eps
        self.linear = nn.Linear(dim, n_chunks * dim, bias=True)

    def modulation(self, cond: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """``SiLU(c)`` -> ``(shift, 1 + scale[, gate])`` in ``dtype``: the 1 is added to the bias, not to the
        (possibly per-token) scale, so that no extra pass over the modulation is needed."""
        bias_chunks = self.linear.bias.chunk(self.n_chunks)
        bias = torch.cat([bias_chunks[0], bias_chunks[1] + 1, *bias_chunks[2:]])
        if not torch.is_autocast_enabled(cond.device.type):
            cond = cond.to(self.linear.weight.dtype)
        emb = F.linear(cond, self.linear.weight, bias)
        return tuple(chunk.to(dtype) for chunk in emb.chunk(self.n_chunks, dim=-1))

    def normalize(self, x: torch.Tensor, shift: torch.Tensor, scale_plus_one: torch.Tensor) -> torch.Tensor:
        """``LN(x) * (1 + scale) + shift`` in the dtype of ``x``, the multiply-add fused (`torch.addcmul`)."""
        with torch.autocast(device_type=x.device.type, enabled=False):  # CUDA autocast would run LN in float32
            normed = F.layer_norm(x, (x.shape[-1],), eps=self.eps)
            return torch.addcmul(shift, normed, scale_plus_one)


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
        rotary_emb: RotaryEmbedding | None = None,
    ) -> torch.Tensor:
        """hidden_states (B, F, P, D); temb (B, F, 1 or P, D) per-frame or per-token conditioning, after the SiLU
        (the model applies it once for all blocks). Returns hidden states in the dtype they came in."""
        batch_size, num_frames, num_patches, dim = hidden_states.shape
        dtype = hidden_states.dtype  # the residual stream keeps the dtype the patch embedding produced

        shift_msa, scale_msa, gate_msa = self.norm1.modulation(temb, dtype)
        shift_mlp, scale_mlp, gate_mlp = self.norm2.modulation(temb, dtype)

        norm_hidden_states = self.norm1.normalize(hidden_states, shift_msa, scale_msa)
        if self.residual_form == "dfot":
            hidden_states = norm_hidden_states
        attn_output = self.attn(norm_hidden_states.flatten(1, 2), rotary_emb=rotary_emb)
        attn_output = attn_output.view(batch_size, num_frames, num_patches, dim)
        hidden_states = torch.addcmul(hidden_states, gate_msa, attn_output.to(dtype))

        norm_hidden_states = self.norm2.normalize(hidden_states, shift_mlp, scale_mlp)
        if self.residual_form == "dfot":
            hidden_states = norm_hidden_states
        return torch.addcmul(hidden_states, gate_mlp, self.ff(norm_hidden_states).to(dtype))


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
            (0..num_train_timesteps-1, -1 = clean context, embedded as 0); `"fourier"` takes continuous
            `0.125 * logSNR`.
        noise_embedding_dim (`int`, defaults to 256): Width of the sinusoidal / Fourier features.
        condition_dim (`int`, *optional*): Width of an optional per-frame condition vector (actions, etc.),
            embedded by an MLP and added to the noise-level embedding.
        condition_dropout (`float`, defaults to 0.0): Training-time probability of dropping the per-frame vector
            `condition` of a whole sample (DFoT's `external_cond_dropout`). It never drops camera poses: pose dropout
            is done by the training objective through `camera_rays_mask` (`train.py --camera_dropout`).
        camera_ray_type (`str`, *optional*): `"ray"` (6), `"plucker"` (6) or `"ray_encoding"` (180 channels): a
            per-pixel camera ray map patch-embedded and added to the per-token conditioning (DFoT's pose FiLM design).
        residual_form (`str`, defaults to `"standard"`): `"standard"` DiT residuals, or `"dfot"` for the released
            DFoT code's form (required by converted official checkpoints).
        norm_eps (`float`, defaults to 1e-6): LayerNorm epsilon.
        rope_theta (`float`, defaults to 10000.0): RoPE base.
        num_train_timesteps (`int`, defaults to 1000): Levels of the discrete schedule a `"sinusoidal"` model is
            trained with; its `timestep` must be an integer in `[-1, num_train_timesteps - 1]` (unused by `"fourier"`).

    Every option is checked at construction (`checks_dfot.check_dit_config`): counts are positive integers (numpy
    integers accepted, bools and floats refused), names are among the listed choices; a bad value raises a
    `ValueError` naming the option, the expectation and the value. A frame size that is not a multiple of `patch_size`
    is refused by `forward`.

    Configs saved before `camera_dropout` was retired still load; the key is ignored (see
    `modules_dfot.retire_camera_dropout`).

    Speed: `compile_repeated_blocks()` compiles the transformer blocks with `torch.compile` (regional compilation;
    `pipe.transformer.compile_repeated_blocks()` for sampling, `train.py --compile` for training), and
    `fuse_qkv_projections()` fuses the q/k/v projections for inference. Neither changes the weight names. The input
    value checks are skipped while `torch.compile` traces a whole-model compile (`torch.compile(model)`).
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
        residual_form: str = "standard",
        norm_eps: float = 1e-6,
        rope_theta: float = 10000.0,
        num_train_timesteps: int = 1000,
    ):
        super().__init__()
        # Checked values are plain Python numbers (a numpy integer would not survive the JSON config).
        checked = check_dit_config(self.config)
        self.register_to_config(**checked)
        in_channels, patch_size, num_layers = checked["in_channels"], checked["patch_size"], checked["num_layers"]
        num_attention_heads, attention_head_dim = checked["num_attention_heads"], checked["attention_head_dim"]
        noise_embedding_dim, condition_dim = checked["noise_embedding_dim"], checked["condition_dim"]
        mlp_ratio, norm_eps = checked["mlp_ratio"], checked["norm_eps"]
        out_channels = checked["out_channels"] or in_channels
        inner_dim = num_attention_heads * attention_head_dim
        self.register_to_config(_syn2seq_version=__version__)

        # 1. Per-frame patch embedding (positions come from 3D RoPE in attention, no absolute embedding).
        self.patch_embedding = nn.Conv2d(in_channels, inner_dim, kernel_size=patch_size, stride=patch_size)

        # 2. Per-frame conditioning: noise level [+ condition vector] [+ per-pixel camera rays].
        self.time_proj = DFoTFourierEmbedding(noise_embedding_dim) if noise_embedding_type == "fourier" else None
        self.time_embedding = TimestepEmbedding(noise_embedding_dim, inner_dim)
        self.condition_embedding = TimestepEmbedding(condition_dim, inner_dim) if condition_dim else None
        self.camera_embedding = None
        if camera_ray_type is not None:
            self.camera_embedding = nn.Conv2d(
                RAY_MAP_CHANNELS[camera_ray_type], inner_dim, kernel_size=patch_size, stride=patch_size
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

    @classmethod
    def extract_init_dict(cls, config_dict: Mapping[str, Any], **kwargs):
        # Old saved configs carry the retired `camera_dropout`: drop it before diffusers matches the keys.
        return super().extract_init_dict(retire_camera_dropout(config_dict, cls.__name__), **kwargs)

    @property
    def camera_ray_channels(self) -> int | None:
        """Channels of the `camera_rays` input (6, 6 or 180), or None for a model without pose conditioning."""
        ray_type = self.config.camera_ray_type
        return None if ray_type is None else RAY_MAP_CHANNELS[ray_type]

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

    def _modulation_dtype(self, device: torch.device) -> torch.dtype:
        """Dtype of the AdaLN modulation: the autocast dtype under autocast, else the modulation weights' dtype."""
        if torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
        return self.norm_out.linear.weight.dtype

    def embed_noise_levels(self, timestep: torch.Tensor) -> torch.Tensor:
        """(B, F) noise levels -> (B, F, D) float32 embeddings."""
        if self.time_proj is None:
            features = sinusoidal_noise_features(timestep, self.config.noise_embedding_dim)  # clamps -1 to 0
        else:
            features = self.time_proj(timestep)
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self.time_embedding(features.to(self.time_embedding.linear_1.weight.dtype)).float()

    def embed_condition(self, condition: torch.Tensor, condition_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, F, condition_dim) vectors -> (B, F, D) float32, zero for dropped frames (`condition_keep_mask`)."""
        batch_size, num_frames, _ = condition.shape
        with torch.autocast(device_type=condition.device.type, enabled=False):
            cond = self.condition_embedding(condition.to(self.condition_embedding.linear_1.weight.dtype)).float()
        keep = condition_keep_mask(
            condition_mask, self.config.condition_dropout, batch_size, num_frames, cond.device, self.training
        )
        return cond if keep is None else cond * keep[..., None].float()

    def embed_camera_rays(
        self, camera_rays: torch.Tensor | None, camera_rays_mask: torch.Tensor | None, hidden_states: torch.Tensor
    ) -> torch.Tensor:
        """(B, C_ray, F, H, W) rays -> (B, F, P, D) float32 per-token pose embedding, like `hidden_states`
        (B, F, P, D). Frames whose `camera_rays_mask` is False, and all frames when `camera_rays` is None, get the
        null pose: zeros, exactly what DFoT's pose dropout produces."""
        if camera_rays is None:
            return torch.zeros(hidden_states.shape, dtype=torch.float32, device=hidden_states.device)
        rays = camera_rays.transpose(1, 2).flatten(0, 1).to(self.camera_embedding.weight.dtype)
        ray_emb = self.camera_embedding(rays).flatten(2).transpose(1, 2).contiguous()  # (see step 1 of `forward`)
        ray_emb = ray_emb.unflatten(0, hidden_states.shape[:2]).float()
        if camera_rays_mask is None:
            return ray_emb
        return ray_emb * camera_rays_mask.to(device=ray_emb.device, dtype=torch.bool)[:, :, None, None].float()

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
    ) -> torch.Tensor | Transformer2DModelOutput:
        r"""
        Args:
            hidden_states (`torch.Tensor`): Noisy video (B, C, F, H, W), floating point; another float dtype than the
                model's (float64 input to a float32 model) is cast to the patch embedding's dtype, which is also the
                dtype of the output.
            timestep (`torch.Tensor` or number): Noise level, a scalar, per sample (B,) or per frame (B, F): integer
                DDPM indices in [-1, num_train_timesteps - 1] for `noise_embedding_type="sinusoidal"` (-1 = clean
                context; values outside, or fractional ones, raise instead of being clamped), any finite
                `0.125 * logSNR` for `"fourier"`.
            condition (`torch.Tensor`, *optional*): Per-frame condition vectors (B, F, condition_dim); None for a
                model with `condition_dim` means no condition (the null embedding of every frame).
            camera_rays (`torch.Tensor`, *optional*): Per-pixel camera ray map (B, C_ray, F, H, W) at the input
                resolution (see `diffusers_syn2seq.camera.ray_map`); None for a pose model means no pose (the null
                embedding of every frame, the same as an all-False `camera_rays_mask`).
            condition_mask, camera_rays_mask (`torch.Tensor`, *optional*): (B, F) booleans; False drops that frame's
                condition / camera embedding (the null embedding). Used for the unconditional branch of guidance, for
                frames without a valid pose, and by the objective's pose dropout.
            return_dict (`bool`): Return a `Transformer2DModelOutput` instead of a tuple.
            attention_kwargs (`dict`, *optional*): `{"scale": s}` scales LoRA layers.

        Returns:
            The model prediction (B, C_out, F, H, W) (v, epsilon or x0 depending on how the model was trained).

        Raises:
            ValueError: for a bad shape, dtype, device or value (NaN/inf in any input, a timestep outside its range),
                naming the argument (`checks_dfot.check_dfot_inputs`; the checks cost one host synchronisation).
        """
        cfg = self.config
        timestep = check_dfot_inputs(
            hidden_states, timestep, condition, camera_rays, condition_mask, camera_rays_mask, cfg, cfg.patch_size
        )
        batch_size, _, num_frames, height, width = hidden_states.shape
        p = cfg.patch_size
        grid_h, grid_w = height // p, width // p

        # 1. Patchify every frame: (B, C, F, H, W) -> (B, F, P, D), in the patch embedding's dtype. Made contiguous
        # once here: element-wise ops keep their input's layout, so a transposed residual stream would make every
        # LayerNorm and reshape of every block copy it.
        frames = hidden_states.transpose(1, 2).flatten(0, 1).to(self.patch_embedding.weight.dtype)
        hidden_states = self.patch_embedding(frames).flatten(2).transpose(1, 2).contiguous()
        hidden_states = hidden_states.unflatten(0, (batch_size, num_frames))
        rotary_emb = rope3d(cfg.attention_head_dim, num_frames, grid_h, grid_w, cfg.rope_theta, hidden_states.device)

        # 2. Conditioning, per frame (B, F, 1, D); per token (B, F, P, D) once camera rays are added. Every AdaLN
        # takes SiLU(temb): applied once here, in the dtype the modulations run in.
        temb = self.embed_noise_levels(timestep)
        if self.condition_embedding is not None and condition is not None:
            temb = temb + self.embed_condition(condition, condition_mask)
        temb = temb[:, :, None, :]
        if self.camera_embedding is not None and camera_rays is not None:  # no rays: the null pose, zeros
            temb = temb + self.embed_camera_rays(camera_rays, camera_rays_mask, hidden_states)
        temb = F.silu(temb).to(self._modulation_dtype(temb.device))

        # 3. Transformer blocks.
        for block in self.transformer_blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(block, hidden_states, temb, rotary_emb)
            else:
                hidden_states = block(hidden_states, temb, rotary_emb)

        # 4. Output AdaLN + projection, then unpatchify (channel order within a patch: (p, q, c) as in DFoT).
        shift, scale = self.norm_out.modulation(temb, hidden_states.dtype)
        hidden_states = self.proj_out(self.norm_out.normalize(hidden_states, shift, scale))
        out_channels = cfg.out_channels or cfg.in_channels
        hidden_states = hidden_states.view(batch_size, num_frames, grid_h, grid_w, p, p, out_channels)
        output = hidden_states.permute(0, 6, 1, 2, 4, 3, 5).reshape(batch_size, out_channels, num_frames, height, width)

        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


# DFoT's DiT3D sizes (`shared/design/dfot.md`) as layers / heads / head dim, plus a tiny one for tests and CPU runs:
# `DFoTTransformer3DModel(**DIT_PRESETS["dit-s"], ...)`, as DiT's `DiT_models`.
DIT_PRESETS: dict[str, dict[str, Any]] = {
    "dit-tiny": dict(num_layers=2, num_attention_heads=2, attention_head_dim=16, noise_embedding_dim=32),
    "dit-s": dict(num_layers=12, num_attention_heads=6, attention_head_dim=64),
    "dit-b": dict(num_layers=12, num_attention_heads=12, attention_head_dim=64),
    "dit-l": dict(num_layers=24, num_attention_heads=16, attention_head_dim=64),
    "dit-xl": dict(num_layers=28, num_attention_heads=16, attention_head_dim=72),
}


def _register_block_for_caching() -> None:
    """Let First-Block-Cache / MagCache hooks find our block: it returns only the hidden states."""
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry

    TransformerBlockRegistry.register(
        model_class=DFoTTransformerBlock,
        metadata=TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None),
    )


_register_block_for_caching()
