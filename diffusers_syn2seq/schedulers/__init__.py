# SPDX-License-Identifier: Apache-2.0
"""Schedulers: the per-frame diffusion-forcing schedulers (DDIM and rectified flow) and their scheduling matrices."""

from .scheduling_diffusion_forcing import (
    DiffusionForcingScheduler,
    DiffusionForcingSchedulerOutput,
    autoregressive_schedule,
    full_sequence_schedule,
    make_alphas_cumprod,
    pyramid_schedule,
    sampling_levels,
    shifted_cosine_logsnr,
    step_indices_to_levels,
)
from .scheduling_flow_match_diffusion_forcing import (
    FlowMatchDiffusionForcingScheduler,
    flow_sampling_levels,
    shift_sigmas,
)

# The per-frame schedulers `Syn2SeqPipeline` and the training objective accept (same level convention).
PER_FRAME_SCHEDULERS = (DiffusionForcingScheduler, FlowMatchDiffusionForcingScheduler)

__all__ = [
    "DiffusionForcingScheduler",
    "DiffusionForcingSchedulerOutput",
    "FlowMatchDiffusionForcingScheduler",
    "PER_FRAME_SCHEDULERS",
    "autoregressive_schedule",
    "flow_sampling_levels",
    "full_sequence_schedule",
    "make_alphas_cumprod",
    "pyramid_schedule",
    "sampling_levels",
    "shift_sigmas",
    "shifted_cosine_logsnr",
    "step_indices_to_levels",
]
