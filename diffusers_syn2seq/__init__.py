# SPDX-License-Identifier: Apache-2.0
"""diffusers-syn2seq: Syn2Seq-Forcing exo<->ego video generation with Diffusion Forcing Transformers."""

from ._version import __version__
from .bundled import bundled_model_path
from .data import LatentLayout, SequenceLayout
from .loaders import Syn2SeqLoraLoaderMixin
from .models import (
    DFOT_VAE_PRESETS,
    DIT_PRESETS,
    AutoencoderKLDFoTVideo,
    DFoTTransformer3DModel,
    DFoTUViT3DModel,
    WanDFoTTransformer3DModel,
    convert_dfot_checkpoint,
    convert_dfot_vae,
    load_transformer,
)

# Importing the pipelines module also registers Syn2SeqPipeline with diffusers, so that
# `DiffusionPipeline.from_pretrained(folder)` resolves it from `model_index.json`.
from .pipelines import Syn2SeqPipeline, Syn2SeqPipelineOutput
from .schedulers import DiffusionForcingScheduler, DiffusionForcingSchedulerOutput, FlowMatchDiffusionForcingScheduler

__all__ = [
    "__version__",
    "DIT_PRESETS",
    "DFOT_VAE_PRESETS",
    "AutoencoderKLDFoTVideo",
    "bundled_model_path",
    "DFoTTransformer3DModel",
    "DFoTUViT3DModel",
    "DiffusionForcingScheduler",
    "DiffusionForcingSchedulerOutput",
    "LatentLayout",
    "FlowMatchDiffusionForcingScheduler",
    "SequenceLayout",
    "Syn2SeqLoraLoaderMixin",
    "Syn2SeqPipeline",
    "Syn2SeqPipelineOutput",
    "WanDFoTTransformer3DModel",
    "convert_dfot_checkpoint",
    "convert_dfot_vae",
    "load_transformer",
]
