# SPDX-License-Identifier: Apache-2.0
"""Schedulers: the per-frame diffusion-forcing scheduler and its scheduling-matrix functions."""

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

__all__ = [
    "DiffusionForcingScheduler",
    "DiffusionForcingSchedulerOutput",
    "autoregressive_schedule",
    "full_sequence_schedule",
    "make_alphas_cumprod",
    "pyramid_schedule",
    "sampling_levels",
    "shifted_cosine_logsnr",
    "step_indices_to_levels",
]
