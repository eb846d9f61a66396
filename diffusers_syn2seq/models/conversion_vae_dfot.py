# SPDX-License-Identifier: Apache-2.0
"""Conversion of DFoT's official VAE checkpoints: the ImageVAE to diffusers' `AutoencoderKL`, the VideoVAE to
`AutoencoderKLDFoTVideo`, each carrying the per-dataset latent statistics the official sampler normalises with.

The ImageVAE (`algorithms/vae/image_vae`, used by the Minecraft model) is the Stable Diffusion KL autoencoder without
attention outside the mid blocks, so it *is* an `AutoencoderKL`: its keys are mapped with diffusers' own LDM mapping,
and parity with the official class is 2e-6 (`tests/fixtures/dfot_vae`). The VideoVAE (`algorithms/vae/video_vae`,
used by the Kinetics-600 model, 4x temporal and 8x spatial compression) has no diffusers counterpart.

Settings (`vae_config`, a dict or a JSON/YAML file) come in the official layouts: ``{"ddconfig": {...}, "embed_dim":
4}`` for an ImageVAE (`configurations/algorithm/image_vae.yaml`), ``{"model_cfg": {...}}`` for a VideoVAE (the
`model_cfg` the official trainer stores in its checkpoints), either with optional ``"latents_mean"`` /
``"latents_std"`` (per channel). `DFOT_VAE_PRESETS` holds both for the released checkpoints.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from diffusers import AutoencoderKL

from ..validation import describe
from .autoencoder_kl_dfot_video import AutoencoderKLDFoTVideo
from .official_dfot import checkpoint_state_dict

# Per-channel latent statistics of the official dataset configs (`configurations/dataset/*.yaml`, `data_mean` and
# `data_std`): the official sampler feeds the backbone `(z - mean) / std` and decodes `x * std + mean`.
KINETICS_600_LATENTS_MEAN = [-0.284, 0.016, -0.728, -0.138, 0.941, -2.504, 0.147, -0.062, 0.833, 0.151, -0.627,
                             0.269, 0.268, -0.732, -1.598, 0.199]
KINETICS_600_LATENTS_STD = [5.591, 5.257, 7.033, 6.401, 6.091, 11.233, 5.608, 7.5, 5.277, 5.46, 5.179, 6.8, 5.474,
                            5.111, 7.078, 5.024]
MINECRAFT_LATENTS_MEAN = [0.557, 0.222, 0.416, -0.847]
MINECRAFT_LATENTS_STD = [4.268, 4.953, 5.722, 7.336]

# Settings of the released VAE checkpoints. `ImageVAE_MCRAFT.ckpt` stores no config; the official loader falls back
# to `image_vae.yaml` with resolution 256, as here. `VideoVAE_K600.ckpt` stores its `model_cfg` as an OmegaConf
# object (not readable without unpickling code); this is `video_vae.yaml` at the Kinetics-600 resolution with the 16
# latent channels of `dataset/kinetics_600.yaml` (a wrong guess fails the shape check when the weights are loaded).
DFOT_VAE_PRESETS: dict[str, dict[str, Any]] = {
    "minecraft": {
        "ddconfig": {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                     "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0},
        "embed_dim": 4,
        "latents_mean": MINECRAFT_LATENTS_MEAN,
        "latents_std": MINECRAFT_LATENTS_STD,
    },
    "kinetics_600": {
        "model_cfg": {"hidden_size": 128, "temporal_length": 17, "z_channels": 16, "embed_dim": 16,
                      "hidden_size_mult": [1, 2, 4, 4], "attn_resolutions": [], "dropout": 0.0, "resolution": 128,
                      "num_res_blocks": 2, "is_causal": True, "first_padding_mode": "same"},
        "latents_mean": KINETICS_600_LATENTS_MEAN,
        "latents_std": KINETICS_600_LATENTS_STD,
    },
}

# Official VideoVAE defaults (`algorithms/vae/video_vae/model.py::VideoVAE.__init__`) for fields `model_cfg` omits.
_VIDEO_VAE_DEFAULTS: dict[str, Any] = {
    "hidden_size": 128, "z_channels": 4, "hidden_size_mult": [1, 2, 4, 4], "attn_resolutions": [], "resolution": 256,
    "temporal_length": 17, "double_z": True, "embed_dim": 4, "num_res_blocks": 2, "q_conv": "PaddedConv3D",
    "encoder_conv_in": "Conv2d", "encoder_conv_out": "PaddedConv3D", "encoder_attention": "AttnBlock3D",
    "encoder_resnet_blocks": ["ResnetBlock2D", "ResnetBlock2D", "ResnetBlock3D", "ResnetBlock3D"],
    "encoder_spatial_downsample": ["Downsample", "Spatial2xTime2x3DDownsample", "Spatial2xTime2x3DDownsample", ""],
    "encoder_temporal_downsample": ["", "", "", ""], "encoder_mid_resnet": "ResnetBlock3D",
    "decoder_conv_in": "PaddedConv3D", "decoder_conv_out": "PaddedConv3D", "decoder_attention": "AttnBlock3D",
    "decoder_resnet_blocks": ["ResnetBlock3D"] * 4,
    "decoder_spatial_upsample": ["", "SpatialUpsample2x", "Spatial2xTime2x3DUpsample", "Spatial2xTime2x3DUpsample"],
    "decoder_temporal_upsample": ["", "", "", ""], "decoder_mid_resnet": "ResnetBlock3D", "use_quant_layer": True,
    "is_causal": True,
}
# Encoder downsampling -> the decoder upsampling that mirrors it, and whether it halves time.
_DOWN_TO_UP = {"Downsample": ("SpatialUpsample2x", False),
               "Spatial2xTime2x3DDownsample": ("Spatial2xTime2x3DUpsample", True)}


def is_dfot_vae_config(config: Any) -> bool:
    """True for official VAE settings (`ddconfig` of an ImageVAE or `model_cfg` of a VideoVAE)."""
    return isinstance(config, Mapping) and ("ddconfig" in config or "model_cfg" in config)


def _statistics(vae_config: Mapping[str, Any], channels: int) -> dict[str, list[float] | None]:
    """``latents_mean`` / ``latents_std`` of `vae_config`, checked: both or neither, `channels` finite values each,
    std positive. The official configs nest each value as ``[[m]]`` per channel; that layout is accepted too."""
    stats = {}
    for name in ("latents_mean", "latents_std"):
        value = vae_config.get(name)
        if value is None:
            stats[name] = None
            continue
        flat = torch.as_tensor(value, dtype=torch.float64).flatten() if isinstance(value, Sequence) else None
        if flat is None or flat.numel() != channels or not torch.isfinite(flat).all():
            raise ValueError(f"`vae_config['{name}']` must hold {channels} finite numbers (one per latent channel), "
                             f"got {describe(value)}.")
        if name == "latents_std" and not (flat > 0).all():
            raise ValueError(f"`vae_config['latents_std']` must be positive, got {flat.tolist()}.")
        stats[name] = [float(v) for v in flat]
    if (stats["latents_mean"] is None) != (stats["latents_std"] is None):
        raise ValueError("`vae_config` must give both `latents_mean` and `latents_std` or neither, got only "
                         f"{'latents_mean' if stats['latents_mean'] is not None else 'latents_std'}.")
    return stats


def _expect(field: str, value: Any, expected: Any) -> None:
    if value != expected:
        raise ValueError(f"`vae_config[{field}]` must be {expected!r} (the only layout with a diffusers equivalent), "
                         f"got {value!r}.")


def image_vae_config(vae_config: Mapping[str, Any]) -> dict[str, Any]:
    """`AutoencoderKL` arguments for official ImageVAE settings (``ddconfig``, ``embed_dim``, statistics)."""
    dd = vae_config["ddconfig"]
    if not isinstance(dd, Mapping):
        raise ValueError(f"`vae_config['ddconfig']` must be a mapping, got {describe(dd)}.")
    missing = [k for k in ("ch", "ch_mult", "num_res_blocks", "z_channels") if k not in dd]
    if missing:
        raise ValueError(f"`vae_config['ddconfig']` is missing {missing}.")
    # AutoencoderKL has attention only in its mid blocks and a single latent width before and after quant_conv.
    _expect("'ddconfig']['attn_resolutions'", list(dd.get("attn_resolutions", [])), [])
    _expect("'ddconfig']['double_z'", dd.get("double_z", True), True)
    _expect("'ddconfig']['resamp_with_conv'", dd.get("resamp_with_conv", True), True)
    _expect("'ddconfig']['tanh_out'", dd.get("tanh_out", False), False)
    _expect("'ddconfig']['give_pre_end'", dd.get("give_pre_end", False), False)
    _expect("'ddconfig']['attn_type'", "linear" if dd.get("use_linear_attn") else dd.get("attn_type", "vanilla"),
            "vanilla")
    embed_dim = vae_config.get("embed_dim", dd["z_channels"])
    _expect("'embed_dim'", embed_dim, dd["z_channels"])
    levels = len(dd["ch_mult"])
    return dict(
        in_channels=dd.get("in_channels", 3), out_channels=dd.get("out_ch", 3),
        down_block_types=["DownEncoderBlock2D"] * levels, up_block_types=["UpDecoderBlock2D"] * levels,
        block_out_channels=[dd["ch"] * m for m in dd["ch_mult"]], layers_per_block=dd["num_res_blocks"],
        latent_channels=embed_dim, norm_num_groups=32, sample_size=dd.get("resolution", 256),
        scaling_factor=1.0, **_statistics(vae_config, embed_dim),
    )


def video_vae_config(vae_config: Mapping[str, Any]) -> dict[str, Any]:
    """`AutoencoderKLDFoTVideo` arguments for official VideoVAE settings (``model_cfg``, statistics)."""
    given = vae_config["model_cfg"]
    if not isinstance(given, Mapping):
        raise ValueError(f"`vae_config['model_cfg']` must be a mapping, got {describe(given)}.")
    unknown = sorted(set(given) - set(_VIDEO_VAE_DEFAULTS) - {"dropout", "first_padding_mode"})
    if unknown:
        raise ValueError(f"`vae_config['model_cfg']` has unknown fields {unknown}; expected fields of the official "
                         f"VideoVAE: {sorted(_VIDEO_VAE_DEFAULTS)}.")
    cfg = {**_VIDEO_VAE_DEFAULTS, **given}
    cfg = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in cfg.items()}
    levels = len(cfg["hidden_size_mult"])
    for field, value in (("is_causal", True), ("double_z", True), ("use_quant_layer", True),
                         ("attn_resolutions", []), ("q_conv", "PaddedConv3D"), ("encoder_conv_in", "Conv2d"),
                         ("encoder_conv_out", "PaddedConv3D"), ("encoder_attention", "AttnBlock3D"),
                         ("encoder_mid_resnet", "ResnetBlock3D"), ("decoder_conv_in", "PaddedConv3D"),
                         ("decoder_conv_out", "PaddedConv3D"), ("decoder_attention", "AttnBlock3D"),
                         ("decoder_mid_resnet", "ResnetBlock3D"), ("encoder_temporal_downsample", [""] * levels),
                         ("decoder_temporal_upsample", [""] * levels), ("decoder_resnet_blocks",
                                                                         ["ResnetBlock3D"] * levels),
                         ("embed_dim", cfg["z_channels"])):
        _expect(f"'model_cfg']['{field}'", cfg[field], value)
    resnets, downs = cfg["encoder_resnet_blocks"], cfg["encoder_spatial_downsample"]
    if len(resnets) != levels or any(r not in ("ResnetBlock2D", "ResnetBlock3D") for r in resnets):
        raise ValueError(f"`vae_config['model_cfg']['encoder_resnet_blocks']` must hold {levels} of 'ResnetBlock2D' / "
                         f"'ResnetBlock3D', got {resnets!r}.")
    if len(downs) != levels or downs[-1] != "" or any(d not in _DOWN_TO_UP for d in downs[:-1]):
        raise ValueError(f"`vae_config['model_cfg']['encoder_spatial_downsample']` must hold {levels - 1} of "
                         f"{sorted(_DOWN_TO_UP)} followed by '', got {downs!r}.")
    _expect("'model_cfg']['decoder_spatial_upsample'", cfg["decoder_spatial_upsample"],
            [""] + [_DOWN_TO_UP[d][0] for d in downs[:-1]])
    return dict(
        latent_channels=cfg["z_channels"], block_out_channels=[cfg["hidden_size"] * m for m in cfg["hidden_size_mult"]],
        layers_per_block=cfg["num_res_blocks"], temporal_resnets=[r == "ResnetBlock3D" for r in resnets],
        temporal_downsample=[_DOWN_TO_UP[d][1] for d in downs[:-1]], sample_size=cfg["resolution"],
        sample_frames=cfg["temporal_length"], **_statistics(vae_config, cfg["z_channels"]),
    )


def load_official_vae_state_dict(checkpoint: str | os.PathLike | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """VAE weights from an official checkpoint (Lightning file, state dict, safetensors): the ``state_dict`` entry if
    there is one, ``vae.`` prefixes (VideoVAE trainer) removed, loss and metric networks dropped."""
    state_dict = checkpoint_state_dict(checkpoint)
    if any(isinstance(k, str) and k.startswith("vae.") for k in state_dict):
        state_dict = {k[len("vae."):]: v for k, v in state_dict.items() if isinstance(k, str) and k.startswith("vae.")}
    weights = {k: v for k, v in state_dict.items()
               if isinstance(k, str) and k.split(".")[0] in ("encoder", "decoder", "quant_conv", "post_quant_conv")}
    bad = sorted(k for k, v in weights.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise ValueError(f"`checkpoint` key(s) {bad[:4]} must hold tensors.")
    if not weights:
        raise ValueError(
            f"`checkpoint` holds no VAE weights: expected keys starting with encoder., decoder., quant_conv., "
            f"post_quant_conv. (or the same under vae.), got {len(state_dict)} keys such as {sorted(state_dict)[:4]}.")
    return weights


def _load_checked(model: torch.nn.Module, converted: Mapping[str, torch.Tensor], n_official: int, source: str) -> None:
    """Load `converted` into `model`, or raise a `ValueError` listing missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    mismatched = sorted(f"{k}: checkpoint {tuple(converted[k].shape)} vs model {tuple(expected[k].shape)}"
                        for k in set(converted) & set(expected) if converted[k].shape != expected[k].shape)
    if missing or unexpected or mismatched or n_official != len(converted):
        raise ValueError(
            f"The VAE weights of {source} do not match the model configured from `vae_config`: missing "
            f"{missing[:8]} ({len(missing)}), unexpected {unexpected[:8]} ({len(unexpected)}), shape mismatches "
            f"{mismatched[:8]}, {n_official} official tensors for {len(converted)} converted. Check `vae_config` "
            "against the checkpoint, or whether the file is complete.")
    model.load_state_dict(converted, strict=True)


def convert_image_vae_state_dict(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
                                 ) -> dict[str, torch.Tensor]:
    """Official ImageVAE keys -> `AutoencoderKL` keys, with diffusers' own Stable Diffusion (LDM) VAE mapping."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    converted = convert_ldm_vae_checkpoint(dict(state_dict), dict(config))
    return {k: v for k, v in converted.items() if v is not None}  # the mapping leaves None for absent keys


# Official VideoVAE key -> ours; `{up}` is replaced by the decoder level's position in running order.
_VIDEO_RENAMES = [
    (r"^(encoder|decoder)\.mid\.block_(\d)\.", lambda m: f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}."),
    (r"^(encoder|decoder)\.mid\.attn_1\.norm\.", r"\1.mid_block.attention.group_norm."),
    (r"^(encoder|decoder)\.mid\.attn_1\.(q|k|v)\.conv\.", r"\1.mid_block.attention.to_\2."),
    (r"^(encoder|decoder)\.mid\.attn_1\.proj_out\.conv\.", r"\1.mid_block.attention.to_out."),
    (r"^encoder\.down\.(\d+)\.block\.", r"encoder.down_blocks.\1.resnets."),
    (r"^encoder\.down\.(\d+)\.downsample\.", r"encoder.down_blocks.\1.downsampler."),
    (r"^decoder\.up\.(\d+)\.block\.", r"decoder.up_blocks.{up:\1}.resnets."),
    (r"^decoder\.up\.(\d+)\.upsample\.", r"decoder.up_blocks.{up:\1}.upsampler."),
    (r"^(encoder\.(conv_in|norm_out|conv_out)|decoder\.(conv_in|norm_out|conv_out)|quant_conv|post_quant_conv)\.",
     r"\1."),
]


def convert_video_vae_state_dict(state_dict: Mapping[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """Official VideoVAE keys -> `AutoencoderKLDFoTVideo` keys (`levels` resolution levels). Attention projections
    are 1x1x1 convolutions there and linear layers here; keys that match no rule raise a `ValueError`."""
    converted, unknown = {}, []
    for key, value in state_dict.items():
        for pattern, replacement in _VIDEO_RENAMES:
            if re.match(pattern, key):
                new = re.sub(pattern, replacement, key)
                new = re.sub(r"\{up:(\d+)\}", lambda m: str(levels - 1 - int(m[1])), new)
                break
        else:
            unknown.append(key)
            continue
        new = new.replace(".nin_shortcut.", ".conv_shortcut.")
        if ".attention.to_" in new and value.ndim == 5:
            value = value[:, :, 0, 0, 0]
        converted[new] = value
    if unknown:
        raise ValueError(f"`checkpoint` has {len(unknown)} key(s) that are not VideoVAE weights, e.g. "
                         f"{sorted(unknown)[:8]}; `vae_config` describes a VideoVAE (`model_cfg`): is this an "
                         "ImageVAE checkpoint (settings `ddconfig` + `embed_dim`)?")
    return converted


def convert_dfot_vae(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    vae_config: Mapping[str, Any],
    torch_dtype: torch.dtype | None = None,
) -> AutoencoderKL | AutoencoderKLDFoTVideo:
    """Convert an official DFoT VAE checkpoint to a diffusers model in eval mode: an `AutoencoderKL` for an
    ImageVAE (``vae_config`` with ``ddconfig``), an `AutoencoderKLDFoTVideo` for a VideoVAE (``model_cfg``); the
    latent statistics of ``vae_config`` go to the model's config (`latents_mean`, `latents_std`).

    Files are read with safetensors or `torch.load(weights_only=True)`; wrong or truncated files raise a
    `ValueError` naming them.
    """
    if not is_dfot_vae_config(vae_config):
        raise ValueError("`vae_config` must hold `ddconfig` (+ `embed_dim`) for an ImageVAE or `model_cfg` for a "
                         f"VideoVAE, got {describe(vae_config)}.")
    if torch_dtype is not None and not (isinstance(torch_dtype, torch.dtype) and torch_dtype.is_floating_point):
        raise ValueError(f"`torch_dtype` must be None or a floating-point torch.dtype, got {describe(torch_dtype)}.")
    source = f"the checkpoint {str(checkpoint)!r}" if isinstance(checkpoint, (str, os.PathLike)) else "the state dict"
    if "ddconfig" in vae_config:
        config = image_vae_config(vae_config)
        model = AutoencoderKL(**config)
        state_dict = load_official_vae_state_dict(checkpoint)
        converted = convert_image_vae_state_dict(state_dict, config)
    else:
        config = video_vae_config(vae_config)
        model = AutoencoderKLDFoTVideo(**config)
        state_dict = load_official_vae_state_dict(checkpoint)
        converted = convert_video_vae_state_dict(state_dict, len(config["block_out_channels"]))
    _load_checked(model, converted, len(state_dict), source)
    if torch_dtype is not None:
        model = model.to(torch_dtype)
    return model.eval()
