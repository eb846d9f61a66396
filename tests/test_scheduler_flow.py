# SPDX-License-Identifier: Apache-2.0
"""Tests of `FlowMatchDiffusionForcingScheduler`: rectified flow with DFoT's per-frame integer levels."""

import pytest
import torch

from diffusers_syn2seq.objective import loss_weights
from diffusers_syn2seq.schedulers import (
    DiffusionForcingSchedulerOutput,
    FlowMatchDiffusionForcingScheduler,
    flow_sampling_levels,
    shift_sigmas,
)


def video(seed: int, shape=(2, 3, 5, 4, 4)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ levels
def test_level_convention_sigma_and_model_timesteps():
    scheduler = FlowMatchDiffusionForcingScheduler()
    levels = torch.tensor([[-1, 0, 19, 499, 999]])
    assert torch.equal(scheduler.sigmas_at(levels), torch.tensor([[0.0, 0.001, 0.02, 0.5, 1.0]]))
    # SkyReels feeds sigma * 1000; its clean prefix gets 0 and `addnoise_condition=20` is sigma 0.02 (level 19).
    assert torch.allclose(scheduler.model_timesteps(levels), torch.tensor([[0.0, 1.0, 20.0, 500.0, 1000.0]]))
    assert scheduler.noise_embedding_type == "flow" and not scheduler.is_continuous and len(scheduler) == 1000
    # equivalent VP values: SNR = (1 - sigma)^2 / sigma^2
    assert scheduler.alphas_cumprod_at(-1) == 1 and scheduler.alphas_cumprod_at(999) == 0
    assert torch.isclose(scheduler.log_snr_at(torch.tensor(499)), torch.tensor(0.0), atol=1e-6)


def test_add_noise_is_the_flow_interpolation_and_clean_frames_stay_exact():
    scheduler = FlowMatchDiffusionForcingScheduler()
    x0, eps = video(0), video(1)
    levels = torch.tensor([[-1, 99, 499, 998, 999], [999, -1, 0, 19, 249]])
    noisy = scheduler.add_noise(x0, eps, levels)
    sigma = ((levels + 1) / 1000.0)[:, None, :, None, None]
    assert torch.allclose(noisy, (1 - sigma) * x0 + sigma * eps, atol=1e-6)
    assert torch.equal(noisy[0, :, 0], x0[0, :, 0]) and torch.equal(noisy[1, :, 1], x0[1, :, 1])
    assert torch.equal(noisy[0, :, 4], eps[0, :, 4])


def test_round_trips_x0_eps_velocity():
    scheduler = FlowMatchDiffusionForcingScheduler()
    x0, eps = video(2), video(3)
    levels = torch.tensor([[0, 19, 300, 700, 999], [5, 50, 500, 900, 10]])
    noisy = scheduler.add_noise(x0, eps, levels)
    target = scheduler.get_target(x0, eps, levels)
    assert torch.equal(target, eps - x0)
    x0_hat, eps_hat = scheduler.convert_model_output(target, noisy, levels)
    assert torch.allclose(x0_hat, x0, atol=1e-5) and torch.allclose(eps_hat, eps, atol=1e-5)
    assert torch.allclose(scheduler.convert_to_prediction(x0_hat, eps_hat, noisy, levels), target, atol=1e-5)


# ------------------------------------------------------------------------------------------------ steps
@pytest.mark.parametrize("current, following", [(999, 979), (499, 19), (19, -1), (999, -1), (300, 299)])
def test_one_step_with_exact_velocity_lands_on_add_noise(current, following):
    scheduler = FlowMatchDiffusionForcingScheduler()
    x0, eps = video(4), video(5)
    sample = scheduler.add_noise(x0, eps, current)
    out = scheduler.step(scheduler.get_target(x0, eps, current), current, sample, next_timestep=following)
    assert isinstance(out, DiffusionForcingSchedulerOutput)
    assert torch.allclose(out.prev_sample, scheduler.add_noise(x0, eps, following), atol=2e-6)
    assert torch.allclose(out.pred_original_sample, x0, atol=2e-6)


def test_step_is_the_euler_step_and_keeps_unchanged_frames_bit_identical():
    scheduler = FlowMatchDiffusionForcingScheduler()
    sample, velocity = video(6), video(7)
    levels = torch.tensor([[-1, 19, 500, 999, 999]])
    following = torch.tensor([[-1, 19, 400, 899, 999]])
    prev = scheduler.step(velocity, levels, sample, next_timestep=following).prev_sample
    delta = ((following - levels) / 1000.0)[:, None, :, None, None]
    assert torch.allclose(prev, sample + delta * velocity, atol=2e-6)
    for frame in (0, 1, 4):
        assert torch.equal(prev[:, :, frame], sample[:, :, frame])


def test_stochastic_step_keeps_the_marginal_and_eta_zero_is_deterministic():
    scheduler = FlowMatchDiffusionForcingScheduler()
    x0, eps, z = video(8), video(9), video(10)
    sample = scheduler.add_noise(x0, eps, 799)
    velocity = scheduler.get_target(x0, eps, 799)
    ddim = scheduler.step(velocity, 799, sample, next_timestep=399).prev_sample
    assert torch.equal(ddim, scheduler.step(velocity, 799, sample, next_timestep=399, eta=0.0).prev_sample)
    stochastic = scheduler.step(velocity, 799, sample, next_timestep=399, eta=1.0, variance_noise=z).prev_sample
    a, b = 0.8, 0.4
    std = b * (1 - (b * (1 - a) / (a * (1 - b))) ** 2) ** 0.5
    expected = (1 - b) * x0 + (b**2 - std**2) ** 0.5 * eps + std * z  # noise variance b^2 in total: on the marginal
    assert torch.allclose(stochastic, expected, atol=1e-5)
    from_noise = scheduler.step(velocity, 999, sample, next_timestep=399, eta=1.0, variance_noise=z).prev_sample
    assert torch.allclose(from_noise, (1 - b) * (sample - velocity) + b * z, atol=1e-5)  # pure noise: fresh noise
    generator = torch.Generator().manual_seed(0)
    first = scheduler.step(velocity, 799, sample, next_timestep=399, eta=1.0, generator=generator).prev_sample
    again = scheduler.step(velocity, 799, sample, next_timestep=399, eta=1.0,
                           generator=torch.Generator().manual_seed(0)).prev_sample
    assert torch.equal(first, again) and not torch.equal(first, ddim)
    to_clean = scheduler.step(velocity, 799, sample, next_timestep=-1, eta=1.0, variance_noise=z).prev_sample
    assert torch.allclose(to_clean, x0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ grids
@pytest.mark.parametrize("steps, shift", [(1, 5.0), (10, 1.0), (50, 5.0), (50, 8.0), (400, 8.0), (1000, 3.0)])
def test_shifted_grid_is_strictly_increasing_from_clean_to_noise(steps, shift):
    grid = flow_sampling_levels(steps, 1000, shift)
    assert grid.shape == (steps + 1,) and grid[0] == -1 and grid[-1] == 999
    assert bool((grid[1:] > grid[:-1]).all())


def test_shifted_grid_follows_the_shift_formula():
    grid = FlowMatchDiffusionForcingScheduler(shift=8.0).sampling_levels(10)
    sigmas = shift_sigmas(torch.arange(11, dtype=torch.float64) / 10, 8.0)
    assert torch.equal(grid, (torch.round(sigmas * 1000) - 1).long())
    assert torch.equal(flow_sampling_levels(4, 1000, 1.0), torch.tensor([-1, 249, 499, 749, 999]))
    # a larger shift keeps more of the steps at high noise
    assert (flow_sampling_levels(10, 1000, 8.0) >= flow_sampling_levels(10, 1000, 5.0)).all()


def test_set_timesteps_and_scheduling_matrix_use_the_shifted_grid():
    scheduler = FlowMatchDiffusionForcingScheduler(shift=5.0)
    scheduler.set_timesteps(10)
    grid = scheduler.sampling_levels()
    assert torch.equal(scheduler.timesteps, grid.flip(0)[:-1])
    for schedule in ("full_sequence", "autoregressive", "pyramid"):
        matrix = scheduler.scheduling_matrix(3, 10, schedule, 2.0)
        assert (matrix[0] == 999).all() and (matrix[-1] == -1).all()
        assert set(matrix.unique().tolist()) <= set(grid.tolist())
        assert bool((matrix[1:] <= matrix[:-1]).all())
    # without next_timestep, a step goes to the next grid entry
    x0, eps = video(11), video(12)
    current = int(grid[6])
    sample = scheduler.add_noise(x0, eps, current)
    prev = scheduler.step(scheduler.get_target(x0, eps, current), current, sample).prev_sample
    assert torch.allclose(prev, scheduler.add_noise(x0, eps, int(grid[5])), atol=2e-6)


def test_config_round_trip(tmp_path):
    scheduler = FlowMatchDiffusionForcingScheduler(shift=8.0, num_train_timesteps=500)
    scheduler.save_pretrained(tmp_path)
    loaded = FlowMatchDiffusionForcingScheduler.from_pretrained(tmp_path)
    assert loaded.config.shift == 8.0 and loaded.config.num_train_timesteps == 500
    assert torch.equal(loaded.sampling_levels(20), scheduler.sampling_levels(20))


def test_flow_loss_weights_convert_epsilon_weights_to_velocity_space():
    scheduler = FlowMatchDiffusionForcingScheduler()
    levels = torch.tensor([[0, 199, 499, 899, 999]])
    sigma = (levels + 1).double() / 1000
    weights = loss_weights(scheduler, levels, "sigmoid", sigmoid_bias=-1.0)
    log_snr = 2 * (torch.log1p(-sigma) - torch.log(sigma))
    assert torch.allclose(weights.double(), torch.sigmoid(-1.0 - log_snr) * (1 - sigma) ** 2, atol=1e-6)
    assert torch.equal(loss_weights(scheduler, levels, "uniform"), torch.ones(1, 5))


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs, message", [
    ({"shift": 0.0}, "`shift` must be"),
    ({"shift": -1.0}, "`shift` must be"),
    ({"shift": float("nan")}, "`shift` must be"),
    ({"num_train_timesteps": 1}, "`num_train_timesteps` must be"),
    ({"num_train_timesteps": 10.5}, "`num_train_timesteps` must be"),
    ({"prediction_type": "v_prediction"}, "`prediction_type` must be one of"),
    ({"timestep_scale": 0}, "`timestep_scale` must be"),
])
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FlowMatchDiffusionForcingScheduler(**kwargs)


@pytest.mark.parametrize("call, message", [
    (lambda s, x: s.add_noise(x, x, 1000), r"`timesteps` must be integer levels in \[-1, 999\], got min 1000"),
    (lambda s, x: s.add_noise(x, x, -2), r"`timesteps` must be integer levels in \[-1, 999\], got min -2"),
    (lambda s, x: s.add_noise(x, x, 0.5), r"`timesteps` must be integer levels .* got dtype torch.float32"),
    (lambda s, x: s.add_noise(x, x[:1], 3), r"`noise` must be a tensor of the shape of `original_samples`"),
    (lambda s, x: s.add_noise(x, x, torch.zeros(3, 5).long()), r"2-D `timesteps` must broadcast to \(B, F\)"),
    (lambda s, x: s.step(x, 10, x, next_timestep=20), "`next_timestep` must not be above `timestep`"),
    (lambda s, x: s.step(x, 10, x, next_timestep=-1, eta=-1), "`eta` must be"),
    (lambda s, x: s.step(x, True, x, next_timestep=-1), "`timestep` must be integer levels"),
    (lambda s, x: s.step(x, 10, x), r"Pass `next_timestep` to `step`, or call `set_timesteps` first"),
    (lambda s, x: s.sampling_levels(0), "`num_inference_steps` must be"),
    (lambda s, x: s.sampling_levels(1001), "`num_inference_steps` must be"),
    (lambda s, x: s.scheduling_matrix(3, 10, "diagonal"), "`schedule` must be one of"),
])
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call(FlowMatchDiffusionForcingScheduler(), video(13))
