# SPDX-License-Identifier: Apache-2.0
"""The scalar arguments of `Syn2SeqPipeline.__call__`, checked in one place with the shared checks of
`validation.py` (issue 13: real integers, finite numbers, bools refused where numbers are expected, enumerations)."""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..data.sequence import DIRECTIONS, MODES, REVERSALS
from ..schedulers.scheduling_diffusion_forcing import SCHEDULES
from ..validation import check_choice, check_int, check_number, describe
from .history_guidance import HISTORY_GUIDANCE

OUTPUT_TYPES = ("np", "pt", "pil", "latent")

# name, minimum, maximum (None: unbounded; "T": num_train_timesteps), required (else None is allowed)
INTEGER_ARGUMENTS = (("num_inference_steps", 1, "T", True), ("num_videos_per_prompt", 1, None, True),
                     ("num_frames", 1, None, False),
                     ("num_transition_frames", 0, None, True), ("context_frames", 0, None, False),
                     ("height", 1, None, False), ("width", 1, None, False))
NUMBER_ARGUMENTS = (("uncertainty_scale", 0.0, None), ("guidance_scale", None, None), ("fractional_level", 0.0, 1.0),
                    ("stabilization_level", 0.0, 1.0), ("eta", 0.0, None))
CHOICE_ARGUMENTS = (("mode", MODES), ("reversal", REVERSALS), ("direction", DIRECTIONS), ("schedule", SCHEDULES),
                    ("output_type", OUTPUT_TYPES))
BOOL_ARGUMENTS = ("sliding_window", "return_dict", "return_transition")


def check_call_arguments(settings: dict[str, Any], num_train_timesteps: int) -> dict[str, Any]:
    """`settings` (argument name -> value, every name of the tables above plus `history_guidance`) checked and
    normalised: Python `int` / `float` values; every error names the argument, the expected and the received value."""
    out = dict(settings)
    for name, choices in CHOICE_ARGUMENTS:
        check_choice(name, settings[name], choices)
    check_choice("history_guidance", settings["history_guidance"], HISTORY_GUIDANCE, allow_none=True)
    for name, minimum, maximum, required in INTEGER_ARGUMENTS:
        if required or settings[name] is not None:
            maximum = num_train_timesteps if maximum == "T" else maximum
            out[name] = check_int(name, settings[name], minimum, maximum)
    for name, minimum, maximum in NUMBER_ARGUMENTS:
        out[name] = check_number(name, settings[name], minimum, maximum)
    for name in BOOL_ARGUMENTS:
        if not isinstance(settings[name], bool):
            raise ValueError(f"`{name}` must be True or False, got {settings[name]!r}.")
    guidance, scale = settings["history_guidance"], out["guidance_scale"]
    if guidance in ("vanilla", "fractional") and not scale >= 1.0:
        raise ValueError(f"`guidance_scale` must be >= 1 for {guidance} history guidance (1 = no guidance), got "
                         f"{scale!r}.")
    if guidance is None and scale != 1.0:
        raise ValueError(f"`guidance_scale` has no effect without `history_guidance` and must stay 1.0, got "
                         f"{scale!r}; pass history_guidance='vanilla' or 'fractional'.")
    if settings["mode"] == "jump" and out["num_transition_frames"]:
        raise ValueError(f"`num_transition_frames` must be 0 in 'jump' mode (no transition), got "
                         f"{out['num_transition_frames']}.")
    return out


def check_callback(callback: Callable | None, tensor_inputs: Sequence[str] | None, allowed: Sequence[str]) -> None:
    """A callable (or None) and tensor names among `allowed`."""
    if callback is not None and not callable(callback):
        raise ValueError(f"`callback_on_step_end` must be callable, got {type(callback).__name__}.")
    if isinstance(tensor_inputs, str):
        raise ValueError(f"`callback_on_step_end_tensor_inputs` must be a list of names, got the string "
                         f"{tensor_inputs!r}.")
    unknown = [k for k in tensor_inputs or [] if k not in allowed]
    if unknown:
        raise ValueError(f"`callback_on_step_end_tensor_inputs` must be a subset of {list(allowed)}, got {unknown}.")


def callback_latents(outputs: Any, latents: torch.Tensor) -> torch.Tensor:
    """The `latents` after a `callback_on_step_end` returned ``outputs`` (None or a dict; its `"latents"`, if any,
    replace them): a float tensor of the shape the callback was given, checked here rather than by a broadcasting
    error deep in the next step."""
    if outputs is None:
        return latents
    if not isinstance(outputs, dict):
        raise ValueError(f"`callback_on_step_end` must return None or a dict of tensors, got {describe(outputs)}.")
    value = outputs.pop("latents", latents)
    if not isinstance(value, torch.Tensor) or value.shape != latents.shape or not value.is_floating_point():
        raise ValueError(f"`callback_on_step_end` must return `latents` as a float tensor of the shape it was given "
                         f"{tuple(latents.shape)}, got {describe(value)}.")
    return value.float()


def check_transition_poses(transition_poses: Any) -> None:
    """None or poses (tensor, array or list of them); a word such as `"drop"` gets a pointer to `mode`."""
    if transition_poses is not None and not isinstance(transition_poses, (torch.Tensor, np.ndarray, list, tuple)):
        raise ValueError(
            "`transition_poses` must be None (the interpolated camera path of `mode='video+pose'`) or a tensor of "
            f"poses, got {transition_poses!r}; the transition's pose variant is chosen with `mode` ('video+pose': "
            "interpolated poses, 'video': no poses)."
        )
