# SPDX-License-Identifier: Apache-2.0
"""`WanDFoTTransformer3DModel`: SkyReels-V2 DF / Wan video transformers behind the DFoT forward contract.

The wrapper holds a diffusers `SkyReelsV2Transformer3DModel` (called with `enable_diffusion_forcing=True`, one
timestep per latent frame) or `WanTransformer3DModel` (per-token timesteps, which gives the same network) as
`backbone`, and adds what `Syn2SeqPipeline` and the diffusion-forcing objective need:

* `forward(hidden_states (B, C, F, H, W), timestep (B, F), camera_rays=None, camera_rays_mask=None)`, where the
  timesteps are the flow scheduler's `model_timesteps` (`sigma * 1000`);
* optional camera conditioning: ray maps through a zero-initialised patch embedding whose tokens are added to the
  backbone's patch tokens (so before training the output is exactly the backbone's);
* one stored prompt embedding (`prompt_embeds` buffer, saved with the weights), computed once with the checkpoint's
  own text encoder (`encode_prompt_embeds`), so no umT5 runs at training or sampling time.

Configuration keys are the backbone's own (flat, so `config.json` describes the network) plus the DFoT names the
pipeline reads (`sample_size`, `max_frames`, `patch_size` as the spatial patch, `noise_embedding_type="flow"`,
`camera_ray_type`).
"""

import html
from collections.abc import Sequence
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_skyreels_v2 import SkyReelsV2Transformer3DModel
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel
from diffusers.utils import is_ftfy_available
from torch import nn

from ..camera import RAY_MAP_CHANNELS
from ..safe_loading import load_pretrained
from ..validation import check_choice, check_finite, check_int, check_positive_int, describe
from .casting import _cast_keeping_fp32_modules
from .checks_dfot import _check_frame_mask, _check_sample_size, _check_video, broadcast_timestep

BACKBONES = {"skyreels-v2-df": SkyReelsV2Transformer3DModel, "wan": WanTransformer3DModel}
# LoRA target modules of these backbones: self- and cross-attention projections and the feed-forward, which is
# `ffn.net` here (DFoT's DiT names it `ff.net`).
WAN_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]
# The configuration `Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers` ships (transformer/config.json): Wan2.1-1.3B with the
# fps ("sample info") embedding; latents of 480x832 video are 60x104 (VAE factor 8).
SKYREELS_V2_DF_1_3B_CONFIG = dict(
    backbone_type="skyreels-v2-df", patch_size=2, num_attention_heads=12, attention_head_dim=128, in_channels=16,
    out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024, inject_sample_info=True,
)
# The SkyReels-V2 DF pipeline embeds fps 16 as index 0 and any other rate as 1.
FPS_INDEX = {16: 0}


class WanDFoTTransformer3DModel(ModelMixin, ConfigMixin, PeftAdapterMixin):
    r"""A SkyReels-V2 diffusion-forcing or Wan 2.1 transformer with DFoT's per-frame forward contract.

    Args:
        backbone_type (`str`, defaults to `"skyreels-v2-df"`): `"skyreels-v2-df"` (`SkyReelsV2Transformer3DModel`) or
            `"wan"` (`WanTransformer3DModel`); both load the same weights.
        patch_size (`int`, defaults to 2): spatial patch; the temporal patch is 1 (one noise level per latent frame).
        num_attention_heads, attention_head_dim, in_channels, out_channels, text_dim, freq_dim, ffn_dim, num_layers,
        cross_attn_norm, qk_norm, eps, rope_max_seq_len: the backbone's arguments (see diffusers).
        inject_sample_info (`bool`): SkyReels' fps embedding (True for SkyReels-V2-DF-1.3B); `fps` is the frame rate it
            is told (16 -> index 0, anything else -> 1, as SkyReels' pipeline does).
        sample_size (`int` or `(h, w)`): latent frame size the model is used at (pipeline default resolution).
        max_frames (`int`): largest window of latent frames (the pipeline's sliding-window size).
        camera_ray_type (`str`, *optional*): `"plucker"`, `"ray"` or `"ray_encoding"` ray maps
            `(B, C_ray, F, H, W)`, one per latent frame, patch-embedded by a zero-initialised convolution and added
            to the tokens; None: no camera input. With a causal video VAE latent frame `j` carries the ray map of
            pixel frame `4 j` of the sequence (`data.sequence.LatentLayout.pixel_index`, the scheme the pipeline and
            train.py share; the rays of the other 3 frames a latent covers are not packed in).
        prompt_length (`int`, defaults to 512): token length of the stored prompt embedding `(1, L, text_dim)`.
        noise_embedding_type (`str`): `"flow"` (the backbone embeds `sigma * 1000`); checked by the pipeline against
            `FlowMatchDiffusionForcingScheduler`.
    """

    _supports_gradient_checkpointing = True
    _keep_in_fp32_modules = ["rope", "time_embedder", "scale_shift_table", "norm1", "norm2", "norm3"]
    _skip_layerwise_casting_patterns = ["patch_embedding", "condition_embedder", "norm", "camera_embedding"]
    _no_split_modules = ["SkyReelsV2TransformerBlock", "WanTransformerBlock"]
    _repeated_blocks = ["SkyReelsV2TransformerBlock", "WanTransformerBlock"]
    lora_target_modules = WAN_LORA_TARGETS  # what `train.py --train_mode lora` adapts by default
    # LoRA files name the backbone's modules without this prefix (diffusers' SkyReels-V2 / Wan format), so they travel
    # between this wrapper and diffusers' pipelines (`loaders.lora_pipeline`).
    lora_module_prefix = "backbone."

    @register_to_config
    def __init__(
        self,
        backbone_type: str = "skyreels-v2-df",
        patch_size: int = 2,
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        rope_max_seq_len: int = 1024,
        inject_sample_info: bool = False,
        fps: int = 24,
        sample_size: int | Sequence[int] = (60, 104),
        max_frames: int = 21,
        camera_ray_type: str | None = None,
        prompt_length: int = 512,
        noise_embedding_type: str = "flow",
    ):
        super().__init__()
        check_choice("backbone_type", backbone_type, tuple(BACKBONES))
        check_choice("noise_embedding_type", noise_embedding_type, ("flow",))
        check_choice("camera_ray_type", camera_ray_type, tuple(RAY_MAP_CHANNELS), allow_none=True)
        patch_size = check_positive_int("patch_size", patch_size)
        sample_size = _check_sample_size(sample_size, patch_size, "patch_size")
        for name, value in (("max_frames", max_frames), ("prompt_length", prompt_length), ("text_dim", text_dim)):
            check_positive_int(name, value)
        check_int("fps", fps, minimum=1)
        check_positive_int("num_attention_heads", num_attention_heads)
        if check_positive_int("attention_head_dim", attention_head_dim) % 2:  # diffusers only asserts it
            raise ValueError(f"`attention_head_dim` must be an even positive integer (Wan's 3-D rotary embedding "
                             f"splits each head into even time, height and width parts), got {attention_head_dim}.")
        if inject_sample_info and backbone_type != "skyreels-v2-df":
            raise ValueError(f"`inject_sample_info` (the fps embedding) exists in the 'skyreels-v2-df' backbone only, "
                             f"got inject_sample_info=True with backbone_type={backbone_type!r}.")
        self.register_to_config(sample_size=sample_size)
        kwargs = dict(
            patch_size=(1, patch_size, patch_size), num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim, in_channels=in_channels, out_channels=out_channels,
            text_dim=text_dim, freq_dim=freq_dim, ffn_dim=ffn_dim, num_layers=num_layers,
            cross_attn_norm=cross_attn_norm, qk_norm=qk_norm, eps=eps, rope_max_seq_len=rope_max_seq_len,
        )
        if backbone_type == "skyreels-v2-df":
            kwargs["inject_sample_info"] = inject_sample_info
        self.backbone = BACKBONES[backbone_type](**kwargs)
        self.camera_embedding = None
        if camera_ray_type is not None:
            channels = RAY_MAP_CHANNELS[camera_ray_type]
            self.camera_embedding = nn.Conv3d(channels, num_attention_heads * attention_head_dim,
                                              kernel_size=(1, patch_size, patch_size),
                                              stride=(1, patch_size, patch_size))
            nn.init.zeros_(self.camera_embedding.weight)  # the pretrained model is unchanged until training moves it
            nn.init.zeros_(self.camera_embedding.bias)
        self.register_buffer("prompt_embeds", torch.zeros(1, prompt_length, text_dim))

    # ------------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_backbone(cls, backbone: SkyReelsV2Transformer3DModel | WanTransformer3DModel, **kwargs: Any
                      ) -> "WanDFoTTransformer3DModel":
        """Wrap a (pretrained) backbone: its configuration and a copy of its weights; `kwargs` are the wrapper's own
        settings (`sample_size`, `max_frames`, `camera_ray_type`, `fps`, `prompt_length`, ...).

        `backbone` may be a `SkyReelsV2Transformer3DModel` (e.g. `from_pretrained("Skywork/SkyReels-V2-DF-1.3B-540P-
        Diffusers", subfolder="transformer")`) or a `WanTransformer3DModel`; `kwargs["backbone_type"]` may pick the
        other class for the same weights."""
        kinds = {klass: name for name, klass in BACKBONES.items()}
        if type(backbone) not in kinds:
            raise ValueError(f"`backbone` must be a SkyReelsV2Transformer3DModel or WanTransformer3DModel, got "
                             f"{type(backbone).__name__}.")
        config = backbone.config
        patch = tuple(config.patch_size)
        if patch[0] != 1 or patch[1] != patch[2]:
            raise ValueError(f"`backbone.config.patch_size` must be (1, p, p) (one noise level per latent frame), got "
                             f"{patch}.")
        per_block = config.get("num_frame_per_block", 1)
        if per_block != 1:  # SkyReels' causal block mask, which the wrapper's backbone would silently drop
            raise ValueError(f"`backbone.config.num_frame_per_block` must be 1 (attention over the whole window; "
                             f"DFoT's causality comes from per-frame noise levels, not from a block-causal mask), got "
                             f"{per_block}; load the backbone with num_frame_per_block=1.")
        image_dim, added_kv = config.get("image_dim"), config.get("added_kv_proj_dim")
        if image_dim is not None or added_kv is not None:
            raise ValueError("`backbone` must be a text-to-video transformer (image_dim=None, added_kv_proj_dim=None), "
                             f"got image_dim={image_dim}, added_kv_proj_dim={added_kv}.")
        names = ("num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "text_dim", "freq_dim",
                 "ffn_dim", "num_layers", "cross_attn_norm", "qk_norm", "eps", "rope_max_seq_len")
        settings = {name: config[name] for name in names}
        settings.update(backbone_type=kinds[type(backbone)], patch_size=patch[1],
                        inject_sample_info=bool(config.get("inject_sample_info", False)))
        settings.update(kwargs)
        model = cls(**settings)
        model.backbone.load_state_dict(backbone.state_dict())
        model.to(device=backbone.device)
        if backbone.dtype != torch.float32:  # like `from_pretrained(dtype=...)`: the fp32 modules stay float32
            _cast_keeping_fp32_modules(model, backbone.dtype)
        return model

    @classmethod
    def from_pretrained_backbone(cls, name_or_path: str, subfolder: str | None = "transformer",
                                 dtype: torch.dtype | None = None, **kwargs: Any) -> "WanDFoTTransformer3DModel":
        """Wrap a diffusers SkyReels-V2 DF or Wan 2.1 text-to-video checkpoint: a Hub repo id or folder of its
        pipeline (`subfolder="transformer"`, e.g. `"Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers"`) or a transformer
        folder (`subfolder=None`). `kwargs` are :meth:`from_backbone`'s (the wrapper's own settings)."""
        config = load_pretrained(SkyReelsV2Transformer3DModel.load_config, name_or_path, "`name_or_path`",
                                 safetensors=False, subfolder=subfolder)
        classes = {klass.__name__: klass for klass in BACKBONES.values()}
        if config.get("_class_name") not in classes:
            raise ValueError(f"`name_or_path` must hold a {' or '.join(classes)} (config `_class_name`), got "
                             f"{config.get('_class_name')!r} in {name_or_path!r} (subfolder={subfolder!r}).")
        # safetensors only: a checkpoint a user was handed is never unpickled
        backbone = load_pretrained(classes[config["_class_name"]].from_pretrained, name_or_path, "`name_or_path`",
                                   subfolder=subfolder, torch_dtype=dtype)
        return cls.from_backbone(backbone, **kwargs)

    def set_prompt_embeds(self, prompt_embeds: torch.Tensor) -> None:
        """Store one prompt embedding `(L, text_dim)` or `(1, L, text_dim)` (e.g. `encode_prompt_embeds(...)`);
        shorter embeddings are zero-padded to `prompt_length`, as Wan pads its umT5 output."""
        if not isinstance(prompt_embeds, torch.Tensor) or prompt_embeds.ndim not in (2, 3) \
                or (prompt_embeds.ndim == 3 and prompt_embeds.shape[0] != 1) \
                or prompt_embeds.shape[-1] != self.config.text_dim \
                or prompt_embeds.shape[-2] > self.config.prompt_length:
            shape = tuple(prompt_embeds.shape) if isinstance(prompt_embeds, torch.Tensor) else describe(prompt_embeds)
            raise ValueError(f"`prompt_embeds` must be a tensor (L, text_dim) or (1, L, text_dim) with text_dim = "
                             f"{self.config.text_dim} and L <= prompt_length = {self.config.prompt_length}, got "
                             f"{shape}.")
        if not bool(torch.isfinite(prompt_embeds).all()):
            raise ValueError("`prompt_embeds` must be finite, got NaN or infinite values.")
        embeds = prompt_embeds.reshape(-1, self.config.text_dim)
        self.prompt_embeds.zero_()
        self.prompt_embeds[0, : embeds.shape[0]] = embeds.to(self.prompt_embeds)

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def camera_ray_channels(self) -> int | None:
        """Channels of `camera_rays` (`C_ray` of `camera_ray_type`), None without camera input."""
        return None if self.camera_embedding is None else self.camera_embedding.in_channels

    # ------------------------------------------------------------------------------------------------ forward
    def _check_inputs(self, hidden_states, timestep, camera_rays, camera_rays_mask) -> torch.Tensor:
        """Shapes of every input (errors name the argument); returns the `(B, F)` timesteps."""
        _check_video(hidden_states, self.config.in_channels, self.config.max_frames, self.config.patch_size)
        check_finite("hidden_states", hidden_states)
        batch, _, frames, height, width = hidden_states.shape
        timestep = broadcast_timestep(timestep, batch, frames, hidden_states.device)
        if not bool((torch.isfinite(timestep.float()) & (timestep >= 0) & (timestep <= 1000)).all()):
            low, high = timestep.float().min().item(), timestep.float().max().item()
            raise ValueError("`timestep` must be model timesteps sigma * 1000 in [0, 1000] (0 = clean, 1000 = pure "
                             f"noise), got min {low} and max {high}.")
        if camera_rays is not None:
            got = tuple(camera_rays.shape) if isinstance(camera_rays, torch.Tensor) else describe(camera_rays)
            if self.camera_embedding is None:
                raise ValueError("`camera_rays` must be None for a model without camera input (camera_ray_type=None),"
                                 f" got {got}.")
            expected = (batch, self.camera_ray_channels, frames, height, width)
            if not isinstance(camera_rays, torch.Tensor) or tuple(camera_rays.shape) != expected:
                raise ValueError(f"`camera_rays` must be a tensor of shape (B, C_ray, F, H, W) = {expected} for "
                                 f"camera_ray_type={self.config.camera_ray_type!r}, got {got}.")
            check_finite("camera_rays", camera_rays)
        _check_frame_mask("camera_rays_mask", camera_rays_mask, batch, frames)
        return timestep

    def _camera_tokens(self, camera_rays, camera_rays_mask) -> torch.Tensor | None:
        """`(B, D, F, H/p, W/p)` camera tokens (zero for frames whose mask is False), or None."""
        if camera_rays is None or self.camera_embedding is None:
            return None
        weight = self.camera_embedding.weight
        tokens = self.camera_embedding(camera_rays.to(device=weight.device, dtype=weight.dtype))
        if camera_rays_mask is not None:
            tokens = tokens * camera_rays_mask.to(tokens.device, tokens.dtype)[:, None, :, None, None]
        return tokens

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        camera_rays: torch.Tensor | None = None,
        camera_rays_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        """Velocity prediction for latents `(B, C, F, H, W)` at per-frame model timesteps.

        Args:
            hidden_states: noisy latents, one noise level per latent frame.
            timestep: `sigma * 1000` (`FlowMatchDiffusionForcingScheduler.model_timesteps`), scalar, `(B,)` or
                `(B, F)`; 0 for clean frames.
            camera_rays: `(B, C_ray, F, H, W)` ray maps for a model with `camera_ray_type`, else None.
            camera_rays_mask: `(B, F)` bool, False drops that frame's camera tokens (frames without a pose, the
                unconditional branch of guidance).
            encoder_hidden_states: text embedding `(B or 1, L, text_dim)` instead of the stored `prompt_embeds`.
            attention_kwargs: passed to the backbone (`{"scale": s}` scales LoRA layers).
            return_dict: return a `Transformer2DModelOutput` (else a one-tuple).
        """
        timestep = self._check_inputs(hidden_states, timestep, camera_rays, camera_rays_mask)
        batch, _, frames, height, width = hidden_states.shape
        dtype = self.backbone.patch_embedding.weight.dtype
        text = self.prompt_embeds if encoder_hidden_states is None else encoder_hidden_states
        if not isinstance(text, torch.Tensor) or text.ndim != 3 or text.shape[0] not in (1, batch) \
                or text.shape[-1] != self.config.text_dim:
            got = tuple(text.shape) if isinstance(text, torch.Tensor) else describe(text)
            raise ValueError(f"`encoder_hidden_states` must be a tensor (1 or B={batch}, L, text_dim="
                             f"{self.config.text_dim}), got {got}.")
        text = check_finite("encoder_hidden_states", text).to(device=hidden_states.device, dtype=dtype)
        text = text.expand(batch, -1, -1)
        kwargs: dict[str, Any] = {}
        if self.config.backbone_type == "skyreels-v2-df":
            kwargs["enable_diffusion_forcing"] = True
            # One fps entry for the whole batch: diffusers repeats the fps embedding per frame with
            # `.repeat(F, 1, 1)`, which breaks for a list of B > 1 entries, (B*F, 6, D) against (B, F, 6, D).
            kwargs["fps"] = [FPS_INDEX.get(self.config.fps, 1)] if self.config.inject_sample_info else None
        else:  # Wan takes per-token timesteps: each frame's timestep on all its tokens
            tokens_per_frame = (height // self.config.patch_size) * (width // self.config.patch_size)
            timestep = timestep.repeat_interleave(tokens_per_frame, dim=1)
        camera = self._camera_tokens(camera_rays, camera_rays_mask)
        hook = None
        if camera is not None:  # added to the backbone's patch tokens, before its transformer blocks
            hook = self.backbone.patch_embedding.register_forward_hook(lambda module, args, out: out + camera.to(out))
        try:
            output = self.backbone(hidden_states=hidden_states.to(dtype), timestep=timestep,
                                   encoder_hidden_states=text, attention_kwargs=attention_kwargs, return_dict=False,
                                   **kwargs)[0]
        finally:
            if hook is not None:
                hook.remove()
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def encode_prompt_embeds(text_encoder: torch.nn.Module, tokenizer: Any, prompt: str,
                         max_sequence_length: int = 512) -> torch.Tensor:
    """The prompt embedding SkyReels-V2 / Wan pipelines compute, `(1, max_sequence_length, text_dim)` float32: the
    text encoder's last hidden state over the prompt's tokens, zero beyond them.

    Load the checkpoint's own encoder once, e.g. `UMT5EncoderModel.from_pretrained(repo, subfolder="text_encoder")`
    and `AutoTokenizer.from_pretrained(repo, subfolder="tokenizer")`, then `model.set_prompt_embeds(...)`; the
    wrapper saves it with its weights, so the encoder is never needed again.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"`prompt` must be a string, got {describe(prompt)}.")
    max_sequence_length = check_positive_int("max_sequence_length", max_sequence_length)
    if is_ftfy_available():  # the Wan / SkyReels pipelines' prompt cleaning (ftfy, HTML entities, whitespace)
        import ftfy

        prompt = ftfy.fix_text(prompt)
    prompt = " ".join(html.unescape(html.unescape(prompt)).split())
    inputs = tokenizer([prompt], padding="max_length", max_length=max_sequence_length,
                       truncation=True, add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    device = next(text_encoder.parameters()).device
    with torch.no_grad():
        hidden = text_encoder(inputs.input_ids.to(device), inputs.attention_mask.to(device)).last_hidden_state
    length = int(inputs.attention_mask.gt(0).sum())
    out = torch.zeros(1, max_sequence_length, hidden.shape[-1])
    out[0, :length] = hidden[0, :length].float().cpu()
    return out
