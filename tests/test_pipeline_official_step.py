# SPDX-License-Identifier: Apache-2.0
"""`Syn2SeqPipeline` against the official DFoT sampler (`DFoTVideo._sample_sequence`) with the same noise.

The fixture (`tests/fixtures/dfot_sampling`, made by `scripts/make_dfot_sampling_fixture.py`) ran the official
Lightning module at a tiny Minecraft-like size: a continuous (Fourier) DiT3D with 8-d actions and `mask_first`,
2 videos, 3 context + 3 generated latent frames filling `max_tokens`, 4 DDIM steps, unguided and with vanilla
history guidance (w = 2), every intermediate state recorded, and two sliding windows (9 frames). Here its weights
are converted with `convert_dfot_pipeline` and the pipeline samples from the same context, actions and initial
noise; the noise the official guided sampler draws for the history of its no-history branch (`q_sample`) is fed to
the pipeline's draw of history noise.
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
    """`(tensors, config, pipeline)`: the official runs and the pipeline converted from their weights."""
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


def recorded_history_noise(monkeypatch, steps: torch.Tensor) -> list:
    """Make the pipeline's per-step history noise `(B, branches, C, H, h, w)` the official `q_sample` draws of the
    same step (`(B, H, C, h, w)`, the history frames), the same for every branch: the branch with clean history
    multiplies it by 0, the no-history branch (level T - 1) uses it as the official one does."""
    requests = []

    def draw(shape, generator=None, device=None, dtype=None, **kwargs):
        assert len(requests) < len(steps), "the pipeline drew more history noise than the official sampler"
        recorded = ours(steps[len(requests)])
        requests.append(tuple(shape))
        return recorded[:, None].expand(shape).to(dtype).clone()

    monkeypatch.setattr(pipeline_syn2seq, "randn_tensor", draw)
    return requests


def sample(pipe, tensors: dict, config: dict, run: str, num_frames: int, **kwargs) -> tuple[torch.Tensor, list]:
    """The pipeline on the fixture's inputs and initial noise: `(generated frames, window after every step)`."""
    num_context = config["num_context"]
    context, conditions = tensors["input.context"], tensors["input.conditions"][:, : num_context + num_frames]
    noise = torch.cat([ours(window[:, num_context:]) for window in tensors[f"{run}.initial_noise"]], dim=2)
    states = []

    def keep(pipe, step, levels, callback_kwargs):
        states.append(callback_kwargs["latents"].clone())
        return callback_kwargs

    out = pipe(source_latents=ours(context), source_conditions=conditions[:, :num_context],
               target_conditions=conditions[:, num_context:], num_frames=num_frames, context_frames=num_context,
               num_inference_steps=config["sampling_timesteps"], output_type="latent", callback_on_step_end=keep,
               latents=noise, **kwargs)
    return out.frames, states


def max_differences(states: list, frames: torch.Tensor, tensors: dict, run: str, num_context: int) -> list[float]:
    """Max abs difference of the generated frames after every step (the last one also from `out.frames`)."""
    trajectory = tensors[f"{run}.trajectory"]  # (steps + 1, B, generated, C, H, W): before the first step, after each
    assert len(states) == trajectory.shape[0] - 1
    diffs = [(ours(trajectory[m + 1]) - state[:, :, num_context:]).abs().max().item() for m, state in enumerate(states)]
    final = ours(tensors[f"{run}.output"])[:, :, num_context:]
    return diffs + [(frames - final).abs().max().item()]


def generated(config: dict) -> int:
    return config["max_tokens"] - config["num_context"]


def test_unguided_sampling_equals_the_official_sampler(official):
    tensors, config, pipe = official
    frames, states = sample(pipe, tensors, config, "unguided", generated(config))
    diffs = max_differences(states, frames, tensors, "unguided", config["num_context"])
    assert max(diffs) <= TOLERANCE, diffs
    assert tensors["unguided.output"][:, config["num_context"]:].std() > 0.5  # not a trivial output


def test_vanilla_history_guidance_equals_the_official_sampler_with_its_noise(official, monkeypatch):
    tensors, config, pipe = official
    history_noise = tensors["vanilla.history_noise"]
    requests = recorded_history_noise(monkeypatch, history_noise)
    frames, states = sample(pipe, tensors, config, "vanilla", generated(config), history_guidance="vanilla",
                            guidance_scale=config["vanilla_guidance_scale"])
    assert len(requests) == len(history_noise)  # one draw per step, as the official sampler
    diffs = max_differences(states, frames, tensors, "vanilla", config["num_context"])
    assert max(diffs) <= TOLERANCE, diffs
    # the guidance matters here: the unguided run from the same initial noise ends elsewhere
    assert (tensors["vanilla.output"] - tensors["unguided.output"]).abs().max() > 1.0


def test_sliding_windows_equal_the_official_conditional_sampler_without_stabilisation(official):
    """Two windows: the second has only generated frames as history, fed clean by the official `conditional` (and
    `stabilized_conditional`, see the next test) sampler: the pipeline's `stabilization_level=0`. Its actions are the
    second window's, its first vector zeroed by `mask_first`."""
    tensors, config, pipe = official
    num_frames = config["sliding_length"] - config["num_context"]
    frames, _ = sample(pipe, tensors, config, "sliding", num_frames, stabilization_level=0.0)
    final = ours(tensors["sliding.output"])[:, :, config["num_context"]:]
    assert (frames - final).abs().max().item() <= TOLERANCE


def test_sliding_vanilla_guidance_differs_from_the_official_after_the_first_window(official, monkeypatch):
    """A known difference. The official `stabilized_vanilla` (and `vanilla`, `stabilized_conditional`) run through
    its `SimpleHistoryGuidanceManager`, which never applies the stabilisation level and, in the no-history branch,
    replaces only ground-truth history by noise: generated history stays clean there. The pipeline's vanilla
    guidance masks every history frame in that branch (the official general `HistoryGuidanceManager`'s rule) and
    feeds generated history at `stabilization_level`. The first window (ground-truth history only) is equal."""
    tensors, config, pipe = official
    num_context, num_frames = config["num_context"], config["sliding_length"] - config["num_context"]
    recorded_history_noise(monkeypatch, tensors["sliding_vanilla.history_noise"])
    frames, _ = sample(pipe, tensors, config, "sliding_vanilla", num_frames, history_guidance="vanilla",
                       guidance_scale=config["vanilla_guidance_scale"],
                       stabilization_level=config["stabilization_level"])
    final = ours(tensors["sliding_vanilla.output"])[:, :, num_context:]
    first, second = slice(0, generated(config)), slice(generated(config), None)
    assert (frames[:, :, first] - final[:, :, first]).abs().max().item() <= TOLERANCE
    assert (frames[:, :, second] - final[:, :, second]).abs().max().item() > 1e-2


def test_the_comparison_tells_mask_first_and_the_noise_apart(official):
    """Without `mask_first`, or with the pipeline's own noise for the guided branch, the frames differ: the parity
    above is not a tolerance wide enough to hide either."""
    tensors, config, pipe = official
    num_context = config["num_context"]
    pipe.register_to_config(condition_processing=None)
    try:
        frames, states = sample(pipe, tensors, config, "unguided", generated(config))
    finally:
        pipe.register_to_config(condition_processing="mask_first")
    assert max(max_differences(states, frames, tensors, "unguided", num_context)) > 1e-2
    frames, states = sample(pipe, tensors, config, "vanilla", generated(config), history_guidance="vanilla",
                            guidance_scale=config["vanilla_guidance_scale"], generator=torch.Generator().manual_seed(0))
    assert max(max_differences(states, frames, tensors, "vanilla", num_context)) > 1e-2
