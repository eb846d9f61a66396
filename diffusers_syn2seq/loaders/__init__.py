# SPDX-License-Identifier: Apache-2.0
"""Pipeline loaders: LoRA weights in the diffusers format (and what a LoRA on a bare SkyReels-V2 / Wan checkpoint needs
beside them, `foundation_lora`)."""

from .lora_pipeline import Syn2SeqLoraLoaderMixin

__all__ = ["Syn2SeqLoraLoaderMixin"]
