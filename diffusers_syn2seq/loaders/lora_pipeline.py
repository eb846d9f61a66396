# SPDX-License-Identifier: Apache-2.0
"""LoRA loading for `Syn2SeqPipeline`: the diffusers file format, on the pipeline's DFoT transformer.

Files are `pytorch_lora_weights.safetensors` with keys `transformer.<module path>.lora_A.weight` /
`.lora_B.weight` (the format `training/train.py` writes and every diffusers pipeline reads), plus the peft
`LoraConfig` of the adapter in the safetensors metadata (`lora_adapter_metadata`), so rank, alpha and
target modules round trip without guessing. `set_adapters`, `unload_lora_weights`, `delete_adapters`,
`enable_lora` / `disable_lora` and `get_active_adapters` come from `LoraBaseMixin`.

SkyReels-V2 / Wan LoRAs travel both ways: the wrapper `WanDFoTTransformer3DModel` holds the diffusers transformer as
`backbone`, and its LoRA files carry the backbone's own keys (`transformer.blocks.N...`, no `backbone.`), so a file
saved here loads unchanged in diffusers' `SkyReelsV2DiffusionForcingPipeline` / `WanPipeline`, and theirs load here.
Original-format Wan LoRAs (`diffusion_model.blocks.N.self_attn.q.lora_A.weight`, musubi `lora_unet_...`) are
converted by diffusers' own `WanLoraLoaderMixin.lora_state_dict`. A file that adapts no module of the transformer is
an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from diffusers.loaders.lora_base import LORA_WEIGHT_NAME_SAFE, LoraBaseMixin
from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin
from diffusers.utils import (
    is_peft_available,
    is_transformers_available,
    is_transformers_version,
    logging,
    require_peft_backend,
)
from huggingface_hub.utils import validate_hf_hub_args

from ..models.transformer_wan_dfot import WanDFoTTransformer3DModel

logger = logging.get_logger(__name__)

__all__ = ["LORA_WEIGHT_NAME_SAFE", "Syn2SeqLoraLoaderMixin", "lora_keys_for_transformer"]

TRANSFORMER_NAME = "transformer"
_LOW_CPU_MEM_USAGE_DEFAULT_LORA = (
    is_peft_available() and is_transformers_available() and is_transformers_version(">", "4.45.2")
)


class Syn2SeqLoraLoaderMixin(LoraBaseMixin):
    r"""Load, save, fuse and unfuse LoRA layers of the pipeline's transformer ([`DFoTTransformer3DModel`],
    [`DFoTUViT3DModel`] or [`WanDFoTTransformer3DModel`], whose keys carry its `backbone.` prefix and whose default
    targets are `training_utils.default_lora_targets`). Mixed into [`Syn2SeqPipeline`]."""

    _lora_loadable_modules = [TRANSFORMER_NAME]
    transformer_name = TRANSFORMER_NAME

    @classmethod
    @validate_hf_hub_args
    def lora_state_dict(
        cls,
        pretrained_model_name_or_path_or_dict: str | os.PathLike | dict[str, torch.Tensor],
        **kwargs,
    ):
        r"""Read a LoRA state dict (and optionally its adapter metadata) from a folder, file, Hub repo or dict.

        Args:
            pretrained_model_name_or_path_or_dict: a local folder holding `pytorch_lora_weights.safetensors`
                (or `weight_name`), a Hub repo id, or a state dict.
            weight_name (`str`, *optional*): file name inside the folder / repo.
            return_lora_metadata (`bool`, defaults to False): also return the adapter metadata (the peft
                `LoraConfig` as a dict, or None for files without one).
            cache_dir, force_download, proxies, local_files_only, token, revision, subfolder, use_safetensors:
                as in `diffusers` loaders.

        Returns:
            `state_dict` or `(state_dict, metadata)`; keys `transformer.<module>.lora_A.weight` / `lora_B.weight`
            (original-format Wan keys converted to diffusers' names by diffusers' converter).
        """
        # diffusers' Wan / SkyReels reader: fetches the file (safetensors unless the caller allows pickles), converts
        # original-format (`diffusion_model.`) and musubi (`lora_unet_`) keys, and drops DoRA `dora_scale` entries.
        return_lora_metadata = kwargs.pop("return_lora_metadata", False)
        state_dict, metadata = WanLoraLoaderMixin.lora_state_dict(
            pretrained_model_name_or_path_or_dict, return_lora_metadata=True, **kwargs
        )
        return (state_dict, metadata) if return_lora_metadata else state_dict

    @require_peft_backend
    def load_lora_weights(
        self,
        pretrained_model_name_or_path_or_dict: str | os.PathLike | dict[str, torch.Tensor],
        adapter_name: str | None = None,
        hotswap: bool = False,
        **kwargs,
    ) -> None:
        r"""Load LoRA weights into `self.transformer` as adapter `adapter_name` (default `default_0`, ...).

        Args:
            pretrained_model_name_or_path_or_dict: see [`~Syn2SeqLoraLoaderMixin.lora_state_dict`].
            adapter_name (`str`, *optional*): name of the adapter (to combine several with `set_adapters`).
            hotswap (`bool`): replace the weights of an already loaded adapter in place.
            low_cpu_mem_usage (`bool`, *optional*): create the LoRA layers on the meta device first.
            kwargs: passed to [`~Syn2SeqLoraLoaderMixin.lora_state_dict`].
        """
        low_cpu_mem_usage = kwargs.pop("low_cpu_mem_usage", _LOW_CPU_MEM_USAGE_DEFAULT_LORA)
        if isinstance(pretrained_model_name_or_path_or_dict, dict):  # never modify the caller's dict
            pretrained_model_name_or_path_or_dict = pretrained_model_name_or_path_or_dict.copy()
        kwargs["return_lora_metadata"] = True
        state_dict, metadata = self.lora_state_dict(pretrained_model_name_or_path_or_dict, **kwargs)
        not_lora = [key for key in state_dict if "lora" not in key]
        if not_lora:
            raise ValueError(
                f"Invalid LoRA checkpoint: every key must contain 'lora' (e.g. 'transformer.<module>.lora_A.weight'), "
                f"got {len(not_lora)} other keys such as {not_lora[:3]}."
            )
        self.load_lora_into_transformer(
            state_dict,
            transformer=getattr(self, self.transformer_name),
            adapter_name=adapter_name,
            metadata=metadata,
            _pipeline=self,
            low_cpu_mem_usage=low_cpu_mem_usage,
            hotswap=hotswap,
        )

    @classmethod
    def load_lora_into_transformer(
        cls,
        state_dict: dict[str, torch.Tensor],
        transformer: torch.nn.Module,
        adapter_name: str | None = None,
        _pipeline=None,
        low_cpu_mem_usage: bool = False,
        hotswap: bool = False,
        metadata: dict | None = None,
    ) -> None:
        r"""Load the `transformer.`-prefixed entries of `state_dict` into `transformer` (a `PeftAdapterMixin`).

        Keys name the backbone's modules for a [`WanDFoTTransformer3DModel`] (diffusers' SkyReels-V2 / Wan names; files
        with the older `transformer.backbone.` keys load too).

        Raises:
            ValueError: no entry of `state_dict` names a module of `transformer` (a LoRA for another model).
        """
        logger.info(f"Loading {cls.transformer_name}.")
        state_dict = lora_keys_for_transformer(state_dict, transformer, cls.transformer_name)
        transformer.load_lora_adapter(
            state_dict,
            network_alphas=None,
            adapter_name=adapter_name,
            metadata=metadata,
            _pipeline=_pipeline,
            low_cpu_mem_usage=low_cpu_mem_usage,
            hotswap=hotswap,
        )

    @classmethod
    def save_lora_weights(
        cls,
        save_directory: str | os.PathLike,
        transformer_lora_layers: dict[str, torch.nn.Module | torch.Tensor] | None = None,
        is_main_process: bool = True,
        weight_name: str | None = None,
        save_function: Callable | None = None,
        safe_serialization: bool = True,
        transformer_lora_adapter_metadata: dict | None = None,
    ) -> None:
        r"""Write `pytorch_lora_weights.safetensors` (keys prefixed `transformer.`) into `save_directory`.

        Args:
            transformer_lora_layers: the transformer's LoRA state dict, e.g.
                `peft.get_peft_model_state_dict(transformer)` (keys `<module>.lora_A.weight`); a
                [`WanDFoTTransformer3DModel`]'s `backbone.` prefix is dropped, so diffusers' SkyReels-V2 / Wan
                pipelines load the file as it is.
            transformer_lora_adapter_metadata: the adapter's `LoraConfig.to_dict()`, stored in the file metadata
                so rank, alpha and target modules are restored on load.
            is_main_process, weight_name, save_function, safe_serialization: as in diffusers.
        """
        if not transformer_lora_layers:
            raise ValueError(
                "`transformer_lora_layers` must be a non-empty LoRA state dict (e.g. "
                f"`get_peft_model_state_dict(transformer)`), got {type(transformer_lora_layers).__name__}."
            )
        # A SkyReels-V2 / Wan wrapper's adapter is saved under the backbone's own names, the file diffusers reads.
        prefix = WanDFoTTransformer3DModel.lora_module_prefix
        if all(key.startswith(prefix) for key in transformer_lora_layers):
            transformer_lora_layers = {key.removeprefix(prefix): value
                                       for key, value in transformer_lora_layers.items()}
        cls._save_lora_weights(
            save_directory=save_directory,
            lora_layers={cls.transformer_name: transformer_lora_layers},
            lora_metadata={cls.transformer_name: transformer_lora_adapter_metadata},
            is_main_process=is_main_process,
            weight_name=weight_name,
            save_function=save_function,
            safe_serialization=safe_serialization,
        )

    def fuse_lora(
        self,
        components: list[str] = [TRANSFORMER_NAME],  # noqa: B006 (diffusers signature)
        lora_scale: float = 1.0,
        safe_fusing: bool = False,
        adapter_names: list[str] | None = None,
        **kwargs,
    ) -> None:
        r"""Merge the active LoRA weights into the transformer's base weights (scaled by `lora_scale`).

        `safe_fusing=True` checks the fused weights for NaN and refuses to fuse them.
        """
        super().fuse_lora(
            components=components,
            lora_scale=lora_scale,
            safe_fusing=safe_fusing,
            adapter_names=adapter_names,
            **kwargs,
        )

    def unfuse_lora(self, components: list[str] = [TRANSFORMER_NAME], **kwargs) -> None:  # noqa: B006
        r"""Subtract previously fused LoRA weights from the base weights (the inverse of `fuse_lora`)."""
        super().unfuse_lora(components=components, **kwargs)


def lora_keys_for_transformer(state_dict: dict[str, torch.Tensor], transformer: torch.nn.Module,
                              prefix: str = TRANSFORMER_NAME) -> dict[str, torch.Tensor]:
    """The `prefix.`-keyed entries of a LoRA state dict, named as modules of `transformer`: backbone names
    (`prefix.blocks.N...`, diffusers' SkyReels-V2 / Wan format) gain the `backbone.` of a [`WanDFoTTransformer3DModel`];
    other entries are kept as they are (`load_lora_adapter` ignores them).

    Raises:
        ValueError: no entry names a module of `transformer` (diffusers would only log a warning and apply nothing).
    """
    module_prefix = getattr(transformer, "lora_module_prefix", "")
    out, matched, unmatched = {}, set(), set()
    for key, value in state_dict.items():
        if key.startswith(f"{prefix}."):
            path = key[len(prefix) + 1:]
            if module_prefix and not path.startswith(module_prefix):
                path = module_prefix + path
            module = path.split(".lora_")[0]
            try:
                transformer.get_submodule(module)
                matched.add(module)
            except AttributeError:
                unmatched.add(module)
            key = f"{prefix}.{path}"
        out[key] = value
    if not matched:
        examples = sorted(unmatched)[:3] or sorted(state_dict)[:3]
        raise ValueError(
            f"LoRA state dict must adapt modules of the {type(transformer).__name__} (keys "
            f"'{prefix}.<module>.lora_A.weight'), got {len(state_dict)} keys that name none of them, such as "
            f"{examples}; is it a LoRA for another model?"
        )
    if unmatched:
        logger.warning(f"{len(unmatched)} LoRA modules are not in the {type(transformer).__name__} and are ignored, "
                       f"such as {sorted(unmatched)[:3]}.")
    return out
