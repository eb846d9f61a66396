# SPDX-License-Identifier: Apache-2.0
"""Diffusion-forcing scheduler: one noise level per frame, DDIM sampling, scheduling matrices.

Vocabulary used throughout (DFoT's conventions, see `shared/design/dfot.md`):

- A **noise level** (or *level*) is an integer index into the 1000-entry training schedule: `0` is the least
  noisy training level, `num_train_timesteps - 1` (999) is pure noise, and `-1` means *clean* (history / context
  frames, `alpha_cumprod = 1`). Every frame of a video carries its own level, so levels are tensors of shape
  `()`, `(B,)`, `(F,)` or `(B, F)` broadcast over video samples laid out `(B, C, F, H, W)` (diffusers' video layout).
- A **model timestep** is what the DFoT backbone receives for a level; it depends on the schedule kind and is
  produced by :meth:`DiffusionForcingScheduler.model_timesteps` (integer index for the discrete cosine schedule,
  `0.125 * logSNR` for the continuous shifted-cosine schedule).
- A **scheduling matrix** has one row per denoising iteration and one column per generated frame; its entries are
  *step indices* in `0..S` (`S` = number of inference steps, `S` = pure noise, `0` = clean) that
  :func:`step_indices_to_levels` maps to levels on the DDIM grid `-1, 19, 39, ..., 999` (for `S = 50`).

Like diffusers' DDIM scheduler this module holds only the schedule and the sampling maths; which levels a training
batch gets and how its frames are weighted is the training objective's (`diffusers_syn2seq.objective`).
"""

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..validation import check_choice, check_int, check_number, check_positive_int
from .levels import (
    DiffusionForcingSchedulerOutput,
    LevelLike,
    as_levels,
    check_finite_unless_compiling,
    check_same_shape,
    per_frame,
    step_levels,
    step_output,
)

SCHEDULES = ("full_sequence", "autoregressive", "pyramid")
NOISE_SCHEDULES = ("cosine", "cosine_simple_diffusion")
PREDICTION_TYPES = ("v_prediction", "epsilon", "sample")


# ----------------------------------------------------------------------------------------------------------------
# Noise schedules (pure functions, float64 like the official code, which registers them as float32 buffers)
# ----------------------------------------------------------------------------------------------------------------
def cosine_alphas_cumprod(num_train_timesteps: int = 1000, s: float = 0.008) -> torch.Tensor:
    """Improved-DDPM cosine schedule (Nichol & Dhariwal 2021), `alpha_bar(t) = cos^2((t/T + s)/(1 + s) * pi/2)`.

    Returns float64 `(T,)` values for levels `0..T-1`; the last one is 0 (zero terminal SNR by construction).
    """
    t = torch.linspace(0, num_train_timesteps, num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
    alphas_cumprod = torch.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2
    return (alphas_cumprod / alphas_cumprod[0])[1:]


def shifted_cosine_logsnr(
    t: torch.Tensor, logsnr_min: float = -15.0, logsnr_max: float = 15.0, shift: float = 1.0
) -> torch.Tensor:
    """Simple Diffusion's cosine logSNR (Hoogeboom et al. 2023) at continuous time `t` in [0, 1].

    `logSNR(t) = -2 log tan(t_min + t (t_max - t_min)) + 2 log(shift)`, where `t_min`/`t_max` put the unshifted
    logSNR range at `[logsnr_min, logsnr_max]`. A shift < 1 moves every level towards more noise (`shift` =
    base resolution / current resolution; DFoT uses 0.125).
    """
    t = t.to(torch.float64)
    t_min = math.atan(math.exp(-0.5 * logsnr_max))
    t_max = math.atan(math.exp(-0.5 * logsnr_min))
    return -2.0 * torch.log(torch.tan(t_min + t * (t_max - t_min))) + 2.0 * math.log(shift)


def shift_alphas_cumprod(alphas_cumprod: torch.Tensor, shift: float) -> torch.Tensor:
    """Multiply the SNR of every level by `shift**2` (the resolution shift applied to non-logSNR schedules)."""
    snr_scale = shift**2
    return snr_scale * alphas_cumprod / (snr_scale * alphas_cumprod + 1.0 - alphas_cumprod)


def make_alphas_cumprod(
    noise_schedule: str = "cosine",
    num_train_timesteps: int = 1000,
    cosine_s: float = 0.008,
    logsnr_min: float = -15.0,
    logsnr_max: float = 15.0,
    shift: float = 1.0,
    beta_clip_min: float = 1e-9,
) -> torch.Tensor:
    """Float64 `(T,)` cumulative alphas of a DFoT noise schedule.

    Like DFoT's `make_beta_schedule`, the schedule is converted to betas clipped to `[beta_clip_min, 1]` and
    accumulated again, which is what the released checkpoints were trained and sampled with.
    `cosine_simple_diffusion` is the continuous schedule sampled on a `T`-point grid `t = linspace(0, 1, T)`.
    """
    if noise_schedule == "cosine":
        alphas_cumprod = cosine_alphas_cumprod(num_train_timesteps, cosine_s)
        if shift != 1.0:
            alphas_cumprod = shift_alphas_cumprod(alphas_cumprod, shift)
    elif noise_schedule == "cosine_simple_diffusion":
        t = torch.linspace(0, 1, num_train_timesteps, dtype=torch.float64)
        alphas_cumprod = torch.sigmoid(shifted_cosine_logsnr(t, logsnr_min, logsnr_max, shift))
    else:
        raise ValueError(f"`noise_schedule` must be one of {NOISE_SCHEDULES}, got {noise_schedule!r}.")
    alphas = torch.cat([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])
    betas = torch.clip(1.0 - alphas, beta_clip_min, 1.0)
    return torch.cumprod(1.0 - betas, dim=0)


# ----------------------------------------------------------------------------------------------------------------
# Scheduling matrices (pure functions; rows = denoising iterations, columns = frames, entries = step indices)
# ----------------------------------------------------------------------------------------------------------------
def sampling_levels(num_inference_steps: int, num_train_timesteps: int = 1000) -> torch.Tensor:
    """DDIM level grid, ascending: `(S + 1,)` long tensor `[-1, ..., T - 1]`, entry `i` = `-1 + floor(i T / S)`.

    Equals DFoT's `linspace(-1, T - 1, S + 1).long()` (e.g. `-1, 19, 39, ..., 999` for S = 50, T = 1000)
    computed in exact integer arithmetic.
    """
    num_inference_steps = check_int("num_inference_steps", num_inference_steps, 1, num_train_timesteps)
    steps = torch.arange(num_inference_steps + 1, dtype=torch.long)
    return -1 + (steps * num_train_timesteps) // num_inference_steps


def pyramid_schedule(num_frames: int, num_inference_steps: int, uncertainty_scale: float = 1.0) -> torch.Tensor:
    """Diffusion Forcing's pyramid scheduling matrix `M[m, t] = clip(S + floor(t * u) - m, 0, S)`.

    Frame `t` starts denoising `floor(t * u)` iterations after frame 0, so later (more uncertain) frames stay
    noisier. `u = 0` is full-sequence sampling, `u = S` is fully autoregressive (one frame at a time).

    Returns a long tensor `(S + floor((F - 1) u) + 1, F)` of step indices: row 0 is all `S` (pure noise), the last
    row all `0` (clean), every column is non-increasing by at most 1 per row.
    """
    num_frames = check_positive_int("num_frames", num_frames)
    num_inference_steps = check_positive_int("num_inference_steps", num_inference_steps)
    uncertainty_scale = check_number("uncertainty_scale", uncertainty_scale, minimum=0.0)
    offsets = torch.floor(torch.arange(num_frames, dtype=torch.float64) * uncertainty_scale).long()
    num_rows = num_inference_steps + int(offsets[-1]) + 1
    rows = torch.arange(num_rows, dtype=torch.long)[:, None]
    return torch.clamp(num_inference_steps + offsets[None, :] - rows, 0, num_inference_steps)


def full_sequence_schedule(num_frames: int, num_inference_steps: int) -> torch.Tensor:
    """All frames share one level per row: `(S + 1, F)` step indices `S, S - 1, ..., 0` (pyramid with u = 0)."""
    return pyramid_schedule(num_frames, num_inference_steps, 0.0)


def autoregressive_schedule(num_frames: int, num_inference_steps: int) -> torch.Tensor:
    """One frame at a time, each fully denoised before the next starts (pyramid with u = S): `(S F + 1, F)`."""
    return pyramid_schedule(num_frames, num_inference_steps, float(num_inference_steps))


def schedule_step_indices(num_frames: int, num_inference_steps: int, schedule: str = "full_sequence",
                          uncertainty_scale: float = 1.0) -> torch.Tensor:
    """The checked step-index matrix of `schedule` (each scheduler maps it to its grid: `step_indices_to_levels`)."""
    num_frames = check_positive_int("num_frames", num_frames)
    check_choice("schedule", schedule, SCHEDULES)
    uncertainty_scale = check_number("uncertainty_scale", uncertainty_scale, minimum=0.0)
    if schedule == "pyramid":
        return pyramid_schedule(num_frames, num_inference_steps, uncertainty_scale)
    make = full_sequence_schedule if schedule == "full_sequence" else autoregressive_schedule
    return make(num_frames, num_inference_steps)


def step_indices_to_levels(matrix: torch.Tensor, levels_grid: torch.Tensor) -> torch.Tensor:
    """Map step indices `0..S` of a scheduling matrix to noise levels with the ascending grid of `sampling_levels`."""
    return levels_grid.to(matrix.device)[matrix]


def _checked_trained_betas(trained_betas, num_train_timesteps: int, noise_schedule: str) -> torch.Tensor:
    """Float64 `(T,)` betas from `trained_betas`, or a `ValueError` saying why they cannot define the schedule."""
    if noise_schedule != "cosine":
        raise ValueError(
            "`trained_betas` define a discrete schedule (integer levels, sinusoidal noise embedding) and need "
            f"noise_schedule='cosine', got noise_schedule={noise_schedule!r}; the continuous schedule is a formula."
        )
    try:
        betas = torch.as_tensor(np.asarray(trained_betas, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"`trained_betas` must be a 1-D sequence of numbers, got {type(trained_betas).__name__}.")
    if betas.ndim != 1 or betas.numel() != num_train_timesteps:
        raise ValueError(
            f"`trained_betas` must hold one beta per training level (num_train_timesteps={num_train_timesteps}), "
            f"got shape {tuple(betas.shape)}; pass num_train_timesteps=len(trained_betas)."
        )
    # A beta of 1 zeroes every later alpha_bar (0/0 when betas are recovered), so only the last level may be pure noise.
    if not bool(torch.isfinite(betas).all()) or bool((betas < 0).any()) or bool((betas[:-1] >= 1).any()) \
            or bool(betas[-1] > 1):
        raise ValueError(
            "`trained_betas` must be finite, in [0, 1) and only the last one may be 1 (zero terminal SNR), got range "
            f"[{betas.min().item():.3g}, {betas.max().item():.3g}]."
        )
    return betas


class DiffusionForcingScheduler(SchedulerMixin, ConfigMixin):
    """Stateless DDIM scheduler with an independent noise level per frame (Diffusion Forcing / DFoT).

    Two noise schedules, both with `num_train_timesteps` levels:

    - `"cosine"` (default): DFoT's discrete 1000-step cosine schedule (Kinetics-600 models); the backbone receives
      the integer level (`noise_embedding_type="sinusoidal"`).
    - `"cosine_simple_diffusion"`: the continuous shifted cosine schedule (RealEstate10K / Minecraft models), logSNR
      in `[logsnr_min, logsnr_max]` shifted by `2 log(shift)` (DFoT: `shift=0.125`), sampled on a
      `num_train_timesteps`-point grid; the backbone receives `model_timestep_scale * logSNR`
      (`noise_embedding_type="fourier"`). Training may use continuous times `t in [0, 1]` (float levels).

    Levels are integer indices `-1..T-1` (`-1` = clean) or, for the continuous schedule only, float times in
    `[0, 1]`. Nothing in `step` depends on hidden counters: the next level is given (`next_timestep`) or looked up
    per element on the grid of :meth:`set_timesteps`, so one scheduler serves every frame.

    Args:
        num_train_timesteps: number of training levels (grid size).
        noise_schedule: `"cosine"` or `"cosine_simple_diffusion"`.
        cosine_s: offset `s` of the discrete cosine schedule.
        logsnr_min, logsnr_max: unshifted logSNR range of the continuous schedule.
        shift: SNR shift; the logSNR moves by `2 log(shift)` (for `"cosine"` the SNR is scaled by `shift**2`).
        prediction_type: what the model predicts: `"v_prediction"` (DFoT), `"epsilon"` or `"sample"`.
        model_timestep_scale: factor on logSNR fed to continuous models (DFoT's `precond_scale`, 0.125).
        beta_clip_min: lower clip of the betas when the schedule is built (as in DFoT's `make_beta_schedule`).
        trained_betas: explicit betas, one per training level (`num_train_timesteps` of them), instead of the cosine
            formula; a discrete schedule (`noise_schedule="cosine"`, integer levels for a sinusoidal-embedding model),
            clipped below at `beta_clip_min` and shifted by `shift` like the cosine one. The continuous schedule has
            no betas to replace (its levels may be any time in [0, 1]), so it refuses them.

    Samples are videos `(B, C, F, H, W)` with per-frame levels; any other layout (an image batch `(B, C, H, W)`,
    diffusers' common scheduler tests) takes one level per sample (scalar, one-element or `(B,)` levels).

    `compatibles` (`_compatibles`: DDIM, DDPM) means what diffusers uses it for: their configs and this one convert
    into each other with `from_config` (each class drops the other's keys), so tools that list or convert schedulers
    can. It does not mean they can replace this scheduler: `Syn2SeqPipeline` needs per-frame levels and accepts only
    a `DiffusionForcingScheduler`. A `DDIMScheduler.from_config(config)` keeps `num_train_timesteps` and
    `prediction_type` but not the noise schedule (DDIM's default is linear betas): pass
    `beta_schedule="squaredcos_cap_v2"` to get the discrete cosine schedule (`shift=1`; alphas within 3e-7 except
    the zero-SNR last level); the continuous and shifted schedules have no DDIM equivalent (tested).
    """

    # Configs convert with `from_config` both ways; not a replacement in the pipeline (class docstring).
    _compatibles = ["DDIMScheduler", "DDPMScheduler"]
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        noise_schedule: Literal["cosine", "cosine_simple_diffusion"] = "cosine",
        cosine_s: float = 0.008,
        logsnr_min: float = -15.0,
        logsnr_max: float = 15.0,
        shift: float = 1.0,
        prediction_type: Literal["v_prediction", "epsilon", "sample"] = "v_prediction",
        model_timestep_scale: float = 0.125,
        beta_clip_min: float = 1e-9,
        trained_betas: np.ndarray | Sequence[float] | None = None,
    ):
        check_choice("noise_schedule", noise_schedule, NOISE_SCHEDULES)
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        num_train_timesteps = check_int("num_train_timesteps", num_train_timesteps, minimum=2)
        cosine_s = check_number("cosine_s", cosine_s, minimum=0.0)
        logsnr_min = check_number("logsnr_min", logsnr_min)
        if not check_number("logsnr_max", logsnr_max) > logsnr_min:
            raise ValueError(f"`logsnr_max` must be above `logsnr_min` ({logsnr_min}), got {logsnr_max!r}.")
        shift = check_number("shift", shift, minimum=0.0, open_min=True)
        check_number("model_timestep_scale", model_timestep_scale, minimum=0.0, open_min=True)
        beta_clip_min = check_number("beta_clip_min", beta_clip_min, minimum=0.0, maximum=1.0)
        if trained_betas is None:
            alphas_cumprod = make_alphas_cumprod(
                noise_schedule, num_train_timesteps, cosine_s, logsnr_min, float(logsnr_max), shift, beta_clip_min
            )
        else:
            betas = _checked_trained_betas(trained_betas, num_train_timesteps, noise_schedule)
            alphas_cumprod = torch.cumprod(1.0 - torch.clip(betas, beta_clip_min, 1.0), dim=0)
            if shift != 1.0:
                alphas_cumprod = shift_alphas_cumprod(alphas_cumprod, shift)
            trained_betas = betas.tolist()
        # The config keeps plain Python values (numpy scalars and arrays are not JSON).
        self.register_to_config(
            num_train_timesteps=num_train_timesteps, cosine_s=cosine_s, logsnr_min=logsnr_min,
            logsnr_max=float(logsnr_max), shift=shift, model_timestep_scale=float(model_timestep_scale),
            beta_clip_min=beta_clip_min, trained_betas=trained_betas,
        )
        self.alphas_cumprod = alphas_cumprod.to(torch.float32)
        self.betas = (1.0 - torch.cat([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])).float()
        # logSNR of each grid level; -inf at a zero-SNR level (only the discrete schedule has one).
        self.log_snr = (torch.log(alphas_cumprod) - torch.log1p(-alphas_cumprod)).to(torch.float32)
        self.init_noise_sigma = 1.0
        self.num_inference_steps: int | None = None
        self.timesteps = torch.flip(sampling_levels(num_train_timesteps, num_train_timesteps), [0])[:-1]

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def is_continuous(self) -> bool:
        """True for the continuous shifted-cosine schedule (float levels allowed, logSNR model timesteps)."""
        return self.config.noise_schedule == "cosine_simple_diffusion"

    @property
    def noise_embedding_type(self) -> str:
        """The backbone noise embedding this schedule's model timesteps are meant for (`sinusoidal` / `fourier`)."""
        return "fourier" if self.is_continuous else "sinusoidal"

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    # ------------------------------------------------------------------------------------------------ level maths
    def _check_levels(self, levels: LevelLike, name: str = "timesteps") -> torch.Tensor:
        levels = as_levels(levels, name)
        if levels.is_floating_point():
            if not self.is_continuous:
                raise ValueError(
                    f"`{name}` must be integer levels in [-1, "
                    f"{self.config.num_train_timesteps - 1}] for the discrete schedule, got dtype {levels.dtype}."
                )
            if levels.numel() and not bool(((levels >= 0) & (levels <= 1)).all()):
                raise ValueError(
                    f"float `{name}` are continuous times and must lie in [0, 1], got min {levels.min().item()}"
                    f" and max {levels.max().item()}."
                )
            return levels
        levels = levels.long()
        if levels.numel() and not bool(((levels >= -1) & (levels < self.config.num_train_timesteps)).all()):
            raise ValueError(
                f"`{name}` must be integer levels in [-1, {self.config.num_train_timesteps - 1}], got min"
                f" {levels.min().item()} and max {levels.max().item()}."
            )
        return levels

    def log_snr_at(self, levels: LevelLike) -> torch.Tensor:
        """Float32 logSNR of `levels` (same shape); `+inf` for level -1, exact formula for float (continuous) times."""
        levels = self._check_levels(levels)
        if levels.is_floating_point():
            return shifted_cosine_logsnr(
                levels, self.config.logsnr_min, self.config.logsnr_max, self.config.shift
            ).to(torch.float32)
        table = self.log_snr.to(levels.device)
        out = table[levels.clamp(min=0)]
        return torch.where(levels < 0, torch.full_like(out, float("inf")), out)

    def alphas_cumprod_at(self, levels: LevelLike) -> torch.Tensor:
        """Float32 `alpha_bar` of `levels` (same shape): 1 for level -1 (clean context)."""
        levels = self._check_levels(levels)
        if levels.is_floating_point():
            return torch.sigmoid(self.log_snr_at(levels))
        table = self.alphas_cumprod.to(levels.device)
        out = table[levels.clamp(min=0)]
        return torch.where(levels < 0, torch.ones_like(out), out)

    def model_timesteps(self, levels: LevelLike) -> torch.Tensor:
        """What the DFoT backbone receives for per-frame `levels` (same shape).

        - discrete cosine (`sinusoidal` embedding): the integer level, with -1 (clean) clamped to 0, as DFoT does;
        - continuous (`fourier` embedding): `model_timestep_scale * logSNR` (float32), where level -1 is clamped to
          grid level 0 like DFoT's sampler (the least noisy level it was trained on).
        """
        levels = self._check_levels(levels)
        if not self.is_continuous:
            return levels.clamp(min=0)
        if not levels.is_floating_point():
            levels = levels.clamp(min=0)
        return self.config.model_timestep_scale * self.log_snr_at(levels)

    def _alpha_sigma(self, levels: LevelLike, sample: torch.Tensor, name: str = "timesteps"):
        # Levels are checked and looked up where they are (numbers: on the CPU) and only alpha is moved to the
        # sample: CPU levels for a GPU sample cost no host synchronisation (the value checks of device levels do).
        levels = as_levels(levels, name)
        alpha = self.alphas_cumprod_at(per_frame(levels, sample, name)).to(sample.device)
        return alpha.sqrt(), (1.0 - alpha).clamp(min=0).sqrt()

    # ------------------------------------------------------------------------------------------------ conversions
    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: LevelLike) -> torch.Tensor:
        """Forward process `x_k = sqrt(alpha_bar_k) x0 + sqrt(1 - alpha_bar_k) noise`, per frame.

        Args:
            original_samples: clean `(B, C, F, H, W)`.
            noise: standard normal, same shape.
            timesteps: levels, scalar / `(B,)` / `(F,)` / `(B, F)`; `-1` leaves the frame clean.
        """
        check_same_shape("noise", noise, "original_samples", original_samples)
        sqrt_alpha, sqrt_one_minus = self._alpha_sigma(timesteps, original_samples)
        check_finite_unless_compiling(original_samples=original_samples, noise=noise)
        out = sqrt_alpha * original_samples.float() + sqrt_one_minus * noise.float()
        return out.to(original_samples.dtype)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: LevelLike) -> torch.Tensor:
        """v target `v = sqrt(alpha_bar) noise - sqrt(1 - alpha_bar) x0` (`sample` is the clean x0)."""
        sqrt_alpha, sqrt_one_minus = self._alpha_sigma(timesteps, sample)
        return (sqrt_alpha * noise.float() - sqrt_one_minus * sample.float()).to(sample.dtype)

    def get_target(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: LevelLike) -> torch.Tensor:
        """Training target in the `prediction_type` space for clean `sample` noised with `noise`."""
        if self.config.prediction_type == "v_prediction":
            return self.get_velocity(sample, noise, timesteps)
        return noise if self.config.prediction_type == "epsilon" else sample

    def convert_model_output(
        self, model_output: torch.Tensor, sample: torch.Tensor, timesteps: LevelLike
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return float32 `(x0, epsilon)` estimates from a prediction in `prediction_type` space at noisy `sample`.

        v: `x0 = sqrt(a) x - sqrt(1-a) v`, `eps = sqrt(a) v + sqrt(1-a) x`; epsilon / sample: the DDIM identities.
        At zero SNR (a = 0, level 999 of the discrete cosine) x0 is undefined for epsilon prediction; the division
        is clamped, which is harmless because DDIM multiplies that x0 by `sqrt(a_next)`, tiny after the first step.
        """
        sqrt_alpha, sqrt_one_minus = self._alpha_sigma(timesteps, sample)
        return self._x0_eps(model_output, sample, sqrt_alpha, sqrt_one_minus)

    def _x0_eps(self, model_output, sample, sqrt_alpha, sqrt_one_minus):
        x, out = sample.float(), model_output.float()
        kind = self.config.prediction_type
        if kind == "v_prediction":
            x0 = sqrt_alpha * x - sqrt_one_minus * out
            eps = sqrt_alpha * out + sqrt_one_minus * x
        elif kind == "epsilon":
            eps = out
            x0 = (x - sqrt_one_minus * eps) / sqrt_alpha.clamp(min=1e-12)
        else:
            x0 = out
            eps = (x - sqrt_alpha * x0) / sqrt_one_minus.clamp(min=1e-12)
        return x0, eps

    def convert_to_prediction(
        self, x0: torch.Tensor, eps: torch.Tensor, sample: torch.Tensor, timesteps: LevelLike
    ) -> torch.Tensor:
        """Inverse of :meth:`convert_model_output`: express `(x0, eps)` in `prediction_type` space."""
        if self.config.prediction_type == "epsilon":
            return eps
        if self.config.prediction_type == "sample":
            return x0
        sqrt_alpha, sqrt_one_minus = self._alpha_sigma(timesteps, sample)
        return sqrt_alpha * eps - sqrt_one_minus * x0

    # ------------------------------------------------------------------------------------------------ sampling
    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Set the DDIM grid: `self.timesteps` = the `S` levels the model is evaluated at, descending
        (`999, 979, ..., 19` for S = 50); the level after the last one is -1 (clean)."""
        num_inference_steps = check_int("num_inference_steps", num_inference_steps, 1, self.config.num_train_timesteps)
        grid = sampling_levels(num_inference_steps, self.config.num_train_timesteps)
        self.num_inference_steps = num_inference_steps
        self.timesteps = torch.flip(grid, [0])[:-1].to(device)

    def sampling_levels(self, num_inference_steps: int | None = None) -> torch.Tensor:
        """Ascending `(S + 1,)` level grid `[-1, ..., T - 1]` (default S: the one of :meth:`set_timesteps`)."""
        return sampling_levels(self._steps(num_inference_steps), self.config.num_train_timesteps)

    def _steps(self, num_inference_steps: int | None) -> int:
        """The given number of inference steps (checked), else the one of :meth:`set_timesteps`."""
        if num_inference_steps is None:
            if self.num_inference_steps is None:
                raise ValueError("`num_inference_steps` is required when `set_timesteps` has not been called.")
            return self.num_inference_steps
        return check_int("num_inference_steps", num_inference_steps, 1, self.config.num_train_timesteps)

    def scheduling_matrix(self, num_frames: int, num_inference_steps: int | None = None,
                          schedule: str = "full_sequence", uncertainty_scale: float = 1.0) -> torch.Tensor:
        """Per-frame noise levels for every denoising iteration: long tensor `(R, F)`.

        Row 0 is all `T - 1` (pure noise), the last row all `-1` (clean); each iteration moves a frame at most one
        step down the DDIM grid. `schedule` is `"full_sequence"`, `"autoregressive"` or `"pyramid"` (uses
        `uncertainty_scale`, see :func:`pyramid_schedule`). The number of model evaluations is `R - 1`.
        """
        steps = self._steps(num_inference_steps)
        matrix = schedule_step_indices(num_frames, steps, schedule, uncertainty_scale)
        return step_indices_to_levels(matrix, self.sampling_levels(steps))

    def _next_on_grid(self, levels: torch.Tensor) -> torch.Tensor:
        if self.num_inference_steps is None:
            raise ValueError("Pass `next_timestep` to `step`, or call `set_timesteps` first.")
        grid = self.sampling_levels().to(levels.device)
        index = torch.searchsorted(grid, levels.contiguous())
        index = index.clamp(max=grid.numel() - 1)
        if not bool((grid[index] == levels).all()):
            raise ValueError(
                f"`timestep` levels must lie on the DDIM grid of `set_timesteps({self.num_inference_steps})` when "
                f"`next_timestep` is not given, got {levels.unique().tolist()}."
            )
        return grid[(index - 1).clamp(min=0)]

    def scale_model_input(self, sample: torch.Tensor, timestep: LevelLike | None = None) -> torch.Tensor:
        """DDIM needs no input scaling; present for interchangeability with other schedulers."""
        return sample

    def step(
        self,
        model_output: torch.Tensor,
        timestep: LevelLike,
        sample: torch.Tensor,
        next_timestep: LevelLike | None = None,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> DiffusionForcingSchedulerOutput | tuple:
        """One DDIM step per frame, from level `timestep` to level `next_timestep` (Song et al. 2021, eq. 12).

        `x_next = sqrt(a_next) x0 + sqrt(1 - a_next - sigma^2) eps + sigma z`, with
        `sigma = eta sqrt((1 - a / a_next)(1 - a_next) / (1 - a))` (0 when the next level is -1).

        Args:
            model_output: prediction in `prediction_type` space, `(B, C, F, H, W)`.
            timestep: current integer levels: scalar, `(B,)`, `(F,)` or `(B, F)`; -1 = clean context.
            sample: the current noisy sample `(B, C, F, H, W)`.
            next_timestep: target levels, same conventions; default: the next lower level on the grid of
                :meth:`set_timesteps` (-1 after the lowest). Frames with `next == current` are returned
                bit-identical (this is how history and not-yet-started frames are kept), and levels may never rise.
            eta: DDIM stochasticity (0 = deterministic DDIM, 1 = DDPM-like variance).
            generator: generator(s) for the `eta > 0` noise; a list draws each batch element from its own generator.
            variance_noise: explicit noise `z` instead of drawing it.
            return_dict: return a :class:`DiffusionForcingSchedulerOutput` (else a tuple).
        """
        eta, levels, next_levels = step_levels(self._check_levels, self._next_on_grid, model_output, timestep, sample,
                                               next_timestep, eta, variance_noise)
        alpha = self.alphas_cumprod_at(levels).to(sample.device)
        alpha_next = self.alphas_cumprod_at(next_levels).to(sample.device)
        x0, eps = self._x0_eps(model_output, sample, alpha.sqrt(), (1.0 - alpha).clamp(min=0).sqrt())
        changed = next_levels != levels

        sigma = torch.zeros_like(alpha)
        if eta > 0:
            # Guard the unchanged / clean frames (a = 1 -> 0/0); they are masked out below anyway.
            ratio = (1.0 - alpha / alpha_next.clamp(min=1e-12)) * (1.0 - alpha_next) / (1.0 - alpha).clamp(min=1e-12)
            sigma = torch.where(changed & (next_levels >= 0), eta * ratio.clamp(min=0).sqrt(), sigma)
        prev = alpha_next.sqrt() * x0 + (1.0 - alpha_next - sigma**2).clamp(min=0).sqrt() * eps
        return step_output(prev, sigma, x0, model_output, sample, changed, eta, generator, variance_noise,
                           return_dict)
