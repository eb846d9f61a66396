# SPDX-License-Identifier: Apache-2.0
"""What a LoRA trained on a SkyReels-V2 / Wan diffusers checkpoint needs beside its weights, to be sampled as trained.

Such a base is a bare diffusers transformer (and VAE), not a Syn2Seq pipeline: the wrapper's settings, the prompt
embedding the model was conditioned on, the flow scheduler and the Syn2Seq settings exist only in the training run.
`training/train.py` writes them into the LoRA folder next to `pytorch_lora_weights.safetensors`:

- `foundation_lora.json`: `base_model` (Hub id, or a local folder's name), `transformer` (the
  `WanDFoTTransformer3DModel.from_pretrained_backbone` settings), `scheduler` (the flow scheduler's configuration),
  `pipeline` (`mode`, `num_transition_frames`, `reversal`) and `vae` (None for pixel space, else where it came from);
- `prompt_embeds.safetensors`: the `prompt_embeds` tensor `(1, L, text_dim)`.

`Syn2SeqPipeline.from_foundation_lora(lora, base)` (`load_foundation_lora_pipeline`) reads them back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from safetensors.torch import load_file, save_file

from ..safe_io import atomic_write_text

__all__ = ["FOUNDATION_LORA_SETTINGS_NAME", "PROMPT_EMBEDS_NAME", "load_foundation_lora_pipeline",
           "read_foundation_lora_settings", "save_foundation_lora_settings"]

FOUNDATION_LORA_SETTINGS_NAME = "foundation_lora.json"
PROMPT_EMBEDS_NAME = "prompt_embeds.safetensors"
# The wrapper's own settings (its backbone's come from the base checkpoint).
WRAPPER_SETTINGS = ("backbone_type", "sample_size", "max_frames", "camera_ray_type", "fps", "prompt_length")


def save_foundation_lora_settings(folder: str | os.PathLike, transformer: torch.nn.Module, scheduler: Any,
                                  pipeline_settings: dict[str, Any], base_model: str, vae: dict | None) -> None:
    """Write `foundation_lora.json` and `prompt_embeds.safetensors` into `folder` (see the module docstring).

    Args:
        transformer: the trained `WanDFoTTransformer3DModel` (its wrapper settings and stored prompt embedding).
        scheduler: the `FlowMatchDiffusionForcingScheduler` it was trained with.
        pipeline_settings: `mode`, `num_transition_frames`, `reversal` of the run.
        base_model: the base as a reader can name it: a Hub id, or a local folder's name (never an absolute path).
        vae: None (pixel space), `{"from_base": True, "subfolder": "vae"}`, or `{"name_or_path": ..., "subfolder":
            ...}`.
    """
    config = transformer.config
    settings = {
        "base_model": base_model,
        "transformer": {name: config[name] for name in WRAPPER_SETTINGS},
        "scheduler": {key: value for key, value in scheduler.config.items() if not key.startswith("_")},
        "pipeline": dict(pipeline_settings),
        "vae": vae,
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"prompt_embeds": transformer.prompt_embeds.detach().float().cpu().contiguous()},
              str(folder / PROMPT_EMBEDS_NAME))
    atomic_write_text(folder / FOUNDATION_LORA_SETTINGS_NAME, json.dumps(settings, indent=2))


def read_foundation_lora_settings(folder: str | os.PathLike) -> dict[str, Any]:
    """`foundation_lora.json` of a LoRA folder.

    Raises:
        ValueError: the folder has none (a LoRA for a Syn2Seq pipeline: load that pipeline, then `load_lora_weights`).
    """
    path = Path(folder) / FOUNDATION_LORA_SETTINGS_NAME
    if not path.is_file():
        raise ValueError(f"`lora_name_or_path` must be the folder of a LoRA trained on a SkyReels-V2 / Wan checkpoint "
                         f"(with {FOUNDATION_LORA_SETTINGS_NAME}), got {str(folder)!r}, which has none; a LoRA of a "
                         "Syn2Seq pipeline loads with `Syn2SeqPipeline.from_pretrained(base).load_lora_weights(...)`.")
    return json.loads(path.read_text())


def load_foundation_lora_pipeline(pipeline_class, lora_name_or_path: str | os.PathLike,
                                  base_model_name_or_path: str | os.PathLike | None = None, vae=None,
                                  torch_dtype: torch.dtype | None = None, adapter_name: str | None = None,
                                  **hub_kwargs):
    """`pipeline_class` (a `Syn2SeqPipeline`) as the LoRA was trained: the base's transformer wrapped with the
    settings the LoRA folder records, its prompt embedding, the flow scheduler and Syn2Seq settings of the run, the VAE
    it was trained with (latent runs), and the LoRA loaded.

    Args:
        lora_name_or_path: the LoRA folder or Hub repo id (`foundation_lora.json`, `prompt_embeds.safetensors`,
            `pytorch_lora_weights.safetensors`).
        base_model_name_or_path: the SkyReels-V2 / Wan checkpoint (Hub id or folder with `transformer/`); default: the
            `base_model` the folder records.
        vae: the VAE to use instead of the one the folder records (e.g. a local copy).
        torch_dtype: dtype of the transformer (its float32 modules stay float32) and of the VAE.
        adapter_name: name of the loaded adapter.
        hub_kwargs: `revision`, `cache_dir`, `token`, `local_files_only`, ... for the LoRA repo.
    """
    from ..latents import load_vae
    from ..models import WanDFoTTransformer3DModel
    from ..schedulers import FlowMatchDiffusionForcingScheduler

    folder = str(lora_name_or_path)
    if not os.path.isdir(folder):
        folder = snapshot_download(folder, **hub_kwargs)
    settings = read_foundation_lora_settings(folder)
    base = str(base_model_name_or_path or settings["base_model"])
    transformer = WanDFoTTransformer3DModel.from_pretrained_backbone(base, dtype=torch_dtype, **settings["transformer"])
    transformer.set_prompt_embeds(load_file(os.path.join(folder, PROMPT_EMBEDS_NAME))["prompt_embeds"])
    source = settings.get("vae")
    if vae is None and source is not None:
        vae = load_vae(base if source.get("from_base") else source["name_or_path"], source.get("subfolder"),
                       torch_dtype=torch_dtype)
    scheduler = FlowMatchDiffusionForcingScheduler.from_config(settings["scheduler"])
    pipe = pipeline_class(transformer=transformer, scheduler=scheduler, vae=vae, **settings["pipeline"])
    pipe.load_lora_weights(folder, adapter_name=adapter_name)
    return pipe
