# SPDX-License-Identifier: Apache-2.0
"""Frame conditions (per-frame vectors such as DFoT's Minecraft actions) through `Syn2SeqPipeline`: one-step parity
with the transformer called directly, sequence order, the null embedding, guidance branches, batches, sliding
windows with DFoT's `mask_first`, the converted official-layout condition model, and the errors."""

import contextlib
import json

import pytest
import torch
from test_pipeline import SIZE, gen, make_pipeline, random_video, tiny_transformer

from diffusers_syn2seq.data import plan_windows
from diffusers_syn2seq.models import DFoTTransformer3DModel
from diffusers_syn2seq.pipelines import Syn2SeqPipeline
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

DIM = 5  # condition_dim of the tiny condition models


def condition_model(max_frames: int = 8) -> DFoTTransformer3DModel:
    return tiny_transformer(max_frames=max_frames, condition_dim=DIM)


def vectors(frames: int, seed: int, batch: int | None = None) -> torch.Tensor:
    """Random condition vectors `(F, DIM)` or `(B, F, DIM)`."""
    shape = (frames, DIM) if batch is None else (batch, frames, DIM)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@contextlib.contextmanager
def capture(model: torch.nn.Module):
    """The keyword arguments of every forward of `model` while the block runs (the real model: nothing replaced)."""
    calls = []
    hook = model.register_forward_hook(lambda m, args, kwargs, out: calls.append(dict(kwargs)), with_kwargs=True)
    try:
        yield calls
    finally:
        hook.remove()


@pytest.fixture(scope="module")
def pipe():
    return make_pipeline(condition_model(), mode="video", num_transition_frames=2)


# ------------------------------------------------------------------------------------------------ parity
def test_one_step_equals_the_transformer_called_directly(pipe):
    """Source 3, transition 2, target 3 frames, all with conditions, one DDIM step from full noise: the output is
    the scheduler step of one direct transformer call on `[source | noise]` with the conditions in sequence order."""
    video, src, trans, tgt = random_video(3), vectors(3, 1), vectors(2, 2), vectors(3, 3)
    noise = torch.randn(1, 3, 5, SIZE, SIZE, generator=gen(7))
    out = pipe(video, num_frames=3, num_inference_steps=1, latents=noise, output_type="latent", return_transition=True,
               source_conditions=src, transition_conditions=trans, target_conditions=tgt)

    scheduler = pipe.scheduler
    scheduler.set_timesteps(1)
    levels = scheduler.scheduling_matrix(5, 1, "full_sequence", 1.0)  # (2, 5): full noise, then clean
    hidden = torch.cat([video.transpose(0, 1)[None] * 2 - 1, noise], dim=2)
    timestep = scheduler.model_timesteps(torch.cat([torch.full((3,), -1), levels[0]])[None])
    with torch.no_grad():
        prediction = pipe.transformer(hidden, timestep, condition=torch.cat([src, trans, tgt])[None],
                                      return_dict=False)[0]
        unconditional = pipe.transformer(hidden, timestep, return_dict=False)[0]
    expected = scheduler.step(prediction[:, :, 3:], levels[0][None], noise, next_timestep=levels[1][None]).prev_sample
    torch.testing.assert_close(out.transition_frames, expected[:, :, :2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.frames, expected[:, :, 2:], atol=1e-5, rtol=1e-5)
    assert (prediction - unconditional).abs().max() > 1e-2  # the conditions reach the output: the check can fail


def test_the_conditions_change_the_output(pipe):
    kwargs = dict(num_frames=3, num_inference_steps=2, output_type="latent", source_conditions=vectors(3, 1))
    first = pipe(random_video(3), generator=gen(0), target_conditions=vectors(3, 2), **kwargs).frames
    second = pipe(random_video(3), generator=gen(0), target_conditions=vectors(3, 3), **kwargs).frames
    assert first.shape == (1, 3, 3, SIZE, SIZE) and torch.isfinite(first).all()
    assert (first - second).abs().max() > 1e-3


def test_no_conditions_is_the_null_embedding_of_the_same_model_without_its_condition_mlp():
    """`condition=None` adds nothing to the noise-level embedding: the same weights without `condition_dim` sample
    exactly the same frames, with and without guidance."""
    with_mlp = condition_model()
    without = tiny_transformer(max_frames=8)
    result = without.load_state_dict(with_mlp.state_dict(), strict=False)
    assert not result.missing_keys and result.unexpected_keys
    assert all(key.startswith("condition_embedding.") for key in result.unexpected_keys)
    for guidance in ({}, {"history_guidance": "vanilla", "guidance_scale": 2.0}):
        kwargs = dict(num_frames=3, num_inference_steps=2, output_type="latent", **guidance)
        a = make_pipeline(with_mlp)(random_video(3), generator=gen(0), **kwargs).frames
        b = make_pipeline(without)(random_video(3), generator=gen(0), **kwargs).frames
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------------ sequence order
@pytest.mark.parametrize("direction", ["exo2ego", "ego2exo"])
def test_conditions_in_sequence_order_and_dropped_with_the_empty_history_branch(pipe, direction):
    """Exo2Ego: `[source | transition | target]`; Ego2Exo (full reversal): every segment reversed. The branch of
    vanilla guidance that drops the history drops the conditions of every frame; a segment left None (here the
    transition) is masked in every branch."""
    src, tgt = vectors(3, 1), vectors(3, 2)
    with capture(pipe.transformer) as calls:
        pipe(random_video(3), num_frames=3, num_inference_steps=1, history_guidance="vanilla", guidance_scale=2.0,
             direction=direction, output_type="latent", source_conditions=src, target_conditions=tgt)
    assert len(calls) == 1  # 8 frames: one window
    kwargs = calls[0]
    missing = torch.zeros(2, DIM)
    sequence = torch.cat([src, missing, tgt]) if direction == "exo2ego" else \
        torch.cat([src.flip(0), missing, tgt.flip(0)])
    condition, mask, timestep = kwargs["condition"], kwargs["condition_mask"], kwargs["timestep"]
    assert condition.shape == (2, 8, DIM)  # two branches of one sample
    assert torch.equal(condition[0], sequence) and torch.equal(condition[1], sequence)
    empty = int(timestep[:, 0].argmax())  # the branch whose history is pure noise
    known = torch.tensor([True] * 3 + [False] * 2 + [True] * 3)
    assert torch.equal(mask[empty], torch.zeros(8, dtype=torch.bool))
    assert torch.equal(mask[1 - empty], known)


def test_batch_and_num_videos_per_prompt_equal_single_calls(pipe):
    videos, src, tgt = random_video(3, batch=2, seed=9), vectors(3, 1, batch=2), vectors(3, 2, batch=2)
    kwargs = dict(num_frames=3, num_inference_steps=2, history_guidance="fractional", guidance_scale=1.5,
                  output_type="latent")
    both = pipe(videos, generator=[gen(10), gen(11)], source_conditions=src, target_conditions=tgt, **kwargs).frames
    singles = [pipe(videos[b], generator=gen(10 + b), source_conditions=src[b], target_conditions=tgt[b],
                    **kwargs).frames for b in range(2)]
    torch.testing.assert_close(both, torch.cat(singles), atol=1e-5, rtol=1e-5)
    # two samples of source 0, the conditions given once per source (a list of one (F, D) each)
    repeated = pipe(videos[:1], generator=[gen(10), gen(12)], num_videos_per_prompt=2, source_conditions=[src[0]],
                    target_conditions=[tgt[0]], **kwargs).frames
    torch.testing.assert_close(repeated[:1], singles[0], atol=1e-5, rtol=1e-5)
    other = pipe(videos[0], generator=gen(12), source_conditions=src[0], target_conditions=tgt[0], **kwargs).frames
    torch.testing.assert_close(repeated[1:], other, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------------ sliding windows
@pytest.mark.parametrize("processing", [None, "mask_first"])
def test_each_sliding_window_gets_its_conditions(processing):
    """max_frames 4, source 3, target 5: several windows. Each transformer call sees the conditions of its window;
    with `condition_processing="mask_first"` (DFoT's Minecraft sampler) the vector of the window's first frame is
    zero (a zero vector, not the null embedding: its mask stays True)."""
    windowed = make_pipeline(condition_model(max_frames=4), condition_processing=processing)
    src, tgt = vectors(3, 1), vectors(5, 2)
    with capture(windowed.transformer) as calls:
        windowed(random_video(3), num_frames=5, num_inference_steps=1, context_frames=2, output_type="latent",
                 source_conditions=src, target_conditions=tgt)
    windows = plan_windows(3, 5, 4, 2, True)
    assert len(windows) > 1 and len(calls) == len(windows)  # one step: one call per window
    sequence = torch.cat([src, tgt])
    for (start, num_hist, num_gen), kwargs in zip(windows, calls):
        expected = sequence[start : start + num_hist + num_gen].clone()
        if processing == "mask_first":
            expected[0] = 0.0
        assert torch.equal(kwargs["condition"][0], expected)
        assert bool(kwargs["condition_mask"].all())


# ------------------------------------------------------------------------------------------------ official layout
def test_converted_official_condition_model_keeps_mask_first_and_samples_with_actions(tmp_path):
    """The official-layout DiT3D with an 8-d external condition (fixture `dit3d_external_cond`) and the ImageVAE
    fixture, converted as Minecraft is (`external_cond_processing="mask_first"`): the setting survives the folder
    round trip and actions change the frames."""
    from test_autoencoder_dfot import PARITY, REPO_ROOT, official

    from diffusers_syn2seq.pipelines.conversion_dfot_pipeline import convert_dfot_pipeline

    _, dit_config, dit_weights = PARITY.load_fixture(REPO_ROOT / "tests" / "fixtures" / "dfot_reference",
                                                     "dit3d_external_cond")
    _, vae_config, vae_weights = official("image_vae")
    dit_config = {**dit_config, "external_cond_processing": "mask_first"}
    convert_dfot_pipeline(dit_weights, dit_config, vae_weights, vae_config).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["condition_processing"] == "mask_first"
    loaded = Syn2SeqPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    size = 8 * loaded.vae_scale_factor
    actions = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    kwargs = dict(num_frames=2, num_inference_steps=2, output_type="pt")
    source = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(4))
    acted = loaded(source, generator=gen(0), source_conditions=actions[:3], target_conditions=actions[3:],
                   **kwargs).frames
    unconditioned = loaded(source, generator=gen(0), **kwargs).frames
    assert acted.shape == (1, 2, 3, size, size) and torch.isfinite(acted).all()
    assert (acted - unconditioned).abs().max() > 1e-4


# ------------------------------------------------------------------------------------------------ errors
def nan_vectors() -> torch.Tensor:
    bad = vectors(3, 1)
    bad[1, 2] = float("nan")
    return bad


@pytest.mark.parametrize("kwargs,match", [
    ({"target_conditions": vectors(3, 1)[:, :4]},
     r"`target_conditions` must be a float tensor or array of shape \(3, 5\) or \(1, 3, 5\) \(frames, condition_dim\), "
     r"or a list of 1 \(3, 5\) tensors, got shape \(3, 4\)\."),
    ({"source_conditions": vectors(4, 1)}, r"`source_conditions` must be .* got shape \(4, 5\)\."),
    ({"source_conditions": vectors(3, 1, batch=2)}, r"`source_conditions` must be .* got shape \(2, 3, 5\)\."),
    ({"source_conditions": torch.zeros(3, DIM, dtype=torch.long)},
     r"`source_conditions` must be .* got a Tensor of shape \(3, 5\) and dtype torch.int64\."),
    ({"source_conditions": nan_vectors()}, r"`source_conditions` must contain only finite values, got 1 NaN"),
    ({"transition_conditions": vectors(2, 1), "mode": "jump"},
     r"`transition_conditions` were given but the sequence has no transition frames \(mode 'jump', "
     r"num_transition_frames=0\)\."),
])
def test_bad_conditions_raise_naming_the_argument(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipe(random_video(3), **{"num_frames": 3, "num_inference_steps": 1, "output_type": "latent", **kwargs})


def test_conditions_for_a_model_without_condition_dim_raise():
    plain = make_pipeline(tiny_transformer())
    with pytest.raises(ValueError, match=r"^`source_conditions` / `target_conditions` given but the transformer has no "
                                         r"per-frame condition vector \(condition_dim=None\)"):
        plain(random_video(3), num_frames=3, source_conditions=vectors(3, 1), target_conditions=vectors(3, 2))


def test_conditions_with_a_vae_compressing_time_are_refused():
    from test_video_vae import tiny_wan

    model = DFoTTransformer3DModel(in_channels=16, sample_size=4, max_frames=6, patch_size=2, num_layers=1,
                                   num_attention_heads=2, attention_head_dim=16, noise_embedding_dim=32,
                                   condition_dim=DIM)
    video_pipe = Syn2SeqPipeline(transformer=model, scheduler=DiffusionForcingScheduler(), vae=tiny_wan(),
                                 mode="jump", num_transition_frames=0)
    with pytest.raises(ValueError, match=r"`target_conditions` given but the VAE compresses time 4x: frame conditions "
                                         r"need one model frame per video frame"):
        video_pipe(torch.rand(5, 3, 32, 32), num_frames=4, target_conditions=vectors(4, 1))


def test_condition_processing_is_checked_at_construction():
    with pytest.raises(ValueError, match=r"`condition_processing` must be None or 'mask_first' .*got 'mask_last'"):
        make_pipeline(condition_model(), condition_processing="mask_last")
