# SPDX-License-Identifier: Apache-2.0
"""Pipeline loaders: LoRA weights in the diffusers format."""

from .lora_pipeline import Syn2SeqLoraLoaderMixin

__all__ = ["Syn2SeqLoraLoaderMixin"]
