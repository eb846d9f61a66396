# SPDX-License-Identifier: Apache-2.0
"""Reading what an official DFoT run left: checkpoint files (safetensors or restricted torch files), their backbone
state dict, and the backbone settings (`backbone_config`, `x_shape`, `max_tokens`) from a dict or a JSON/YAML file.

Shared by both converters (`conversion_dfot.py` for the DiT3D, `conversion_uvit_dfot.py` for the U-ViT3D) and by
`loading.py`; it imports none of them, so the imports of `models/` point one way.
"""

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..validation import check_all_finite, check_positive_int, describe

# Lightning checkpoints prefix the backbone keys; `_orig_mod.` appears when the model was torch.compile'd.
OFFICIAL_PREFIXES = ("diffusion_model._orig_mod.model.", "diffusion_model.model.")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def _read_checkpoint_file(path: Path) -> Any:
    """The object stored in a checkpoint file: safetensors, or a torch file read with the restricted unpickler."""
    if not path.exists():
        raise FileNotFoundError(f"`checkpoint` file not found: {path}")
    if not path.is_file():
        raise ValueError(f"`checkpoint` must be a file, got the folder {str(path)!r}.")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise ValueError(
                f"`checkpoint` {str(path)!r} is not a readable safetensors file ({error}); it may be truncated or "
                "corrupt: download or save it again."
            ) from error
    if path.suffix not in PICKLE_SUFFIXES:
        raise ValueError(
            f"`checkpoint` must be a .safetensors file or a torch file ({', '.join(PICKLE_SUFFIXES)}), "
            f"got {path.name!r}."
        )
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # the restricted unpickler refuses arbitrary objects; other failures mean a bad file
        if "Weights only load failed" in str(error):
            raise ValueError(
                f"`checkpoint` {str(path)!r} could not be loaded with torch.load(weights_only=True): it holds objects "
                "other than tensors and plain containers, which are never unpickled here; re-save the state dict "
                "or use safetensors."
            ) from error
        raise ValueError(
            f"`checkpoint` {str(path)!r} is not a readable torch file ({type(error).__name__}: {error}); it may be "
            "truncated or corrupt: download or save it again."
        ) from error


def checkpoint_state_dict(checkpoint: str | os.PathLike | Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``state_dict`` entry of a checkpoint (file or loaded mapping; Lightning files keep their weights there),
    else the checkpoint itself, checked to be a mapping."""
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = _read_checkpoint_file(Path(checkpoint))
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"`checkpoint` must be a path or a mapping of tensors, got {type(checkpoint).__name__}.")
    state_dict = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"`checkpoint['state_dict']` must be a mapping, got {type(state_dict).__name__}.")
    return state_dict


def load_official_state_dict(checkpoint: str | os.PathLike | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Backbone state dict from a DFoT checkpoint path or an already loaded dict.

    Accepts a Lightning checkpoint (`{"state_dict": ..., "optimizer_states": ..., ...}`: only `state_dict` is read,
    optimizer and callback entries are ignored), a plain state dict with `diffusion_model.model.` /
    `diffusion_model._orig_mod.model.` prefixes, or bare backbone keys. Files are read with safetensors or
    `torch.load(weights_only=True)`, never with unrestricted unpickling; a truncated or corrupt file, or a weight
    holding NaN or inf, raises a `ValueError` naming it.
    """
    state_dict = checkpoint_state_dict(checkpoint)
    for prefix in OFFICIAL_PREFIXES:
        backbone = {k[len(prefix) :]: v for k, v in state_dict.items() if isinstance(k, str) and k.startswith(prefix)}
        if backbone:
            for key, value in backbone.items():
                if not isinstance(value, torch.Tensor):
                    raise ValueError(
                        f"`checkpoint` key {prefix + key!r} must hold a tensor, got {type(value).__name__}."
                    )
            return _finite(backbone, prefix)
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(
            f"`checkpoint` must hold backbone tensors under one of {OFFICIAL_PREFIXES} or as bare backbone keys, got "
            f"no tensor among its {len(state_dict)} keys."
        )
    return _finite(tensors, "")


def _finite(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``tensors`` unchanged when every weight is finite (a diverged or damaged run's NaN would convert silently)."""
    check_all_finite({f"checkpoint key {prefix + key!r}": tensor for key, tensor in tensors.items()})
    return tensors


def official_backbone_config(dfot_config: Any) -> Mapping[str, Any]:
    """``dfot_config['backbone_config']`` after checking that ``dfot_config`` has the official layout."""
    if not isinstance(dfot_config, Mapping):
        raise ValueError(
            "`dfot_config` must be a mapping with backbone_config, x_shape and max_tokens, got "
            f"{describe(dfot_config)}."
        )
    for field in ("backbone_config", "x_shape", "max_tokens"):
        if field not in dfot_config:
            raise ValueError(f"`dfot_config` is missing {field!r}; expected keys backbone_config, x_shape, max_tokens.")
    backbone = dfot_config["backbone_config"]
    if not isinstance(backbone, Mapping):
        raise ValueError(f"`dfot_config['backbone_config']` must be a mapping, got {describe(backbone)}.")
    return backbone


def official_x_shape(dfot_config: Mapping[str, Any]) -> tuple[int, int, int]:
    """``dfot_config['x_shape']`` as three positive ints ``(C, H, W)``."""
    x_shape = dfot_config["x_shape"]
    if not isinstance(x_shape, Sequence) or isinstance(x_shape, str) or len(x_shape) != 3:
        shown = list(x_shape) if isinstance(x_shape, (list, tuple)) else describe(x_shape)
        raise ValueError(f"`dfot_config['x_shape']` must be [C, H, W], got {shown}.")
    channels, height, width = (check_positive_int(f"dfot_config['x_shape'][{i}]", v) for i, v in enumerate(x_shape))
    return channels, height, width



def read_dfot_config(dfot_config: Mapping[str, Any] | str | os.PathLike) -> dict[str, Any]:
    """Official backbone settings (``backbone_config``, ``x_shape``, ``max_tokens``, ...) from a dict, or from a JSON
    or YAML file (YAML needs ``pyyaml``, part of the ``train`` extra)."""
    if isinstance(dfot_config, Mapping):
        return dict(dfot_config)
    if not isinstance(dfot_config, (str, os.PathLike)) or not Path(dfot_config).is_file():
        raise ValueError(
            f"`dfot_config` must be a dict or the path of a JSON/YAML file of DFoT backbone settings, got "
            f"{dfot_config!r}" + (" (no such file)." if isinstance(dfot_config, (str, os.PathLike)) else ".")
        )
    path = Path(dfot_config)
    is_yaml = path.suffix in (".yaml", ".yml")
    try:
        if is_yaml:
            import yaml

            config = yaml.safe_load(path.read_text())
        else:
            config = json.loads(path.read_text())
    except Exception as error:  # JSONDecodeError (a ValueError), yaml.YAMLError (pyyaml is optional: not imported)
        if not isinstance(error, ValueError) and type(error).__module__.split(".")[0] != "yaml":
            raise
        kind = "YAML" if is_yaml else "JSON"
        raise ValueError(f"`dfot_config` file {str(path)!r} is not valid {kind}: {error}") from None
    if not isinstance(config, Mapping):
        raise ValueError(f"`dfot_config` file {str(path)!r} must hold a mapping, got {type(config).__name__}.")
    return dict(config)
