# SPDX-License-Identifier: Apache-2.0

from .conversion_dfot import convert_dfot_checkpoint
from .conversion_uvit_dfot import uvit3d_pose_from_official
from .loading import load_transformer
from .transformer_dfot import DIT_PRESETS, DFoTTransformer3DModel
from .transformer_uvit_dfot import UVIT_REALESTATE10K_CONFIG, DFoTUViT3DModel

__all__ = [
    "DIT_PRESETS",
    "DFoTTransformer3DModel",
    "DFoTUViT3DModel",
    "UVIT_REALESTATE10K_CONFIG",
    "convert_dfot_checkpoint",
    "load_transformer",
    "uvit3d_pose_from_official",
]
