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
"""Pipelines: `Syn2SeqPipeline` and the pure history-guidance helpers it composes."""

from .history_guidance import GuidanceBranches, compose_guidance, fraction_to_level, history_guidance_branches
from .pipeline_output import Syn2SeqPipelineOutput
from .pipeline_syn2seq import Syn2SeqPipeline, plan_windows

__all__ = [
    "GuidanceBranches",
    "Syn2SeqPipeline",
    "Syn2SeqPipelineOutput",
    "compose_guidance",
    "fraction_to_level",
    "history_guidance_branches",
    "plan_windows",
]
