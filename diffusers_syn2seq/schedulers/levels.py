# SPDX-License-Identifier: Apache-2.0
"""What both per-frame schedulers share: parsing and broadcasting per-frame levels, the checks that open `step` and
the noise, masking and output that close it (one home, so the DDIM and the flow step differ only in their maths).

Checking values costs a host synchronisation; `step` and `add_noise` run once per denoising iteration or training
step, so each call makes one finiteness check (`step`: of its result, one sum; `add_noise`: of its two inputs
together, `validation.check_all_finite`) and one read-back, skipped while `torch.compile` traces the call, as the
models skip theirs.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ..validation import check_all_finite, check_finite, check_number, sum_is_finite

LevelLike = int | float | torch.Tensor


def check_same_shape(name: str, value, reference_name: str, reference: torch.Tensor) -> None:
    if not isinstance(reference, torch.Tensor):
        raise ValueError(f"`{reference_name}` must be a torch.Tensor, got {type(reference).__name__}.")
    if not isinstance(value, torch.Tensor) or value.shape != reference.shape:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"`{name}` must be a tensor of the shape of `{reference_name}` {tuple(reference.shape)}, "
                         f"got {shape}.")


@dataclass
class DiffusionForcingSchedulerOutput(BaseOutput):
    """Output of `step` of both per-frame schedulers (DDIM `DiffusionForcingScheduler` and the flow scheduler).

    Args:
        prev_sample (`torch.Tensor` of shape `(B, C, F, H, W)`): the sample at the next (lower) per-frame levels;
            frames whose level does not change are bit-identical to the input.
        pred_original_sample (`torch.Tensor` of shape `(B, C, F, H, W)`): the model's clean-sample estimate x0.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


def as_levels(value: LevelLike, name: str = "timesteps", device=None) -> torch.Tensor:
    """`value` as a tensor of levels; bools, strings, None and other non-numbers are refused by name."""
    if isinstance(value, (bool, str)) or value is None:
        raise ValueError(f"`{name}` must be integer levels (int or tensor), got {value!r}.")
    try:
        levels = torch.as_tensor(value, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"`{name}` must be integer levels (int or tensor), got {type(value).__name__}.") from None
    if levels.dtype == torch.bool or levels.is_complex():
        raise ValueError(f"`{name}` must be integer levels, got a tensor of dtype {levels.dtype}.")
    return levels


def per_frame(levels: torch.Tensor, sample: torch.Tensor, name: str = "timesteps") -> torch.Tensor:
    """Broadcast scalar / `(B,)` / `(F,)` / `(B, F)` levels to `(B, 1, F, 1, 1)` against a `(B, C, F, H, W)` sample.

    A one-element tensor is a scalar (diffusers passes `timesteps[i][None]`). A 1-D tensor is read as per-sample
    when its length is B and per-frame otherwise; when B == F pass `(1, F)` to mean per-frame. Samples of any
    other rank (image batches `(B, C, H, W)`) take scalar or `(B,)` levels, broadcast to `(B, 1, ..., 1)`.
    """
    if sample.ndim == 0:
        raise ValueError("`sample` must have a batch dimension, got a 0-d tensor.")
    if levels.numel() == 1 and levels.ndim <= 2:
        levels = levels.reshape(())
    if sample.ndim != 5:
        batch = sample.shape[0]
        if levels.ndim == 0 or (levels.ndim == 1 and levels.shape[0] == batch):
            return levels.reshape(-1).expand(batch).reshape(batch, *([1] * (sample.ndim - 1)))
        raise ValueError(
            f"`{name}` must be a scalar or (B,)=({batch},) for a {sample.ndim}-D sample (per-frame levels need a "
            f"(B, C, F, H, W) video), got shape {tuple(levels.shape)}."
        )
    batch, _, frames = sample.shape[:3]
    if levels.ndim == 0:
        levels = levels.reshape(1, 1)
    elif levels.ndim == 1:
        if levels.shape[0] == batch:
            levels = levels[:, None]
        elif levels.shape[0] == frames:
            levels = levels[None, :]
        else:
            raise ValueError(
                f"1-D `{name}` must have length B={batch} or F={frames}, got length {levels.shape[0]}."
            )
    elif levels.ndim == 2:
        if levels.shape[0] not in (1, batch) or levels.shape[1] not in (1, frames):
            raise ValueError(
                f"2-D `{name}` must broadcast to (B, F)=({batch}, {frames}), got {tuple(levels.shape)}."
            )
    else:
        raise ValueError(f"`{name}` must be a scalar, (B,), (F,) or (B, F), got shape {tuple(levels.shape)}.")
    return levels.expand(batch, frames).reshape(batch, 1, frames, 1, 1)


def check_finite_unless_compiling(**tensors: torch.Tensor | None) -> None:
    """Every floating-point entry of ``tensors`` finite (one host synchronisation), except while `torch.compile`
    traces the caller: a read-back inside a graph breaks it."""
    if not torch.compiler.is_compiling():
        check_all_finite(tensors)


def step_levels(
    check_levels: Callable[[LevelLike, str], torch.Tensor],
    next_on_grid: Callable[[torch.Tensor], torch.Tensor],
    model_output: torch.Tensor,
    timestep: LevelLike,
    sample: torch.Tensor,
    next_timestep: LevelLike | None,
    eta: float,
    variance_noise: torch.Tensor | None,
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """The head of `step`: checks every argument and returns ``(eta, levels, next_levels)``, the levels integer and
    broadcast to ``(B, 1, F, 1, 1)``.

    ``check_levels(value, name)`` is the scheduler's level check (its range and kind), ``next_on_grid(levels)`` its
    lookup of the next entry of the `set_timesteps` grid, used when ``next_timestep`` is None. Levels may never rise.
    """
    eta = check_number("eta", eta, minimum=0.0)
    check_same_shape("model_output", model_output, "sample", sample)
    if variance_noise is not None:
        check_same_shape("variance_noise", variance_noise, "sample", sample)
    levels = check_levels(as_levels(timestep, "timestep", sample.device), "timestep")
    if levels.is_floating_point():
        raise ValueError("`step` needs integer levels on the sampling grid, got float (continuous) timesteps.")
    levels = per_frame(levels, sample).long()
    if next_timestep is None:
        next_levels = next_on_grid(levels)
    else:
        next_levels = check_levels(as_levels(next_timestep, "next_timestep", sample.device), "next_timestep")
        next_levels = per_frame(next_levels.long(), sample, "next_timestep")
    if bool((next_levels > levels).any()):
        raise ValueError("`next_timestep` must not be above `timestep`: a step only removes noise.")
    return eta, levels, next_levels


def _name_the_non_finite_input(model_output: torch.Tensor, sample: torch.Tensor, changed: torch.Tensor,
                               variance_noise: torch.Tensor | None, prev_sample: torch.Tensor) -> None:
    """Raise for the input that made a step's result non-finite (nothing when the probe's sum only overflowed)."""
    check_finite("sample", sample)
    check_finite("model_output (the frames whose level changes)", torch.where(changed, model_output, 0))
    if variance_noise is not None:
        check_finite("variance_noise", variance_noise)
    check_finite("prev_sample", prev_sample)  # e.g. a float16 sample that overflowed


def step_output(
    prev: torch.Tensor,
    noise_std: torch.Tensor,
    x0: torch.Tensor,
    model_output: torch.Tensor,
    sample: torch.Tensor,
    changed: torch.Tensor,
    eta: float,
    generator: torch.Generator | list[torch.Generator] | None,
    variance_noise: torch.Tensor | None,
    return_dict: bool,
) -> DiffusionForcingSchedulerOutput | tuple:
    """The tail of `step`: with ``eta > 0`` adds ``noise_std * z`` (`z`: ``variance_noise``, else drawn from
    ``generator``), keeps the frames whose level does not change bit-identical, checks the result and packs it.

    The result is what is checked for NaN and inf (one sum, one host synchronisation, skipped under `torch.compile`):
    it holds every value that matters, while a frame whose level does not change may have any prediction (a context
    frame's is never used)."""
    if eta > 0:
        if variance_noise is None:
            variance_noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=torch.float32)
        prev = prev + noise_std * variance_noise.float()
    prev_sample = torch.where(changed, prev.to(sample.dtype), sample)
    if not torch.compiler.is_compiling() and not bool(sum_is_finite(prev_sample)):
        _name_the_non_finite_input(model_output, sample, changed, variance_noise, prev_sample)
    if not return_dict:
        return (prev_sample, x0.to(sample.dtype))
    return DiffusionForcingSchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0.to(sample.dtype))
