# SPDX-License-Identifier: Apache-2.0
"""Convert official DFoT U-ViT3D(-Pose) weights (RealEstate10K) to :class:`DFoTUViT3DModel`.

The official backbone keeps the fused attention+MLP input projection of ViT-22B in one ``Linear``; we split it
into ``attn.to_q/to_k/to_v`` and ``ff.proj_in`` (rows ``[q | k | v | mlp]``, each ``q/k/v`` block ordered head-major),
which computes exactly the same numbers while making every projection a separate LoRA target.

The official ``external_cond_dropout`` becomes ``condition_dropout`` of a non-pose ``u_vit3d`` with a vector condition.
For ``u_vit3d_pose`` it is the pose dropout, which the model no longer does (the training objective does, through
``camera_rays_mask``), so it is not part of the converted config: pass it to ``train.py --camera_dropout`` to continue
training with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from ..camera import RAY_MAP_CHANNELS
from ..validation import check_positive_int
from .official_dfot import OFFICIAL_PREFIXES, official_backbone_config, official_x_shape
from .transformer_uvit_dfot import DFoTUViT3DModel

__all__ = ["uvit3d_pose_from_official", "uvit3d_config_from_official", "convert_uvit3d_state_dict"]

_RESBLOCK_RENAMES = {
    "in_layers.0.": "norm1.",
    "in_layers.2.": "conv1.",
    "emb_layer.": "emb_proj.",
    "out_norm.": "norm2.",
    "out_rest.1.": "conv2.",
}
_TRANSFORMER_RENAMES = {
    "norm.emb_layer.": "norm.linear.",
    "norm.norm.": "norm.norm.",
    "q_norm.": "attn.norm_q.",
    "k_norm.": "attn.norm_k.",
    "attn_out.": "attn.to_out.",
    "mlp_out.2.": "ff.proj_out.",
}
_TOP_LEVEL_RENAMES = {
    "embed_input.proj.": "patch_embed.",
    "project_output.proj.": "proj_out.",
    "external_cond_embedding.patch_embedder.proj.": "camera_embed.",
    "noise_level_pos_embedding.timesteps.freqs": "noise_embedding.freqs",
    "noise_level_pos_embedding.timesteps.phases": "noise_embedding.phases",
    "noise_level_pos_embedding.embedding.": "noise_embedding.mlp.",
    # Non-pose U-ViT3D with a per-frame vector condition (with and without condition dropout).
    "external_cond_embedding.embedding.": "condition_embed.",
    "external_cond_embedding.linear_": "condition_embed.linear_",
}


def _get(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    return config[key] if key in config else default


def uvit3d_config_from_official(
    dfot_config: Mapping[str, Any], camera_ray_type: str | None = None
) -> dict[str, Any]:
    """``DFoTUViT3DModel`` init kwargs from a DFoT config dict (``backbone_config``, ``x_shape``, ``max_tokens``,
    ``external_cond_dim``), as stored beside the reference fixtures. ``external_cond_dropout`` is kept only as the
    vector-condition dropout of non-pose models (module docstring)."""
    backbone = official_backbone_config(dfot_config)
    channels, height, width = official_x_shape(dfot_config)
    max_tokens = check_positive_int("dfot_config['max_tokens']", dfot_config["max_tokens"])
    fields = ("patch_size", "channels", "block_types", "block_dropouts", "num_updown_blocks", "num_mid_blocks",
              "num_heads", "emb_channels")
    missing = [field for field in fields if field not in backbone]
    if missing:
        raise ValueError(f"`dfot_config['backbone_config']` is missing {missing} (a U-ViT3D needs {list(fields)}).")
    name = _get(backbone, "name", "u_vit3d_pose")
    if name not in ("u_vit3d_pose", "u_vit3d"):
        raise ValueError(
            f"`dfot_config['backbone_config']['name']` must be 'u_vit3d_pose' or 'u_vit3d', got {name!r}."
        )
    pos_emb = _get(backbone, "pos_emb_type", "rope")
    if pos_emb != "rope":
        raise ValueError(f"Only `pos_emb_type='rope'` (RoPE3D) U-ViTs are supported, got {pos_emb!r}.")
    if _get(backbone, "interpolate_factor", 1.0) != 1:
        raise ValueError("RoPE `interpolate_factor` != 1 (a fork extension) is not supported.")

    condition_dim = None
    if name == "u_vit3d_pose":
        conditioning = _get(backbone, "conditioning", {}) or {}
        ray_dim = _get(conditioning, "dim", None) or dfot_config.get("external_cond_dim")
        if camera_ray_type is None:
            if ray_dim == 180:
                camera_ray_type = "ray_encoding"
            else:
                raise ValueError(
                    f"Cannot tell the camera ray type from a {ray_dim}-channel pose condition (Plücker and raw "
                    "rays both have 6); pass `camera_ray_type`."
                )
        if RAY_MAP_CHANNELS.get(camera_ray_type) != ray_dim:
            raise ValueError(f"`camera_ray_type={camera_ray_type!r}` does not have {ray_dim} channels.")
    else:
        camera_ray_type = None
        condition_dim = dfot_config.get("external_cond_dim") or None

    # Values are passed as they are: `DFoTUViT3DModel` checks every one (types and ranges, no silent truncation).
    return dict(
        in_channels=channels,
        out_channels=channels,
        sample_size=[height, width],
        max_frames=max_tokens,
        patch_size=backbone["patch_size"],
        block_out_channels=backbone["channels"],
        block_types=backbone["block_types"],
        block_dropouts=backbone["block_dropouts"],
        layers_per_block=backbone["num_updown_blocks"],
        num_mid_blocks=backbone["num_mid_blocks"],
        num_attention_heads=backbone["num_heads"],
        emb_channels=backbone["emb_channels"],
        noise_embedding_type="fourier" if _get(backbone, "use_fourier_noise_embedding", False) else "sinusoidal",
        camera_ray_type=camera_ray_type,
        condition_dim=condition_dim,
        condition_dropout=(_get(backbone, "external_cond_dropout", 0.0) or 0.0) if condition_dim else 0.0,
    )


def _rename_block(rest: str, is_transformer: bool) -> str | None:
    for old, new in (_TRANSFORMER_RENAMES if is_transformer else _RESBLOCK_RENAMES).items():
        if rest.startswith(old):
            return new + rest[len(old) :]
    return None


def convert_uvit3d_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """Rename (and split) official U-ViT3D keys to ours. Keys it does not recognise are kept unchanged, so that
    strict loading reports them as unexpected."""
    channels = list(config["block_out_channels"])
    is_transformer = [kind == "TransformerBlock" for kind in config["block_types"]]
    layers = list(config["layers_per_block"])
    num_levels = len(channels)
    converted: dict[str, torch.Tensor] = {}

    def put_block(prefix: str, rest: str, level: int, tensor: torch.Tensor, original: str) -> None:
        if is_transformer[level] and rest.startswith("fused_attn_mlp_proj."):
            dim = channels[level]
            param = rest.split(".", 1)[1]
            if tensor.ndim == 0 or tensor.shape[0] <= 3 * dim:
                raise ValueError(
                    f"`{original}` must have more than 3 * {dim} rows (q, k, v of width {dim}, then the MLP input), "
                    f"got shape {tuple(tensor.shape)}."
                )
            q, k, v, mlp = torch.split(tensor, [dim, dim, dim, tensor.shape[0] - 3 * dim], dim=0)
            for name, part in (("attn.to_q", q), ("attn.to_k", k), ("attn.to_v", v), ("ff.proj_in", mlp)):
                converted[f"{prefix}{name}.{param}"] = part.clone()
            return
        new = _rename_block(rest, is_transformer[level])
        converted[prefix + new if new is not None else original] = tensor

    for key, tensor in state_dict.items():
        match = re.fullmatch(r"(down_blocks|up_blocks|mid_blocks)\.(\d+)\.(?:(\d+)\.)?(.+)", key)
        if match:
            group, index, sub, rest = match.group(1), int(match.group(2)), match.group(3), match.group(4)
            if group == "mid_blocks":
                put_block(
                    f"mid_blocks.{index}.", f"{sub}.{rest}" if sub is not None else rest, num_levels - 1, tensor, key
                )
                continue
            if sub is None:
                converted[key] = tensor
                continue
            sub = int(sub)
            if group == "down_blocks" and index < num_levels - 1:
                if sub == layers[index]:  # the last module of a down level is its Downsample
                    converted[f"down_blocks.{index}.downsample.{rest}"] = tensor
                else:
                    put_block(f"down_blocks.{index}.blocks.{sub}.", rest, index, tensor, key)
                continue
            if group == "up_blocks" and index < num_levels - 1:
                level = num_levels - 2 - index
                if sub == 0:  # the first module of an up level is its Upsample
                    converted[f"up_blocks.{index}.upsample.{rest}"] = tensor
                else:
                    put_block(f"up_blocks.{index}.blocks.{sub - 1}.", rest, level, tensor, key)
                continue
            converted[key] = tensor
            continue
        for old, new in _TOP_LEVEL_RENAMES.items():
            if key.startswith(old):
                converted[new + key[len(old) :]] = tensor
                break
        else:
            converted[key] = tensor
    return converted


def _check_head_count(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> None:
    """The head count only shows in the width of the QK norms: check it, a wrong value would load silently."""
    channels = config["block_out_channels"]
    for key, tensor in state_dict.items():
        match = re.match(r"(down_blocks|up_blocks|mid_blocks)\.(\d+)\..*q_norm\.weight$", key)
        if not match:
            continue
        index = int(match.group(2))
        level = {"mid_blocks": len(channels) - 1, "down_blocks": index}.get(match.group(1), len(channels) - 2 - index)
        if not 0 <= level < len(channels):
            continue  # reported as an unexpected key
        expected = channels[level] // config["num_attention_heads"]
        if tensor.shape[0] != expected:
            raise ValueError(
                f"`{key}` has width {tensor.shape[0]} but num_heads={config['num_attention_heads']} gives "
                f"head dim {expected}; fix backbone_config['num_heads']."
            )


def uvit3d_pose_from_official(
    state_dict: Mapping[str, torch.Tensor],
    dfot_config: Mapping[str, Any],
    camera_ray_type: str | None = None,
    torch_dtype: torch.dtype | None = None,
) -> DFoTUViT3DModel:
    """Build a :class:`DFoTUViT3DModel` from an official DFoT ``UViT3DPose`` (or ``UViT3D``) state dict.

    Args:
        state_dict: backbone weights with official key names, i.e. a Lightning ``state_dict`` with the
            ``diffusion_model.model.`` (or ``diffusion_model._orig_mod.model.``) prefix removed; prefixed keys are
            accepted too.
        dfot_config: ``{"backbone_config": {...}, "x_shape": [C, H, W], "max_tokens": F, "external_cond_dim": ...}``.
        camera_ray_type: ray map kind the checkpoint was trained on; inferred for 180-channel maps.
        torch_dtype: optional dtype of the returned model (norms and the noise embedding stay float32).

    Returns:
        The model in eval mode.

    Raises:
        ValueError: unsupported config, head count inconsistent with the weights, or any missing / unexpected /
            mis-shaped key (all listed).
    """
    stripped = {}
    for key, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"`state_dict` key {key!r} must hold a tensor, got {type(tensor).__name__}.")
        prefix = next((p for p in OFFICIAL_PREFIXES if str(key).startswith(p)), "")
        stripped[str(key)[len(prefix) :]] = tensor
    try:  # the model checks every option; say which official settings they came from
        model = DFoTUViT3DModel(**uvit3d_config_from_official(dfot_config, camera_ray_type))
    except ValueError as error:
        raise type(error)(
            f"`dfot_config` does not describe a valid DFoTUViT3DModel (official channels -> block_out_channels, "
            f"num_updown_blocks -> layers_per_block, num_heads -> num_attention_heads): {error}"
        ) from error
    config = dict(model.config)
    _check_head_count(stripped, config)
    converted = convert_uvit3d_state_dict(stripped, config)
    expected_state = model.state_dict()
    missing = sorted(set(expected_state) - set(converted))
    unexpected = sorted(set(converted) - set(expected_state))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(converted[k].shape)} vs model {tuple(expected_state[k].shape)}"
        for k in set(converted) & set(expected_state)
        if converted[k].shape != expected_state[k].shape
    )
    if missing or unexpected or mismatched:
        sizes = ", ".join(f"{k}={config[k]}" for k in ("block_out_channels", "layers_per_block", "num_mid_blocks"))
        raise ValueError(
            f"Official U-ViT3D state dict does not match DFoTUViT3DModel ({sizes}); keys in our naming:\n"
            f"  missing keys ({len(missing)}): {missing}\n"
            f"  unexpected keys ({len(unexpected)}): {unexpected}\n"
            f"  shape mismatches ({len(mismatched)}): {mismatched}"
        )
    model.load_state_dict(converted, strict=True)
    if torch_dtype is not None:
        fp32 = model._keep_in_fp32_modules or []
        for name, param in model.named_parameters():
            if not any(part in fp32 for part in name.split(".")):
                param.data = param.data.to(torch_dtype)
    return model.eval()
