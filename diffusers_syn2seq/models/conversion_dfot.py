# SPDX-License-Identifier: Apache-2.0
"""Conversion of official DFoT checkpoints (Lightning files or backbone state dicts) to diffusers models.

Usage from the command line::

    syn2seq-convert-dfot --checkpoint dfot_kinetics.ckpt --config backbone.json --output_dir dfot-k600-diffusers

where `backbone.json` holds `{"backbone_config": {...}, "x_shape": [C, H, W], "max_tokens": T,
"external_cond_dim": D}`: the official Hydra settings of the run (the same layout as the fixture `.json` files).
"""

import os
import re
from collections.abc import Mapping
from typing import Any

import torch

from ..validation import check_positive_int, describe
from .casting import _cast_keeping_fp32_modules
from .conversion_uvit_dfot import uvit3d_pose_from_official
from .official_dfot import (
    OFFICIAL_PREFIXES,
    load_official_state_dict,
    official_backbone_config,
    official_x_shape,
)
from .transformer_dfot import DFoTTransformer3DModel


def _required(backbone: Mapping[str, Any], *fields: str) -> list[Any]:
    missing = [field for field in fields if field not in backbone]
    if missing:
        raise ValueError(f"`dfot_config['backbone_config']` is missing {missing} (needs {list(fields)}).")
    return [backbone[field] for field in fields]


def _dit3d_config(dfot_config: Mapping[str, Any]) -> dict[str, Any]:
    backbone = official_backbone_config(dfot_config)
    if backbone.get("variant", "full") != "full":
        raise ValueError(f"Only the `full` DiT3D variant is supported, got variant={backbone.get('variant')!r}.")
    if backbone.get("pos_emb_type", "rope_3d") != "rope_3d":
        raise ValueError(f"Only `rope_3d` positions are supported, got pos_emb_type={backbone.get('pos_emb_type')!r}.")
    channels, height, width = official_x_shape(dfot_config)
    values = _required(backbone, "hidden_size", "num_heads", "depth", "patch_size")
    hidden_size, num_heads, depth, patch_size = (
        check_positive_int(f"dfot_config['backbone_config'][{name!r}]", value)
        for name, value in zip(("hidden_size", "num_heads", "depth", "patch_size"), values)
    )
    if hidden_size % num_heads:
        raise ValueError(f"`hidden_size` ({hidden_size}) must be divisible by `num_heads` ({num_heads}).")
    condition_dim = dfot_config.get("external_cond_dim") or None
    return dict(
        in_channels=channels,
        sample_size=(height, width),
        max_frames=check_positive_int("dfot_config['max_tokens']", dfot_config["max_tokens"]),
        patch_size=patch_size,
        num_layers=depth,
        num_attention_heads=num_heads,
        attention_head_dim=hidden_size // num_heads,
        mlp_ratio=backbone.get("mlp_ratio", 4.0),
        noise_embedding_type="fourier" if backbone.get("use_fourier_noise_embedding", False) else "sinusoidal",
        condition_dim=condition_dim,
        condition_dropout=backbone.get("external_cond_dropout", 0.0) if condition_dim else 0.0,
        residual_form="dfot",
    )


# Official DiT3D key -> our key (fused qkv projections are split by `convert_dit3d_state_dict`).
_DIT3D_RENAMES = [
    (r"^patch_embedder\.proj\.", "patch_embedding."),
    (r"^noise_level_pos_embedding\.embedding\.", "time_embedding."),
    (r"^noise_level_pos_embedding\.timesteps\.", "time_proj."),
    # With dropout the condition MLP sits under `.embedding`; without, it *is* the embedding.
    (r"^external_cond_embedding\.(embedding\.)?", "condition_embedding."),
    (r"^dit_base\.blocks\.(\d+)\.attn\.proj\.", r"transformer_blocks.\1.attn.to_out.0."),
    (r"^dit_base\.blocks\.(\d+)\.mlp\.fc1\.", r"transformer_blocks.\1.ff.net.0.proj."),
    (r"^dit_base\.blocks\.(\d+)\.mlp\.fc2\.", r"transformer_blocks.\1.ff.net.2."),
    (r"^dit_base\.blocks\.(\d+)\.norm(\d)\.modulation\.1\.", r"transformer_blocks.\1.norm\2.linear."),
    (r"^dit_base\.final_layer\.norm_final\.modulation\.1\.", "norm_out.linear."),
    (r"^dit_base\.final_layer\.linear\.", "proj_out."),
]


def convert_dit3d_state_dict(
    state_dict: Mapping[str, torch.Tensor], origins: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Rename official DiT3D backbone keys to `DFoTTransformer3DModel` keys, splitting fused qkv projections.

    ``origins``, when given, is filled with ``our key -> official key`` (for error messages). Raises a `ValueError`
    listing every key that is not a DiT3D backbone weight.
    """
    converted, unknown = {}, []
    origins = {} if origins is None else origins
    for key, value in state_dict.items():
        qkv = re.match(r"^dit_base\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", key)
        if qkv:
            block, kind = qkv.groups()
            for name, chunk in zip(("to_q", "to_k", "to_v"), value.chunk(3, dim=0)):
                converted[f"transformer_blocks.{block}.attn.{name}.{kind}"] = chunk.clone()
                origins[f"transformer_blocks.{block}.attn.{name}.{kind}"] = key
            continue
        new = next((re.sub(p, r, key) for p, r in _DIT3D_RENAMES if re.match(p, key)), None)
        if new is None:
            unknown.append(key)
            continue
        converted[new], origins[new] = value, key
    if unknown:
        raise ValueError(
            f"`checkpoint` has {len(unknown)} key(s) that are not DiT3D backbone weights, e.g. {sorted(unknown)[:8]}; "
            "expected bare backbone keys (patch_embedder., noise_level_pos_embedding., external_cond_embedding., "
            f"dit_base.) or the same under one of the prefixes {OFFICIAL_PREFIXES}."
        )
    return converted


def _load_dit3d(model: DFoTTransformer3DModel, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load converted official weights, or raise a `ValueError` listing missing, unexpected and mis-shaped keys."""
    origins: dict[str, str] = {}
    converted = convert_dit3d_state_dict(state_dict, origins)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(f"{k} (from {origins[k]!r})" for k in set(converted) - set(expected))
    mismatched = sorted(
        f"{k} (from {origins[k]!r}): checkpoint {tuple(converted[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(converted) & set(expected)
        if converted[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        raise ValueError(
            f"Converted DiT3D weights of {source} do not match the model configured from `dfot_config`: missing "
            f"{missing}, unexpected {unexpected}, shape mismatches {mismatched}. Check `dfot_config` against the "
            "checkpoint."
        )
    model.load_state_dict(converted, strict=True)


def convert_dfot_checkpoint(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    dfot_config: Mapping[str, Any],
    torch_dtype: torch.dtype | None = None,
):
    """Convert an official DFoT checkpoint to a diffusers model, in eval mode.

    Args:
        checkpoint: path (`.ckpt`/`.pt`/`.pth`/`.bin` read with `torch.load(weights_only=True)`, or `.safetensors`)
            or a state dict, in the official key layout (`diffusion_model.model.*`, `diffusion_model._orig_mod.model.*`
            or bare backbone keys), Lightning files with optimizer state included.
        dfot_config: `{"backbone_config": {...}, "x_shape": [C, H, W], "max_tokens": T, "external_cond_dim": D}`,
            the official backbone settings (the fixture `.json` layout); or the settings of an official VAE
            (`{"ddconfig": ..., "embed_dim": ...}` or `{"model_cfg": ...}`, see `convert_dfot_vae`).
        torch_dtype: optional dtype to cast the converted model to.

    Returns:
        `DFoTTransformer3DModel` (backbone `dit3d`, configured with `residual_form="dfot"`), `DFoTUViT3DModel`
        (backbone `u_vit3d_pose`), or for a VAE an `AutoencoderKL` (ImageVAE) / `AutoencoderKLDFoTVideo` (VideoVAE).
    """
    from .conversion_vae_dfot import convert_dfot_vae, is_dfot_vae_config  # it reuses this module's file reading

    if is_dfot_vae_config(dfot_config):
        return convert_dfot_vae(checkpoint, dfot_config, torch_dtype=torch_dtype)
    name = official_backbone_config(dfot_config).get("name")
    if name not in ("dit3d", "u_vit3d_pose"):
        raise ValueError(f"`dfot_config['backbone_config']['name']` must be 'dit3d' or 'u_vit3d_pose', got {name!r}.")
    if torch_dtype is not None and not (isinstance(torch_dtype, torch.dtype) and torch_dtype.is_floating_point):
        raise ValueError(f"`torch_dtype` must be None or a floating-point torch.dtype, got {describe(torch_dtype)}.")
    state_dict = load_official_state_dict(checkpoint)
    source = f"the checkpoint {str(checkpoint)!r}" if isinstance(checkpoint, (str, os.PathLike)) else "the state dict"

    if name == "dit3d":
        config = _dit3d_config(dfot_config)
        try:  # the model checks the remaining options (mlp_ratio, external_cond_dim, ...)
            model = DFoTTransformer3DModel(**config)
        except ValueError as error:
            raise type(error)(f"`dfot_config` does not describe a valid DFoTTransformer3DModel: {error}") from error
        _load_dit3d(model, state_dict, source)
    else:
        try:
            model = uvit3d_pose_from_official(state_dict, dfot_config)
        except ValueError as error:  # name the file: the U-ViT converter only sees tensors
            raise type(error)(f"Cannot convert {source}: {error}") from error

    if torch_dtype is not None:  # like from_pretrained(dtype=...): norms and embeddings stay float32, no warning
        model = _cast_keeping_fp32_modules(model, torch_dtype)
    return model.eval()
