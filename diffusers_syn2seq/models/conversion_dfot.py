# SPDX-License-Identifier: Apache-2.0
"""Conversion of official DFoT checkpoints (Lightning files or backbone state dicts) to diffusers models.

Usage from the command line::

    syn2seq-convert-dfot --checkpoint dfot_kinetics.ckpt --config backbone.json --output_dir dfot-k600-diffusers

where `backbone.json` holds `{"backbone_config": {...}, "x_shape": [C, H, W], "max_tokens": T,
"external_cond_dim": D}`: the official Hydra settings of the run (the same layout as the fixture `.json` files).
"""

import argparse
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .transformer_dfot import DFoTTransformer3DModel

# Lightning checkpoints prefix the backbone keys; `_orig_mod.` appears when the model was torch.compile'd.
OFFICIAL_PREFIXES = ("diffusion_model._orig_mod.model.", "diffusion_model.model.")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def load_official_state_dict(checkpoint: str | os.PathLike | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Backbone state dict from a DFoT checkpoint path or an already loaded dict.

    Accepts a Lightning checkpoint (`{"state_dict": ..., "optimizer_states": ..., ...}`: only `state_dict` is read,
    optimizer and callback entries are ignored), a plain state dict with `diffusion_model.model.` /
    `diffusion_model._orig_mod.model.` prefixes, or bare backbone keys. Files are read with safetensors or
    `torch.load(weights_only=True)`, never with unrestricted unpickling.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"`checkpoint` file not found: {path}")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            checkpoint = load_file(str(path))
        elif path.suffix in PICKLE_SUFFIXES:
            try:
                checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
            except Exception as error:  # the restricted unpickler refuses arbitrary objects
                raise ValueError(
                    f"`checkpoint` {path} could not be loaded with torch.load(weights_only=True): {error}. "
                    "Only tensors and plain containers are accepted; re-save the state dict or use safetensors."
                ) from error
        else:
            raise ValueError(
                f"`checkpoint` must be a .safetensors file or a torch file ({', '.join(PICKLE_SUFFIXES)}), "
                f"got {path.name!r}."
            )
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"`checkpoint` must be a path or a mapping of tensors, got {type(checkpoint).__name__}.")
    state_dict = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"`checkpoint['state_dict']` must be a mapping, got {type(state_dict).__name__}.")

    for prefix in OFFICIAL_PREFIXES:
        backbone = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if backbone:
            return backbone
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError("`checkpoint` holds no tensors under 'diffusion_model.model.' or as bare backbone keys.")
    return tensors


def _dit3d_config(dfot_config: Mapping[str, Any]) -> dict[str, Any]:
    backbone = dfot_config["backbone_config"]
    if backbone.get("variant", "full") != "full":
        raise ValueError(f"Only the `full` DiT3D variant is supported, got variant={backbone.get('variant')!r}.")
    if backbone.get("pos_emb_type", "rope_3d") != "rope_3d":
        raise ValueError(f"Only `rope_3d` positions are supported, got pos_emb_type={backbone.get('pos_emb_type')!r}.")
    channels, height, width = dfot_config["x_shape"]
    hidden_size, num_heads = backbone["hidden_size"], backbone["num_heads"]
    if hidden_size % num_heads:
        raise ValueError(f"`hidden_size` ({hidden_size}) must be divisible by `num_heads` ({num_heads}).")
    condition_dim = dfot_config.get("external_cond_dim") or None
    return dict(
        in_channels=channels,
        sample_size=(height, width),
        max_frames=dfot_config["max_tokens"],
        patch_size=backbone["patch_size"],
        num_layers=backbone["depth"],
        num_attention_heads=num_heads,
        attention_head_dim=hidden_size // num_heads,
        mlp_ratio=backbone.get("mlp_ratio", 4.0),
        noise_embedding_type="fourier" if backbone.get("use_fourier_noise_embedding", False) else "sinusoidal",
        condition_dim=condition_dim,
        condition_dropout=backbone.get("external_cond_dropout", 0.0) if condition_dim else 0.0,
        residual_form="dfot",
    )


def _rename_dit3d_key(key: str) -> str | None:
    """Official DiT3D key -> our key; None for keys that need splitting (fused qkv)."""
    rules = [
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
    for pattern, replacement in rules:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    raise ValueError(f"Unexpected key in the official DiT3D state dict: {key!r}.")


def convert_dit3d_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename official DiT3D backbone keys to `DFoTTransformer3DModel` keys, splitting fused qkv projections."""
    converted = {}
    for key, value in state_dict.items():
        qkv = re.match(r"^dit_base\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", key)
        if qkv:
            block, kind = qkv.groups()
            for name, chunk in zip(("to_q", "to_k", "to_v"), value.chunk(3, dim=0)):
                converted[f"transformer_blocks.{block}.attn.{name}.{kind}"] = chunk.clone()
            continue
        converted[_rename_dit3d_key(key)] = value
    return converted


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
            the official backbone settings (the fixture `.json` layout).
        torch_dtype: optional dtype to cast the converted model to.

    Returns:
        `DFoTTransformer3DModel` (backbone `dit3d`, configured with `residual_form="dfot"`) or `DFoTUViT3DModel`
        (backbone `u_vit3d_pose`).
    """
    for field in ("backbone_config", "x_shape", "max_tokens"):
        if field not in dfot_config:
            raise ValueError(f"`dfot_config` is missing {field!r}; expected keys backbone_config, x_shape, max_tokens.")
    name = dfot_config["backbone_config"].get("name")
    state_dict = load_official_state_dict(checkpoint)

    if name == "dit3d":
        model = DFoTTransformer3DModel(**_dit3d_config(dfot_config))
        converted = convert_dit3d_state_dict(state_dict)
        missing, unexpected = model.load_state_dict(converted, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"Converted DiT3D weights do not match the configured model: missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}. Check `dfot_config` against the checkpoint."
            )
    elif name == "u_vit3d_pose":
        from .conversion_uvit_dfot import uvit3d_pose_from_official

        model = uvit3d_pose_from_official(state_dict, dfot_config)
    else:
        raise ValueError(f"`dfot_config['backbone_config']['name']` must be 'dit3d' or 'u_vit3d_pose', got {name!r}.")

    if torch_dtype is not None:  # like from_pretrained(dtype=...): norms and embeddings stay float32, no warning
        from .loading import _cast_keeping_fp32_modules  # loading imports this module

        model = _cast_keeping_fp32_modules(model, torch_dtype)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert an official DFoT checkpoint to a diffusers model folder.")
    parser.add_argument("--checkpoint", required=True, help="Official .ckpt/.pt/.safetensors file.")
    parser.add_argument(
        "--config", required=True, help="JSON with backbone_config, x_shape, max_tokens, external_cond_dim."
    )
    parser.add_argument("--output_dir", required=True, help="Where to write config.json + safetensors weights.")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    args = parser.parse_args(argv)

    with open(args.config) as f:
        dfot_config = json.load(f)
    model = convert_dfot_checkpoint(args.checkpoint, dfot_config, torch_dtype=getattr(torch, args.dtype))
    model.save_pretrained(args.output_dir)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"Saved {type(model).__name__} ({n_params / 1e6:.1f}M parameters) to {args.output_dir}")


if __name__ == "__main__":
    main()
