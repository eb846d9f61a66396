# SPDX-License-Identifier: Apache-2.0
"""diffusers' own pipeline, cache and scheduler test mixins, unmodified, configured for `Syn2SeqPipeline` and
`DiffusionForcingScheduler` (counts in README.md, "Sampling").

The mixins live in the diffusers repository's `tests/` (not in the wheel, nor in the PyPI sdist, which holds only
`tests/testing_utils.py`). Copy this file into a diffusers checkout and run it there:

    mkdir -p DIFFUSERS/tests/pipelines/syn2seq && touch DIFFUSERS/tests/pipelines/syn2seq/__init__.py
    cp scripts/diffusers_mixins_harness.py DIFFUSERS/tests/pipelines/syn2seq/test_syn2seq_mixins.py
    cd DIFFUSERS && PYTHONPATH=.:THIS_REPO python -m pytest tests/pipelines/syn2seq -rfs

The diffusers tests also need `parameterized` and `requests_mock`. Pixel space, a tiny 2-layer DFoT with random
(non-zero) weights, history guidance on, so every mixin compares real outputs.
"""

import unittest

import torch

from diffusers_syn2seq import DFoTTransformer3DModel, DiffusionForcingScheduler, Syn2SeqPipeline

from ...schedulers import test_schedulers
from ...testing_utils import enable_full_determinism
from ..test_pipelines_common import (
    FasterCacheTesterMixin,
    FirstBlockCacheTesterMixin,
    PipelineTesterMixin,
    PyramidAttentionBroadcastTesterMixin,
)

enable_full_determinism()


def tiny_transformer(num_layers=2):
    torch.manual_seed(0)
    model = DFoTTransformer3DModel(in_channels=3, sample_size=8, max_frames=8, patch_size=2, num_layers=num_layers,
                                   num_attention_heads=2, attention_head_dim=16, noise_embedding_dim=32,
                                   camera_ray_type=None)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # AdaLN-zero init would make the output exactly 0
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    return model


class Syn2SeqPipelineFastTests(PipelineTesterMixin, unittest.TestCase):
    pipeline_class = Syn2SeqPipeline
    params = frozenset(["source_video", "height", "width", "guidance_scale"])
    batch_params = frozenset(["source_video"])
    required_optional_params = frozenset(["num_inference_steps", "num_videos_per_prompt", "generator", "latents",
                                          "output_type", "return_dict", "callback_on_step_end",
                                          "callback_on_step_end_tensor_inputs"])
    callback_cfg_params = frozenset()
    test_xformers_attention = False
    test_attention_slicing = False

    def get_dummy_components(self, num_layers=2):
        return {"transformer": tiny_transformer(num_layers), "scheduler": DiffusionForcingScheduler(), "vae": None}

    def get_dummy_inputs(self, device, seed=0):
        generator = torch.Generator(device="cpu").manual_seed(seed)
        video = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
        return {"source_video": video, "num_transition_frames": 1, "mode": "video", "num_inference_steps": 2,
                "history_guidance": "vanilla", "guidance_scale": 1.5, "generator": generator, "output_type": "pt"}


class Syn2SeqCacheTests(PyramidAttentionBroadcastTesterMixin, FasterCacheTesterMixin, FirstBlockCacheTesterMixin,
                        unittest.TestCase):
    pipeline_class = Syn2SeqPipeline
    get_dummy_components = Syn2SeqPipelineFastTests.get_dummy_components
    get_dummy_inputs = Syn2SeqPipelineFastTests.get_dummy_inputs


class DiffusionForcingSchedulerTest(test_schedulers.SchedulerCommonTest):
    scheduler_classes = (DiffusionForcingScheduler,)

    def get_scheduler_config(self, **kwargs):
        return dict(kwargs)
