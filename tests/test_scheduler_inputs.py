# SPDX-License-Identifier: Apache-2.0
"""`DiffusionForcingScheduler` as a diffusers citizen: `trained_betas`, diffusers' timestep and sample layouts, and a
clear error for every bad argument."""

import numpy as np
import pytest
import torch

from diffusers_syn2seq.schedulers import DiffusionForcingScheduler, FlowMatchDiffusionForcingScheduler


def test_trained_betas_define_the_schedule_and_survive_save_load(tmp_path):
    reference = DiffusionForcingScheduler()
    betas = reference.betas.double().numpy()
    scheduler = DiffusionForcingScheduler(trained_betas=betas)
    # The same betas give the same alphas_cumprod as the formula they came from.
    assert torch.allclose(scheduler.alphas_cumprod, reference.alphas_cumprod, atol=1e-6)
    linear = np.linspace(1e-4, 0.02, 50)
    scheduler = DiffusionForcingScheduler(num_train_timesteps=50, trained_betas=linear)
    assert torch.allclose(scheduler.betas.double(), torch.from_numpy(linear), atol=1e-7)
    assert torch.allclose(scheduler.alphas_cumprod.double(), torch.from_numpy(np.cumprod(1 - linear)), atol=1e-6)
    scheduler.save_pretrained(tmp_path)
    loaded = DiffusionForcingScheduler.from_pretrained(tmp_path)
    assert loaded.betas.tolist() == scheduler.betas.tolist()
    assert loaded.noise_embedding_type == "sinusoidal"


def test_one_element_timesteps_broadcast_like_every_diffusers_scheduler():
    scheduler = DiffusionForcingScheduler()
    x0, noise = torch.randn(2, 3, 4, 5, 5), torch.randn(2, 3, 4, 5, 5)
    expected = scheduler.add_noise(x0, noise, 500)
    for t in (torch.tensor([500]), torch.tensor([[500]]), np.int64(500)):
        assert torch.equal(scheduler.add_noise(x0, noise, t), expected)


def test_image_batches_take_one_level_per_sample():
    scheduler = DiffusionForcingScheduler()
    scheduler.set_timesteps(10)
    images, noise = torch.rand(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    noised = scheduler.add_noise(images, noise, scheduler.timesteps[5][None])
    alpha = scheduler.alphas_cumprod[int(scheduler.timesteps[5])]
    assert torch.allclose(noised, alpha.sqrt() * images + (1 - alpha).sqrt() * noise, atol=1e-6)
    per_sample = torch.tensor([899, 499, 99, -1])
    noised = scheduler.add_noise(images, noise, per_sample)
    assert torch.equal(noised[3], images[3])
    out = scheduler.step(0.1 * images, scheduler.timesteps[0], images).prev_sample
    assert out.shape == images.shape
    with pytest.raises(ValueError, match=r"must be a scalar or \(B,\)=\(4,\) for a 4-D sample"):
        scheduler.add_noise(images, noise, torch.tensor([1, 2, 3]))


BAD_CONSTRUCTION = [
    ({"num_train_timesteps": True}, "`num_train_timesteps` must be an integer >= 2, got True"),
    ({"num_train_timesteps": 1000.0}, "`num_train_timesteps` must be an integer >= 2, got 1000.0"),
    ({"num_train_timesteps": 1}, "`num_train_timesteps` must be an integer >= 2, got 1"),
    ({"noise_schedule": "linear"},
     "`noise_schedule` must be one of ('cosine', 'cosine_simple_diffusion'), got 'linear'"),
    ({"prediction_type": None}, "`prediction_type` must be one of"),
    ({"shift": 0.0}, "`shift` must be a finite number > 0, got 0.0"),
    ({"shift": float("nan")}, "`shift` must be a finite number > 0, got nan"),
    ({"cosine_s": float("inf")}, "`cosine_s` must be a finite number >= 0, got inf"),
    ({"logsnr_max": -20.0}, "`logsnr_max` must be above `logsnr_min` (-15.0), got -20.0"),
    ({"model_timestep_scale": -1.0}, "`model_timestep_scale` must be a finite number > 0"),
    ({"beta_clip_min": 2.0}, "`beta_clip_min` must be a finite number in [0, 1], got 2.0"),
    ({"trained_betas": [0.1, 0.3]}, "`trained_betas` must hold one beta per training level (num_train_timesteps=1000)"),
    ({"num_train_timesteps": 3, "trained_betas": [0.1, float("nan"), 0.2]},
     "`trained_betas` must be finite, in [0, 1)"),
    ({"num_train_timesteps": 3, "trained_betas": [0.1, 1.0, 0.2]}, "only the last one may be 1"),
    ({"num_train_timesteps": 2, "trained_betas": ["a", "b"]}, "`trained_betas` must be a 1-D sequence of numbers"),
    ({"noise_schedule": "cosine_simple_diffusion", "num_train_timesteps": 2, "trained_betas": [0.1, 0.2]},
     "need noise_schedule='cosine'"),
]


@pytest.mark.parametrize("kwargs, message", BAD_CONSTRUCTION)
def test_bad_construction_raises_a_clear_error(kwargs, message):
    with pytest.raises(ValueError) as error:
        DiffusionForcingScheduler(**kwargs)
    assert message in str(error.value)


def _step(**kwargs):
    scheduler = DiffusionForcingScheduler()
    scheduler.set_timesteps(10)
    sample = torch.randn(1, 2, 3, 4, 4)
    args = dict(model_output=torch.randn_like(sample), timestep=899, sample=sample) | kwargs
    return scheduler.step(**args)


BAD_CALLS = [
    (lambda s: s.set_timesteps(True), "`num_inference_steps` must be an integer in [1, 1000], got True"),
    (lambda s: s.set_timesteps(2.5), "`num_inference_steps` must be an integer in [1, 1000], got 2.5"),
    (lambda s: s.set_timesteps(0), "`num_inference_steps` must be an integer in [1, 1000], got 0"),
    (lambda s: s.scheduling_matrix(3, 10, "diagonal"), "`schedule` must be one of"),
    (lambda s: s.scheduling_matrix(3, 10, "pyramid", float("inf")), "`uncertainty_scale` must be a finite number"),
    (lambda s: s.scheduling_matrix(2.0, 10), "`num_frames` must be a positive integer, got 2.0"),
    (lambda s: s.add_noise(torch.zeros(1, 1, 2, 2, 2), torch.zeros(1, 1, 2, 2, 3), 5),
     "`noise` must be a tensor of the shape of `original_samples` (1, 1, 2, 2, 2), got (1, 1, 2, 2, 3)"),
    (lambda s: s.add_noise(torch.zeros(1, 1, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2), "500"),
     "`timesteps` must be integer levels (int or tensor), got '500'"),
    (lambda s: s.add_noise(torch.zeros(1, 1, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2), None),
     "`timesteps` must be integer levels (int or tensor), got None"),
    (lambda s: s.add_noise(torch.zeros(1, 1, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2), True),
     "`timesteps` must be integer levels (int or tensor), got True"),
    (lambda s: _step(eta=float("inf")), "`eta` must be a finite number >= 0, got inf"),
    (lambda s: _step(eta=-0.5), "`eta` must be a finite number >= 0, got -0.5"),
    (lambda s: _step(model_output=torch.zeros(1, 2, 3, 4, 5)), "`model_output` must be a tensor of the shape of"),
    (lambda s: _step(variance_noise=torch.zeros(1)), "`variance_noise` must be a tensor of the shape of"),
    (lambda s: _step(timestep=torch.tensor([True])), "`timestep` must be integer levels, got a tensor of dtype"),
]


@pytest.mark.parametrize("call, message", BAD_CALLS)
def test_bad_arguments_raise_a_clear_error(call, message):
    with pytest.raises(ValueError) as error:
        call(DiffusionForcingScheduler())
    assert message in str(error.value)


def test_numpy_integers_are_real_integers(tmp_path):
    scheduler = DiffusionForcingScheduler(num_train_timesteps=np.int64(1000), shift=np.float32(1.0))
    scheduler.save_pretrained(tmp_path)  # the config holds plain Python numbers (numpy scalars are not JSON)
    assert DiffusionForcingScheduler.from_pretrained(tmp_path).config.num_train_timesteps == 1000
    scheduler.set_timesteps(np.int32(10))
    assert scheduler.num_inference_steps == 10 and type(scheduler.num_inference_steps) is int
    assert scheduler.scheduling_matrix(np.int64(2)).shape == (11, 2)


NAN = float("nan")
SCHEDULERS = [DiffusionForcingScheduler, FlowMatchDiffusionForcingScheduler]


def _with(value: float, where: tuple = (0, 0, 1)) -> torch.Tensor:
    tensor = torch.randn(1, 2, 3, 4, 4)
    tensor[where] = value
    return tensor


NON_FINITE_CALLS = [  # (call, message): frame 1 of each tensor holds the NaN / inf, and frame 1 changes level
    (lambda s: s.add_noise(_with(NAN), torch.randn(1, 2, 3, 4, 4), 500),
     "`original_samples` must contain only finite values, got 16 NaN and 0 inf entries (of 96)."),
    (lambda s: s.add_noise(torch.randn(1, 2, 3, 4, 4), _with(float("inf")), 500),
     "`noise` must contain only finite values, got 0 NaN and 16 inf entries (of 96)."),
    (lambda s: s.step(_with(NAN), 499, torch.randn(1, 2, 3, 4, 4), next_timestep=399),
     "`model_output (the frames whose level changes)` must contain only finite values, got 16 NaN and 0 inf"),
    (lambda s: s.step(torch.randn(1, 2, 3, 4, 4), 499, _with(NAN), next_timestep=399),
     "`sample` must contain only finite values, got 16 NaN and 0 inf entries (of 96)."),
    (lambda s: s.step(torch.randn(1, 2, 3, 4, 4), 499, torch.randn(1, 2, 3, 4, 4), next_timestep=399, eta=1.0,
                      variance_noise=_with(NAN)),
     "`variance_noise` must contain only finite values, got 16 NaN and 0 inf entries (of 96)."),
]


@pytest.mark.parametrize("scheduler_class", SCHEDULERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("call, message", NON_FINITE_CALLS)
def test_nan_and_inf_inputs_are_refused_not_propagated(scheduler_class, call, message):
    """Issue 24: `add_noise` and `step` used to return NaN for a NaN input; now they name it."""
    with pytest.raises(ValueError) as error:
        call(scheduler_class())
    assert message in str(error.value)


@pytest.mark.parametrize("scheduler_class", SCHEDULERS, ids=lambda c: c.__name__)
def test_the_finite_check_skips_what_step_never_reads_and_compiled_calls(scheduler_class):
    """A frame that keeps its level may have any prediction (the pipeline's context frames); under `torch.compile`
    the check is skipped (a read-back would break the graph), so NaN passes through there, as in the models."""
    scheduler = scheduler_class()
    sample, prediction = torch.randn(1, 2, 3, 4, 4), _with(NAN, (0, 0, 0))
    levels = torch.tensor([-1, 499, 499])
    out = scheduler.step(prediction, levels, sample, next_timestep=torch.tensor([-1, 399, 399])).prev_sample
    assert torch.equal(out[:, :, 0], sample[:, :, 0]) and torch.isfinite(out).all()
    compiled = torch.compile(lambda x, n: scheduler.add_noise(x, n, 500), backend="eager")
    assert torch.isnan(compiled(_with(NAN), torch.randn(1, 2, 3, 4, 4))).any()
