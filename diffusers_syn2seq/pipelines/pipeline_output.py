# SPDX-License-Identifier: Apache-2.0
"""Output dataclass of `Syn2SeqPipeline`."""

from dataclasses import dataclass
from typing import Any

from diffusers.utils import BaseOutput


@dataclass
class Syn2SeqPipelineOutput(BaseOutput):
    r"""
    Output of :class:`Syn2SeqPipeline`.

    Args:
        frames: the generated target frames only (ego frames for `exo2ego`, exo frames for `ego2exo`), in natural
            time order. Per `output_type`: `"np"` array `(B, F, H, W, 3)` in [0, 1]; `"pt"` tensor `(B, F, 3, H, W)`
            in [0, 1]; `"pil"` list (batch) of lists of PIL images; `"latent"` tensor `(B, C, F, h, w)` in model space
            (scaled VAE latents, or pixels in [-1, 1] for pixel-space models).
        transition_frames: the generated transition frames in the same format (ordered from the exo segment
            towards the ego segment), only when `return_transition=True` and there is a transition; else None.
    """

    frames: Any
    transition_frames: Any | None = None
