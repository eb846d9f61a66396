# SPDX-License-Identifier: Apache-2.0
"""`Syn2SeqPipeline` against the official DFoT sampler (`DFoTVideo._sample_sequence`) with the same noise.

The fixture (`tests/fixtures/dfot_sampling`, made by `scripts/make_dfot_sampling_fixture.py`) ran the official
Lightning module at a tiny Minecraft-like size: a continuous (Fourier) DiT3D with 8-d actions and `mask_first`,
2 videos, 3 context + 3 generated latent frames filling `max_tokens`, 4 DDIM steps, unguided and with vanilla
history guidance (w = 2), every intermediate state recorded. Here its weights are converted with
`convert_dfot_pipeline` and the pipeline samples from the same context, actions and initial noise; the noise the
official guided sampler draws for the history of its no-history branch (`q_sample`) is fed to the pipeline's draw
for that branch.
"""

import json

import pytest
import torch
from conftest import REPO_ROOT
from safetensors.torch import load_file

from diffusers_syn2seq.pipelines import pipeline_syn2seq
from diffusers_syn2seq.pipelines.conversion_dfot_pipeline import convert_dfot_pipeline

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "dfot_sampling" / "dit3d_minecraft_like"
TOLERANCE = 1e-4  # float32 on outputs of size O(1..10)


@pytest.fixture(scope="module")
def official():
    """`(tensors, config, pipeline)`: the official run and the pipeline converted from its weights."""
    tensors = load_file(str(FIXTURE.with_suffix(".safetensors")))
    config = json.loads(FIXTURE.with_suffix(".json").read_text())
    state_dict = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    pipe = convert_dfot_pipeline(state_dict, config)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.condition_processing == "mask_first"
    return tensors, config, pipe


def ours(x: torch.Tensor) -> torch.Tensor:
    """The official `(B, T, C, H, W)` layout -> the pipeline's `(B, C, T, H, W)`."""
    return x.transpose(1, 2)


def recorded_history_noise(monkeypatch, steps: torch.Tensor, num_context: int) -> list:
    """Make the pipeline's per-step history noise `(B, branches, C, H, h, w)` the official `q_sample` draws.

    Vanilla guidance has two branches, `s_H` (clean history: its noise is multiplied by 0) and `s_empty` (history at
    level T - 1); the official `(B, T, C, H, W)` draw of step `m` goes to the history frames of `s_empty`."""
    requests = []

    def draw(shape, generator=None, device=None, dtype=None, **kwargs):
        assert len(requests) < len(steps), "the pipeline drew more history noise than the official sampler"
        noise = torch.zeros(shape, dtype=dtype)
        noise[:, 1] = ours(steps[len(requests)][:, :num_context])
        requests.append(tuple(shape))
        return noise

    monkeypatch.setattr(pipeline_syn2seq, "randn_tensor", draw)
    return requests


def sample(pipe, tensors: dict, config: dict, run: str, **kwargs) -> tuple[torch.Tensor, list]:
    """The pipeline on the fixture's inputs and initial noise: `(final window, window after every step)`."""
    num_context, num_frames = config["num_context"], config["max_tokens"] - config["num_context"]
    context, conditions = tensors["input.context"], tensors["input.conditions"]
    states = []

    def keep(pipe, step, levels, callback_kwargs):
        states.append(callback_kwargs["latents"].clone())
        return callback_kwargs

    out = pipe(source_latents=ours(context), source_conditions=conditions[:, :num_context],
               target_conditions=conditions[:, num_context:], num_frames=num_frames,
               num_inference_steps=config["sampling_timesteps"], output_type="latent", callback_on_step_end=keep,
               latents=ours(tensors[f"{run}.initial_noise"])[:, :, num_context:], **kwargs)
    return out.frames, states


def max_differences(states: list, frames: torch.Tensor, tensors: dict, run: str, num_context: int) -> list[float]:
    """Max abs difference of the generated frames after every step (the last one also from `out.frames`)."""
    trajectory = tensors[f"{run}.trajectory"]  # (steps + 1, B, T, C, H, W): before the first step, after each
    assert len(states) == trajectory.shape[0] - 1
    diffs = [(ours(trajectory[m + 1]) - state)[:, :, num_context:].abs().max().item() for m, state in enumerate(states)]
    final = ours(tensors[f"{run}.output"])[:, :, num_context:]
    assert torch.equal(ours(tensors[f"{run}.output"])[:, :, :num_context], ours(tensors["input.context"]))
    return diffs + [(frames - final).abs().max().item()]


def test_unguided_sampling_equals_the_official_sampler(official):
    tensors, config, pipe = official
    frames, states = sample(pipe, tensors, config, "unguided")
    diffs = max_differences(states, frames, tensors, "unguided", config["num_context"])
    assert max(diffs) <= TOLERANCE, diffs
    assert ours(tensors["unguided.output"])[:, :, config["num_context"]:].std() > 0.5  # not a trivial output


def test_vanilla_history_guidance_equals_the_official_sampler_with_its_noise(official, monkeypatch):
    tensors, config, pipe = official
    history_noise = tensors["vanilla.history_noise"]
    requests = recorded_history_noise(monkeypatch, history_noise, config["num_context"])
    frames, states = sample(pipe, tensors, config, "vanilla", history_guidance="vanilla",
                            guidance_scale=config["vanilla_guidance_scale"])
    assert len(requests) == len(history_noise)  # one draw per step, as the official sampler
    diffs = max_differences(states, frames, tensors, "vanilla", config["num_context"])
    assert max(diffs) <= TOLERANCE, diffs
    # the guidance matters here: the unguided run from the same initial noise ends elsewhere
    assert (tensors["vanilla.output"] - tensors["unguided.output"]).abs().max() > 1.0


def test_the_comparison_tells_mask_first_and_the_noise_apart(official):
    """Without `mask_first`, or with the pipeline's own noise for the guided branch, the frames differ: the parity
    above is not a tolerance wide enough to hide either."""
    tensors, config, pipe = official
    num_context = config["num_context"]
    pipe.register_to_config(condition_processing=None)
    try:
        frames, states = sample(pipe, tensors, config, "unguided")
    finally:
        pipe.register_to_config(condition_processing="mask_first")
    assert max(max_differences(states, frames, tensors, "unguided", num_context)) > 1e-2
    frames, states = sample(pipe, tensors, config, "vanilla", history_guidance="vanilla",
                            guidance_scale=config["vanilla_guidance_scale"], generator=torch.Generator().manual_seed(0))
    assert max(max_differences(states, frames, tensors, "vanilla", num_context)) > 1e-2
