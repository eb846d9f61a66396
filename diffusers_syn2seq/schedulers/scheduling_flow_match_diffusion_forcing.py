# SPDX-License-Identifier: Apache-2.0
"""Per-frame rectified-flow (flow-matching) diffusion-forcing scheduler, for SkyReels-V2 DF / Wan backbones.

It keeps the integer *level* convention of :class:`DiffusionForcingScheduler`, so the pipeline's scheduling
matrices, history guidance and stabilisation work unchanged: level `-1` is clean, `T - 1` pure noise, and level `k`
has the noise fraction `sigma = (k + 1) / T` (level 19 = sigma 0.02 for T = 1000, SkyReels' `addnoise_condition=20`).

Rectified flow (SkyReels-V2 DF, Wan): `x_sigma = (1 - sigma) x0 + sigma eps`, the model predicts the velocity
`v = eps - x0` and receives `sigma * 1000`. A deterministic step from `sigma_a` to `sigma_b` is the Euler step
`x_b = x_a + (sigma_b - sigma_a) v`, which is DDIM written in flow form; `eta > 0` is DDIM's stochastic variant
(`eta = 1`: ancestral sampling).
"""

from typing import Literal

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..validation import check_choice, check_int, check_number
from .levels import as_levels, check_finite_unless_compiling, per_frame, step_levels, step_output
from .scheduling_diffusion_forcing import (
    DiffusionForcingScheduler,
    DiffusionForcingSchedulerOutput,
    LevelLike,
    check_same_shape,
    schedule_step_indices,
    step_indices_to_levels,
)

FLOW_PREDICTION_TYPES = ("flow_prediction",)


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """The flow-matching resolution shift `shift * s / (1 + (shift - 1) s)` (SD3, Wan, SkyReels `flow_shift`):
    monotone on [0, 1] with fixed ends 0 and 1; `shift > 1` spends more steps at high noise."""
    return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


def flow_sampling_levels(num_inference_steps: int, num_train_timesteps: int = 1000, shift: float = 1.0
                         ) -> torch.Tensor:
    """Ascending `(S + 1,)` long level grid `[-1, ..., T - 1]` of a shifted flow schedule.

    Entry `i` is the level nearest to `sigma_i = shift(i / S)` (`level = round(T sigma) - 1`); where rounding would
    merge neighbouring entries (many steps, a large shift) they are pushed apart by one level, so the grid is strictly
    increasing, starts at -1 (clean) and ends at `T - 1` (pure noise).
    """
    num_inference_steps = check_int("num_inference_steps", num_inference_steps, 1, num_train_timesteps)
    shift = check_number("shift", shift, minimum=0.0, open_min=True)
    sigmas = shift_sigmas(torch.arange(num_inference_steps + 1, dtype=torch.float64) / num_inference_steps, shift)
    levels = (torch.round(sigmas * num_train_timesteps) - 1).long().tolist()
    levels[0], levels[-1] = -1, num_train_timesteps - 1
    for i in range(1, len(levels) - 1):  # at least one level above the previous entry ...
        levels[i] = max(levels[i], levels[i - 1] + 1)
    for i in range(len(levels) - 2, -1, -1):  # ... and one below the next (S <= T leaves room for both)
        levels[i] = min(levels[i], levels[i + 1] - 1)
    return torch.tensor(levels, dtype=torch.long)


class FlowMatchDiffusionForcingScheduler(SchedulerMixin, ConfigMixin):
    """Stateless rectified-flow scheduler with an independent noise level per frame (SkyReels-V2 DF, Wan).

    The public surface is that of :class:`DiffusionForcingScheduler` (`add_noise`, `get_target`, `model_timesteps`,
    `convert_model_output`, `convert_to_prediction`, `set_timesteps`, `sampling_levels`, `scheduling_matrix`,
    `step`), with the same level convention: integers `-1..T-1`, one per frame, `-1` clean. Level `k` is the noise
    fraction `sigma = (k + 1) / T`; `alphas_cumprod_at` / `log_snr_at` give the equivalent variance-preserving
    values (`SNR = (1 - sigma)^2 / sigma^2`) so that the training objective's loss weightings apply.

    Args:
        num_train_timesteps: number of levels `T` (sigma resolution `1 / T`).
        shift: flow shift of the sampling grid (SkyReels: 8 for text-to-video, 5 for image-to-video; Syn2Seq
            continues a source clip, like image-to-video, hence the default 5). Training levels are not shifted.
        prediction_type: `"flow_prediction"`, the velocity `eps - x0` (the only kind these backbones are trained on).
        timestep_scale: the backbone receives `timestep_scale * sigma` (SkyReels / Wan: 1000).
    """

    _compatibles: list = []
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        shift: float = 5.0,
        prediction_type: Literal["flow_prediction"] = "flow_prediction",
        timestep_scale: float = 1000.0,
    ):
        num_train_timesteps = check_int("num_train_timesteps", num_train_timesteps, minimum=2)
        shift = check_number("shift", shift, minimum=0.0, open_min=True)
        check_choice("prediction_type", prediction_type, FLOW_PREDICTION_TYPES)
        timestep_scale = check_number("timestep_scale", timestep_scale, minimum=0.0, open_min=True)
        self.register_to_config(num_train_timesteps=num_train_timesteps, shift=shift, timestep_scale=timestep_scale)
        self.init_noise_sigma = 1.0
        self.num_inference_steps: int | None = None
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1, dtype=torch.long)

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def is_continuous(self) -> bool:
        """Always False: levels are integers (the objective's `continuous` draws do not apply)."""
        return False

    @property
    def noise_embedding_type(self) -> str:
        """`"flow"`: the backbone embeds `sigma * timestep_scale` (the pipeline checks the transformer agrees)."""
        return "flow"

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    # ------------------------------------------------------------------------------------------------ level maths
    def _check_levels(self, levels: LevelLike, name: str = "timesteps") -> torch.Tensor:
        levels = as_levels(levels, name)
        if levels.is_floating_point():
            raise ValueError(f"`{name}` must be integer levels in [-1, {self.config.num_train_timesteps - 1}], got "
                             f"dtype {levels.dtype} (sigma k is level round(k * T) - 1).")
        levels = levels.long()
        if levels.numel() and not bool(((levels >= -1) & (levels < self.config.num_train_timesteps)).all()):
            raise ValueError(f"`{name}` must be integer levels in [-1, {self.config.num_train_timesteps - 1}], got "
                             f"min {levels.min().item()} and max {levels.max().item()}.")
        return levels

    def sigmas_at(self, levels: LevelLike) -> torch.Tensor:
        """Float32 noise fraction `sigma = (level + 1) / T` of `levels` (same shape): 0 for -1, 1 for `T - 1`."""
        levels = self._check_levels(levels)
        return ((levels + 1).double() / self.config.num_train_timesteps).float()

    def log_snr_at(self, levels: LevelLike) -> torch.Tensor:
        """Float32 logSNR `2 log((1 - sigma) / sigma)` of the equivalent VP process; +inf clean, -inf pure noise."""
        sigma = self.sigmas_at(levels).double()
        return (2.0 * (torch.log1p(-sigma) - torch.log(sigma))).float()

    def alphas_cumprod_at(self, levels: LevelLike) -> torch.Tensor:
        """Float32 `alpha_bar = (1 - sigma)^2 / ((1 - sigma)^2 + sigma^2)` of the equivalent VP process."""
        sigma = self.sigmas_at(levels).double()
        return ((1 - sigma) ** 2 / ((1 - sigma) ** 2 + sigma**2)).float()

    def prediction_loss_factor(self, levels: LevelLike) -> torch.Tensor:
        """Float32 `(1 - sigma)^2`: an epsilon-space loss weight times this is the weight of the same loss in
        velocity space (`eps - eps_hat = (1 - sigma)(v - v_hat)` at fixed `x_sigma`)."""
        return ((1 - self.sigmas_at(levels).double()) ** 2).float()

    def model_timesteps(self, levels: LevelLike) -> torch.Tensor:
        """What the backbone receives for per-frame `levels` (same shape): float32 `timestep_scale * sigma`
        (SkyReels / Wan: `sigma * 1000`; clean frames get 0, as SkyReels gives its clean prefix)."""
        return self.sigmas_at(levels) * self.config.timestep_scale

    def _sigma(self, levels: LevelLike, sample: torch.Tensor, name: str = "timesteps") -> torch.Tensor:
        """`(B, 1, F, 1, 1)` float32 sigmas of `levels` broadcast against a `(B, C, F, H, W)` sample."""
        levels = self._check_levels(as_levels(levels, name, sample.device), name)
        return self.sigmas_at(per_frame(levels, sample, name)).to(sample.device)

    # ------------------------------------------------------------------------------------------------ conversions
    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: LevelLike) -> torch.Tensor:
        """Forward process `x = (1 - sigma) x0 + sigma noise`, per frame (`-1` leaves the frame clean, bit-exact).

        Args:
            original_samples: clean `(B, C, F, H, W)`.
            noise: standard normal, same shape.
            timesteps: levels, scalar / `(B,)` / `(F,)` / `(B, F)`.
        """
        check_same_shape("noise", noise, "original_samples", original_samples)
        sigma = self._sigma(timesteps, original_samples)
        check_finite_unless_compiling(original_samples=original_samples, noise=noise)
        out = (1.0 - sigma) * original_samples.float() + sigma * noise.float()
        return out.to(original_samples.dtype)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: LevelLike | None = None
                     ) -> torch.Tensor:
        """The flow velocity `v = noise - x0` (`sample` is the clean x0); the same at every level."""
        check_same_shape("noise", noise, "sample", sample)
        return (noise.float() - sample.float()).to(sample.dtype)

    def get_target(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: LevelLike) -> torch.Tensor:
        """Training target for clean `sample` noised with `noise`: the velocity `noise - sample`."""
        self._sigma(timesteps, sample)  # the levels are checked even though the target does not depend on them
        return self.get_velocity(sample, noise)

    def convert_model_output(self, model_output: torch.Tensor, sample: torch.Tensor, timesteps: LevelLike
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 `(x0, eps)` from a velocity at noisy `sample`: `x0 = x - sigma v`, `eps = x + (1 - sigma) v`."""
        check_same_shape("model_output", model_output, "sample", sample)
        return self._x0_eps(model_output, sample, self._sigma(timesteps, sample))

    @staticmethod
    def _x0_eps(model_output: torch.Tensor, sample: torch.Tensor, sigma: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        x, v = sample.float(), model_output.float()
        return x - sigma * v, x + (1.0 - sigma) * v

    def convert_to_prediction(self, x0: torch.Tensor, eps: torch.Tensor, sample: torch.Tensor | None = None,
                              timesteps: LevelLike | None = None) -> torch.Tensor:
        """Inverse of :meth:`convert_model_output`: the velocity `eps - x0` (independent of the level)."""
        check_same_shape("eps", eps, "x0", x0)
        return eps - x0

    # ------------------------------------------------------------------------------------------------ sampling
    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Set the shifted grid: `self.timesteps` = the `S` levels the model is evaluated at, descending (the level
        after the last one is -1, clean)."""
        grid = self.sampling_levels(check_int("num_inference_steps", num_inference_steps, 1,
                                              self.config.num_train_timesteps))
        self.num_inference_steps = int(num_inference_steps)
        self.timesteps = torch.flip(grid, [0])[:-1].to(device)

    def sampling_levels(self, num_inference_steps: int | None = None) -> torch.Tensor:
        """Ascending `(S + 1,)` level grid `[-1, ..., T - 1]` on the shifted sigmas (see
        :func:`flow_sampling_levels`; default S: the one of :meth:`set_timesteps`)."""
        return flow_sampling_levels(self._steps(num_inference_steps), self.config.num_train_timesteps,
                                    self.config.shift)

    _steps = DiffusionForcingScheduler._steps
    _next_on_grid = DiffusionForcingScheduler._next_on_grid

    def scheduling_matrix(self, num_frames: int, num_inference_steps: int | None = None,
                          schedule: str = "full_sequence", uncertainty_scale: float = 1.0) -> torch.Tensor:
        """Per-frame levels for every denoising iteration, long `(R, F)`: row 0 all `T - 1`, the last row all -1,
        each iteration moves a frame at most one entry down the shifted grid (the matrices of
        :class:`DiffusionForcingScheduler`: `"full_sequence"`, `"autoregressive"`, `"pyramid"`)."""
        steps = self._steps(num_inference_steps)
        matrix = schedule_step_indices(num_frames, steps, schedule, uncertainty_scale)
        return step_indices_to_levels(matrix, self.sampling_levels(steps))

    def scale_model_input(self, sample: torch.Tensor, timestep: LevelLike | None = None) -> torch.Tensor:
        """No input scaling (present for interchangeability with other schedulers)."""
        return sample

    def _step_sigma(self, sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float) -> torch.Tensor:
        """DDIM's stochastic standard deviation in flow form, `eta sigma_b sqrt(1 - r^2)` with the SNR ratio
        `r = sigma_b (1 - sigma_a) / (sigma_a (1 - sigma_b))`: DDIM's sigma of the equivalent VP process, rescaled
        to flow coordinates (0 when `sigma_b = 0`; `eta sigma_b` from pure noise)."""
        ratio = sigma_next * (1.0 - sigma) / (sigma * (1.0 - sigma_next)).clamp(min=1e-12)
        return eta * sigma_next * (1.0 - ratio.clamp(max=1.0) ** 2).clamp(min=0).sqrt()

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
        """One step per frame from level `timestep` to level `next_timestep`.

        `x_b = (1 - sigma_b) x0 + sqrt(sigma_b^2 - s^2) eps + s z` with `(x0, eps)` from the velocity and `s` from
        :meth:`_step_sigma`; with `eta = 0` this is the Euler step `x_b = x_a + (sigma_b - sigma_a) v`. Arguments as
        in :meth:`DiffusionForcingScheduler.step`: frames with `next == current` come back bit-identical, levels may
        never rise, `next_timestep=None` takes the next entry of the :meth:`set_timesteps` grid.
        """
        eta, levels, next_levels = step_levels(self._check_levels, self._next_on_grid, model_output, timestep, sample,
                                               next_timestep, eta, variance_noise)
        sigma, sigma_next = self.sigmas_at(levels), self.sigmas_at(next_levels)
        x0, eps = self._x0_eps(model_output, sample, sigma)
        changed = next_levels != levels
        noise_std = torch.zeros_like(sigma)
        if eta > 0:
            noise_std = torch.where(changed, self._step_sigma(sigma, sigma_next, eta), noise_std)
        prev = (1.0 - sigma_next) * x0 + (sigma_next**2 - noise_std**2).clamp(min=0).sqrt() * eps
        return step_output(prev, noise_std, x0, model_output, sample, changed, eta, generator, variance_noise,
                           return_dict)
