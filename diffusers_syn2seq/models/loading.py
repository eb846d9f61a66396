# SPDX-License-Identifier: Apache-2.0
"""`load_transformer`: a DFoT backbone from a Syn2Seq pipeline folder, a transformer folder or an official checkpoint.

One entry point for every place that starts from "a model path" (training, benchmarks, scripts), so that the class
dispatch and its error messages live here and nowhere else:

* a Syn2Seq pipeline folder (``model_index.json``): its ``transformer/`` subfolder;
* a transformer folder (``config.json``): ``DFoTTransformer3DModel``, ``DFoTUViT3DModel`` or
  ``WanDFoTTransformer3DModel`` from ``_class_name``;
* an official DFoT checkpoint (file or state dict) plus its backbone settings: ``convert_dfot_checkpoint``.
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..safe_loading import refuse_pickled_only
from .casting import _cast_keeping_fp32_modules
from .conversion_dfot import convert_dfot_checkpoint
from .official_dfot import PICKLE_SUFFIXES, read_dfot_config
from .transformer_dfot import DFoTTransformer3DModel
from .transformer_uvit_dfot import DFoTUViT3DModel
from .transformer_wan_dfot import WanDFoTTransformer3DModel

TRANSFORMER_CLASSES = {cls.__name__: cls for cls in (DFoTTransformer3DModel, DFoTUViT3DModel,
                                                     WanDFoTTransformer3DModel)}
CHECKPOINT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
EXPECTED = (
    "a Syn2Seq pipeline folder (model_index.json), a transformer folder (config.json), or an official DFoT checkpoint "
    f"file ({', '.join(CHECKPOINT_SUFFIXES)}) or state dict with `dfot_config`"
)


def _from_checkpoint(
    checkpoint: str | os.PathLike | Mapping[str, Any], dfot_config: Any, kwargs: dict[str, Any]
) -> DFoTTransformer3DModel | DFoTUViT3DModel:
    if dfot_config is None:
        shown = checkpoint if not isinstance(checkpoint, Mapping) else "a state dict"
        raise ValueError(
            f"`dfot_config`: expected the backbone settings (dict or JSON/YAML file) of the official DFoT checkpoint "
            f"{shown!s}, got None."
        )
    dtype, torch_dtype = kwargs.pop("dtype", None), kwargs.pop("torch_dtype", None)
    dtype = dtype if dtype is not None else torch_dtype
    if kwargs:
        raise ValueError(
            f"`kwargs` for an official DFoT checkpoint may only be `dtype` / `torch_dtype`, got {sorted(kwargs)}."
        )
    model = convert_dfot_checkpoint(checkpoint, read_dfot_config(dfot_config))
    return model if dtype is None else _cast_keeping_fp32_modules(model, dtype)


def _from_transformer_folder(folder: Path, kwargs: dict[str, Any]) -> DFoTTransformer3DModel | DFoTUViT3DModel:
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"`path_or_checkpoint`: {str(config_path)!r} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(
            f"`path_or_checkpoint`: {str(config_path)!r} must hold a JSON object, got {type(config).__name__}."
        )
    class_name = config.get("_class_name")
    if class_name not in TRANSFORMER_CLASSES:
        raise ValueError(
            f"`path_or_checkpoint`: {str(folder / 'config.json')!r} must have `_class_name` one of "
            f"{sorted(TRANSFORMER_CLASSES)}, got {class_name!r}."
        )
    cls = TRANSFORMER_CLASSES[class_name]
    refuse_pickled_only(folder, "`path_or_checkpoint`", cls.__name__)
    try:  # safetensors only: a model folder a user was handed is never unpickled
        return cls.from_pretrained(folder, use_safetensors=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as error:  # bad weights file, shapes that disagree with the config
        message = f"`path_or_checkpoint`: could not load {cls.__name__} from {str(folder)!r}: {error}"
        raise (OSError if isinstance(error, OSError) else ValueError)(message) from error


def load_transformer(
    path_or_checkpoint: str | os.PathLike | Mapping[str, Any],
    dfot_config: Mapping[str, Any] | str | os.PathLike | None = None,
    **kwargs: Any,
) -> DFoTTransformer3DModel | DFoTUViT3DModel:
    """Load a DFoT backbone (or the SkyReels-V2 / Wan wrapper), in eval mode, from what a Syn2Seq user has at hand.

    Args:
        path_or_checkpoint: a local Syn2Seq pipeline folder (``model_index.json``; its ``transformer/`` subfolder is
            loaded), a transformer folder (``config.json`` with ``_class_name`` ``DFoTTransformer3DModel``,
            ``DFoTUViT3DModel`` or ``WanDFoTTransformer3DModel``), or an official DFoT checkpoint: a
            ``.ckpt``/``.pt``/``.pth``/``.bin``/``.safetensors`` file or an already loaded state dict (Lightning or
            bare backbone keys).
        dfot_config: the official backbone settings of a checkpoint (``{"backbone_config": ..., "x_shape": ...,
            "max_tokens": ...}``), as a dict or a JSON/YAML file; required for checkpoints, refused for folders.
        kwargs: passed to ``from_pretrained`` for folders (``dtype``, ``low_cpu_mem_usage``, ...); a checkpoint
            accepts only ``dtype`` (or ``torch_dtype``), applied like ``from_pretrained`` (``_keep_in_fp32_modules``
            stay float32).

    Returns:
        ``DFoTTransformer3DModel`` or ``DFoTUViT3DModel``.

    Raises:
        ValueError: naming the argument, what was expected and what was received.
    """
    if isinstance(path_or_checkpoint, Mapping):
        return _from_checkpoint(path_or_checkpoint, dfot_config, kwargs)
    if not isinstance(path_or_checkpoint, (str, os.PathLike)):
        raise ValueError(f"`path_or_checkpoint` must be {EXPECTED}; got {type(path_or_checkpoint).__name__}.")
    path = Path(path_or_checkpoint)
    if path.is_file():
        if path.suffix not in CHECKPOINT_SUFFIXES:
            raise ValueError(f"`path_or_checkpoint` must be {EXPECTED}; got the file {str(path)!r}.")
        return _from_checkpoint(path, dfot_config, kwargs)
    if not path.is_dir():
        raise ValueError(f"`path_or_checkpoint` must be {EXPECTED}; got {str(path)!r}, which does not exist.")
    if dfot_config is not None:
        raise ValueError(
            f"`dfot_config` is only for official DFoT checkpoint files; expected None with the folder {str(path)!r}, "
            "whose config.json already describes the model."
        )
    if (path / "model_index.json").is_file():
        if not (path / "transformer" / "config.json").is_file():
            raise ValueError(
                f"`path_or_checkpoint`: the pipeline folder {str(path)!r} must have a transformer/config.json, "
                "got none."
            )
        return _from_transformer_folder(path / "transformer", kwargs)
    if (path / "config.json").is_file():
        return _from_transformer_folder(path, kwargs)
    raise ValueError(f"`path_or_checkpoint` must be {EXPECTED}; got the folder {str(path)!r} with neither file.")
