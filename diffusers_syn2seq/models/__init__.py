# SPDX-License-Identifier: Apache-2.0

from .autoencoder_kl_dfot_video import AutoencoderKLDFoTVideo
from .conversion_dfot import convert_dfot_checkpoint
from .conversion_uvit_dfot import uvit3d_pose_from_official
from .conversion_vae_dfot import DFOT_VAE_PRESETS, convert_dfot_vae
from .loading import load_transformer
from .transformer_dfot import DIT_PRESETS, DFoTTransformer3DModel
from .transformer_uvit_dfot import UVIT_REALESTATE10K_CONFIG, DFoTUViT3DModel
from .transformer_wan_dfot import (
    SKYREELS_V2_DF_1_3B_CONFIG,
    WAN_LORA_TARGETS,
    WanDFoTTransformer3DModel,
    encode_prompt_embeds,
)

__all__ = [
    "AutoencoderKLDFoTVideo",
    "DFOT_VAE_PRESETS",
    "DIT_PRESETS",
    "DFoTTransformer3DModel",
    "DFoTUViT3DModel",
    "SKYREELS_V2_DF_1_3B_CONFIG",
    "UVIT_REALESTATE10K_CONFIG",
    "WAN_LORA_TARGETS",
    "WanDFoTTransformer3DModel",
    "convert_dfot_checkpoint",
    "convert_dfot_vae",
    "encode_prompt_embeds",
    "load_transformer",
    "uvit3d_pose_from_official",
]
