# Copyright 2026 The diffusers-syn2seq Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
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
