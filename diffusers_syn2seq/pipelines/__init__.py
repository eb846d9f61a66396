# SPDX-License-Identifier: Apache-2.0
"""Pipelines: `Syn2SeqPipeline` and the pure history-guidance helpers it composes."""

from .history_guidance import GuidanceBranches, compose_guidance, fraction_to_level, history_guidance_branches
from .pipeline_output import Syn2SeqPipelineOutput
from .pipeline_syn2seq import Syn2SeqPipeline

__all__ = [
    "GuidanceBranches",
    "Syn2SeqPipeline",
    "Syn2SeqPipelineOutput",
    "compose_guidance",
    "fraction_to_level",
    "history_guidance_branches",
]
