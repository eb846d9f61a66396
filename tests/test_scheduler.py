# SPDX-License-Identifier: Apache-2.0
"""Tests of `DiffusionForcingScheduler` and the scheduling-matrix functions."""

import math

import pytest
import torch
from diffusers import DDIMScheduler
from safetensors.torch import load_file

from diffusers_syn2seq.schedulers import (
    DiffusionForcingScheduler,
    DiffusionForcingSchedulerOutput,
    autoregressive_schedule,
    full_sequence_schedule,
    pyramid_schedule,
    sampling_levels,
)

PREDICTION_TYPES = ["v_prediction", "epsilon", "sample"]


def continuous_scheduler(**kwargs) -> DiffusionForcingScheduler:
    return DiffusionForcingScheduler(noise_schedule="cosine_simple_diffusion", shift=0.125, **kwargs)


def oracle_prediction(scheduler, x0, noise, xt, levels):
    """The exact model output for a sample `xt` built from known `x0` and `noise`."""
    kind = scheduler.config.prediction_type
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, levels)
    return noise if kind == "epsilon" else x0


# ------------------------------------------------------------------------------------------------ schedules
def test_default_is_dfot_discrete_cosine_with_v_prediction():
    scheduler = DiffusionForcingScheduler()
    assert scheduler.config.noise_schedule == "cosine"
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.alphas_cumprod.shape == (1000,)
    assert scheduler.noise_embedding_type == "sinusoidal"
    assert len(scheduler) == 1000


def test_alphas_cumprod_match_official_schedules(dfot_fixtures_dir):
    ref = load_file(str(dfot_fixtures_dir / "noise_schedules.safetensors"))
    discrete = DiffusionForcingScheduler()
    continuous = continuous_scheduler()
    assert (discrete.alphas_cumprod - ref["cosine_1000.alphas_cumprod"]).abs().max() < 1e-6
    diff = continuous.alphas_cumprod - ref["cosine_simple_diffusion_shift0.125_1000.alphas_cumprod"]
    assert diff.abs().max() < 1e-6
    assert continuous.noise_embedding_type == "fourier"


def test_model_timesteps_discrete_and_continuous(dfot_fixtures_dir):
    levels = torch.tensor([[-1, 0, 19, 999]])
    assert torch.equal(DiffusionForcingScheduler().model_timesteps(levels), torch.tensor([[0, 0, 19, 999]]))

    # DFoT feeds 0.125 * logSNR, logSNR(t) = -2 log tan(t_min + t (t_max - t_min)) + 2 log 0.125, t = k / 999.
    t_min, t_max = math.atan(math.exp(-7.5)), math.atan(math.exp(7.5))
    t = torch.tensor([0, 0, 19, 999], dtype=torch.float64) / 999
    expected = (0.125 * (-2 * torch.log(torch.tan(t_min + t * (t_max - t_min))) + 2 * math.log(0.125))).float()
    got = continuous_scheduler().model_timesteps(levels)
    torch.testing.assert_close(got[0], expected, rtol=1e-5, atol=1e-5)
    # and it is consistent with the (float32) reference alphas_cumprod
    ref = load_file(str(dfot_fixtures_dir / "noise_schedules.safetensors"))
    a = ref["cosine_simple_diffusion_shift0.125_1000.alphas_cumprod"].double()[torch.tensor([0, 0, 19, 999])]
    torch.testing.assert_close(got[0], (0.125 * torch.log(a / (1 - a))).float(), rtol=1e-3, atol=1e-3)
    # Continuous times t in [0, 1] use the exact formula; t = k / (T - 1) hits grid level k.
    t = torch.tensor([19 / 999.0], dtype=torch.float64)
    torch.testing.assert_close(continuous_scheduler().model_timesteps(t)[0], expected[2], rtol=1e-5, atol=1e-5)


def test_float_levels_rejected_for_discrete_schedule():
    with pytest.raises(ValueError, match="integer levels"):
        DiffusionForcingScheduler().alphas_cumprod_at(torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"\[-1, 999\]"):
        DiffusionForcingScheduler().alphas_cumprod_at(torch.tensor([1000]))


# ------------------------------------------------------------------------------------------------ matrices
@pytest.mark.parametrize("steps", [1, 7, 50, 1000])
def test_sampling_levels_equal_dfot_linspace(steps):
    expected = torch.linspace(-1, 999, steps + 1, dtype=torch.float64).long()
    assert torch.equal(sampling_levels(steps, 1000), expected)
    assert sampling_levels(50)[:3].tolist() == [-1, 19, 39]


def test_pyramid_small_example_by_hand():
    # F = 3, S = 4, u = 1: frame t starts t rows late.
    expected = torch.tensor(
        [[4, 4, 4], [3, 4, 4], [2, 3, 4], [1, 2, 3], [0, 1, 2], [0, 0, 1], [0, 0, 0]]
    )
    assert torch.equal(pyramid_schedule(3, 4, 1.0), expected)


@pytest.mark.parametrize("frames,steps,u", [(1, 5, 1.0), (6, 10, 1.0), (5, 8, 2.5), (4, 3, 0.5), (7, 4, 0.0)])
def test_pyramid_matrix_properties(frames, steps, u):
    m = pyramid_schedule(frames, steps, u)
    assert m.shape == (steps + int(torch.floor(torch.tensor((frames - 1) * u))) + 1, frames)
    assert (m[0] == steps).all(), "row 0 must be all noise"
    assert (m[-1] == 0).all(), "last row must be all clean"
    drops = m[:-1] - m[1:]
    assert ((drops == 0) | (drops == 1)).all(), "each column is monotone, one grid step at a time"
    finish = (m == 0).int().argmax(dim=0)  # first row at which each frame is clean
    assert (finish[1:] >= finish[:-1]).all(), "no frame finishes before the one before it"
    start = (m < steps).int().argmax(dim=0)
    assert (start[1:] >= start[:-1]).all()
    # every row changes at least one frame: no wasted model evaluations
    assert (drops.sum(dim=1) > 0).all()


def test_full_sequence_and_autoregressive_special_cases():
    full = full_sequence_schedule(4, 5)
    assert full.shape == (6, 4) and (full == full[:, :1]).all()
    ar = autoregressive_schedule(3, 4)
    assert ar.shape == (13, 3)
    for t in range(1, 3):
        started = ar[:, t] < 4
        clean_before = ar[:, t - 1] == 0
        assert (clean_before[started]).all(), "a frame starts only once the previous one is clean"
    matrix = DiffusionForcingScheduler().scheduling_matrix(3, 50, "pyramid", 1.0)
    assert matrix[0].tolist() == [999] * 3 and matrix[-1].tolist() == [-1] * 3
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        DiffusionForcingScheduler().scheduling_matrix(3, 50, "zigzag")
    with pytest.raises(ValueError, match="uncertainty_scale"):
        pyramid_schedule(3, 5, -1.0)


# ------------------------------------------------------------------------------------------------ forward process
@pytest.mark.parametrize("shape_kind", ["scalar", "batch", "frames", "batch_frames"])
def test_add_noise_broadcasts_per_frame(shape_kind):
    scheduler = DiffusionForcingScheduler()
    x0, noise = torch.randn(2, 3, 4, 5, 5), torch.randn(2, 3, 4, 5, 5)
    full = {
        "scalar": torch.full((2, 4), 500),
        "batch": torch.tensor([[10] * 4, [900] * 4]),
        "frames": torch.tensor([[-1, 0, 500, 999]] * 2),
        "batch_frames": torch.tensor([[-1, 3, 7, 999], [5, -1, 0, 2]]),
    }[shape_kind]
    given = {"scalar": torch.tensor(500), "batch": torch.tensor([10, 900]),
             "frames": torch.tensor([-1, 0, 500, 999]), "batch_frames": full}[shape_kind]
    out = scheduler.add_noise(x0, noise, given)
    a = torch.where(full < 0, torch.ones(()), scheduler.alphas_cumprod[full.clamp(min=0)])[:, None, :, None, None]
    torch.testing.assert_close(out, a.sqrt() * x0 + (1 - a).sqrt() * noise)
    clean = full < 0
    for b, f in clean.nonzero().tolist():
        assert torch.equal(out[b, :, f], x0[b, :, f])


def test_batch_equal_frames_one_d_means_per_sample():
    scheduler = DiffusionForcingScheduler()
    x0, noise = torch.randn(3, 1, 3, 2, 2), torch.randn(3, 1, 3, 2, 2)
    out = scheduler.add_noise(x0, noise, torch.tensor([-1, 500, 999]))
    assert torch.equal(out[0], x0[0])  # sample 0 entirely clean
    per_frame = scheduler.add_noise(x0, noise, torch.tensor([[-1, 500, 999]]))
    assert torch.equal(per_frame[:, :, 0], x0[:, :, 0])
    with pytest.raises(ValueError, match="length B=3 or F=3"):
        scheduler.add_noise(x0, noise, torch.tensor([1, 2]))


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
def test_conversions_round_trip(kind):
    scheduler = DiffusionForcingScheduler(prediction_type=kind)
    x0, noise = torch.randn(2, 3, 4, 6, 6), torch.randn(2, 3, 4, 6, 6)
    levels = torch.tensor([[0, 100, 500, 998], [3, 250, 700, 900]])
    xt = scheduler.add_noise(x0, noise, levels)
    pred = oracle_prediction(scheduler, x0, noise, xt, levels)
    got_x0, got_eps = scheduler.convert_model_output(pred, xt, levels)
    torch.testing.assert_close(got_x0, x0, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(got_eps, noise, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(scheduler.convert_to_prediction(got_x0, got_eps, xt, levels), pred, atol=2e-3, rtol=1e-3)
    assert torch.equal(scheduler.get_target(x0, noise, levels), pred)


# ------------------------------------------------------------------------------------------------ DDIM step
@pytest.mark.parametrize("kind", PREDICTION_TYPES)
@pytest.mark.parametrize("continuous", [False, True])
def test_deterministic_ddim_step_with_oracle_lands_on_forward_marginal(kind, continuous):
    make = continuous_scheduler if continuous else DiffusionForcingScheduler
    scheduler = make(prediction_type=kind)
    x0, noise = torch.randn(1, 2, 3, 4, 4), torch.randn(1, 2, 3, 4, 4)
    levels = torch.tensor([[999, 519, 39]])
    nxt = torch.tensor([[979, 499, -1]])
    xt = scheduler.add_noise(x0, noise, levels)
    pred = oracle_prediction(scheduler, x0, noise, xt, levels)
    out = scheduler.step(pred, levels, xt, next_timestep=nxt).prev_sample
    # At zero SNR (999) an epsilon model cannot recover x0 from x alone; skip that frame for epsilon.
    frames = slice(1, 3) if (kind == "epsilon" and not continuous) else slice(0, 3)
    expected = scheduler.add_noise(x0, noise, nxt)
    torch.testing.assert_close(out[:, :, frames], expected[:, :, frames], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
def test_full_ddim_loop_with_oracle_recovers_x0(kind):
    scheduler = DiffusionForcingScheduler(prediction_type=kind)
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.tolist()[:2] == [999, 899] and scheduler.timesteps[-1] == 99
    x0, noise = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    x = noise.clone()
    for t in scheduler.timesteps:
        # exact epsilon of the current x given x0 (the trajectory drifts from `noise` once x0 estimates are exact)
        a = scheduler.alphas_cumprod[t]
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        pred = {"v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0, "epsilon": eps, "sample": x0}[kind]
        x = scheduler.step(pred, t, x).prev_sample
    torch.testing.assert_close(x, x0, atol=1e-4, rtol=1e-4)


def test_unchanged_and_clean_frames_are_bit_identical_even_with_nan_predictions():
    scheduler = DiffusionForcingScheduler()
    x = torch.randn(2, 3, 4, 5, 5)
    levels = torch.tensor([[-1, 499, 499, 999], [-1, -1, 19, 999]])
    nxt = torch.tensor([[-1, 479, 499, 999], [-1, -1, -1, 979]])
    pred = torch.randn_like(x)
    pred[:, :, 0] = float("nan")  # whatever the model says about a context frame must not leak
    out = scheduler.step(pred, levels, x, next_timestep=nxt, eta=1.0, generator=torch.Generator().manual_seed(0))
    keep = nxt == levels
    for b in range(2):
        for f in range(4):
            if keep[b, f]:
                assert torch.equal(out.prev_sample[b, :, f], x[b, :, f])
            else:
                assert not torch.equal(out.prev_sample[b, :, f], x[b, :, f])
    assert torch.isfinite(out.prev_sample).all()


def test_step_with_eta_has_the_forward_marginal_variance():
    scheduler = DiffusionForcingScheduler()
    x0 = torch.zeros(1, 1, 2, 128, 128)
    noise = torch.randn_like(x0)
    levels, nxt = torch.tensor([[599, 299]]), torch.tensor([[499, 199]])
    xt = scheduler.add_noise(x0, noise, levels)
    pred = scheduler.get_velocity(x0, noise, levels)
    out = scheduler.step(pred, levels, xt, next_timestep=nxt, eta=1.0, generator=torch.Generator().manual_seed(1))
    expected_std = (1 - scheduler.alphas_cumprod[nxt[0]]).sqrt()
    got_std = out.prev_sample[0, 0].flatten(1).std(dim=1)
    torch.testing.assert_close(got_std, expected_std, rtol=0.02, atol=0)
    # with eta > 0 the result is random: it must differ from the deterministic step
    det = scheduler.step(pred, levels, xt, next_timestep=nxt).prev_sample
    assert not torch.allclose(det, out.prev_sample)


def test_step_per_frame_shapes_agree_and_tuple_output():
    scheduler = DiffusionForcingScheduler()
    scheduler.set_timesteps(50)
    x, pred = torch.randn(2, 3, 4, 3, 3), torch.randn(2, 3, 4, 3, 3)
    ref = scheduler.step(pred, torch.full((2, 4), 519), x).prev_sample
    for t in (519, torch.tensor(519), torch.tensor([519, 519]), torch.tensor([519] * 4)):
        assert torch.equal(scheduler.step(pred, t, x).prev_sample, ref)
    torch.testing.assert_close(scheduler.step(pred, 519, x, next_timestep=499).prev_sample, ref)
    out = scheduler.step(pred, 519, x, return_dict=False)
    assert isinstance(out, tuple) and torch.equal(out[0], ref)
    assert isinstance(scheduler.step(pred, 519, x), DiffusionForcingSchedulerOutput)


def test_step_rejects_bad_levels():
    scheduler = DiffusionForcingScheduler()
    x = torch.randn(1, 1, 2, 2, 2)
    with pytest.raises(ValueError, match="next_timestep"):
        scheduler.step(x, 10, x)  # no set_timesteps and no next_timestep
    scheduler.set_timesteps(50)
    with pytest.raises(ValueError, match="DDIM grid"):
        scheduler.step(x, 500, x)
    with pytest.raises(ValueError, match="must not be above"):
        scheduler.step(x, 19, x, next_timestep=39)


# ------------------------------------------------------------------------------------------------ config
def test_config_round_trip_and_compatibles(tmp_path):
    scheduler = continuous_scheduler(prediction_type="epsilon", logsnr_min=-12.0)
    scheduler.save_pretrained(tmp_path)
    assert (tmp_path / "scheduler_config.json").is_file()
    loaded = DiffusionForcingScheduler.from_pretrained(tmp_path)
    strip = lambda config: {k: v for k, v in config.items() if k != "_use_default_values"}  # noqa: E731
    assert strip(loaded.config) == strip(scheduler.config)
    assert torch.equal(loaded.alphas_cumprod, scheduler.alphas_cumprod)
    assert DDIMScheduler in DiffusionForcingScheduler().compatibles
    # (diffusers only carries over values set explicitly, not defaults, to another class)
    ddim = DDIMScheduler.from_config(DiffusionForcingScheduler(prediction_type="v_prediction").config)
    assert ddim.config.prediction_type == "v_prediction"
    back = DiffusionForcingScheduler.from_config(ddim.config)
    assert back.config.prediction_type == "v_prediction"


def test_compatibles_convert_configs_but_keep_the_noise_schedule_only_when_asked():
    """What the class docstring says of `_compatibles`: a DDIM made from the config has linear betas unless given
    `beta_schedule="squaredcos_cap_v2"`, which matches the discrete cosine schedule; the pipeline refuses DDIM."""
    scheduler = DiffusionForcingScheduler()
    plain = DDIMScheduler.from_config(scheduler.config)
    assert plain.config.beta_schedule == "linear"
    assert (plain.alphas_cumprod - scheduler.alphas_cumprod).abs().max() > 0.1
    cosine = DDIMScheduler.from_config(scheduler.config, beta_schedule="squaredcos_cap_v2")
    torch.testing.assert_close(cosine.alphas_cumprod[:-1], scheduler.alphas_cumprod[:-1], rtol=0, atol=1e-6)
    assert scheduler.alphas_cumprod[-1] == 0 and cosine.alphas_cumprod[-1] < 1e-8  # the zero-SNR level
    from diffusers_syn2seq.models import DIT_PRESETS, DFoTTransformer3DModel
    from diffusers_syn2seq.pipelines import Syn2SeqPipeline

    model = DFoTTransformer3DModel(in_channels=3, sample_size=8, max_frames=4, patch_size=4, **DIT_PRESETS["dit-tiny"])
    with pytest.raises(ValueError, match="`scheduler` must be a DiffusionForcingScheduler"):
        Syn2SeqPipeline(transformer=model, scheduler=cosine)
