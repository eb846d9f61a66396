# SPDX-License-Identifier: Apache-2.0
"""Checks of public call arguments (pipeline `__call__`, scheduler): real integers, finite numbers, choices.

Each check raises a `ValueError` naming the argument, what is expected and what was received, and returns the value
normalised (a Python `int` / `float`), so callers never pass a numpy scalar, a bool or a NaN further down.
"""

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["check_choice", "check_finite_tensor", "check_generator", "check_integer", "check_number"]


def _describe(value: Any) -> str:
    """`repr` for scalars, `type` for anything big (a tensor's repr would flood the message)."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return repr(value)


def check_integer(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an `int` when it is a real integer (Python, numpy or 0-d integer tensor) within the bounds.

    Bools are refused (`num_frames=True` is a mistake, not 1), and so are floats, even integral ones such as `2.0`:
    a float where a count is expected usually comes from a division that lost its rounding.
    """
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        value = int(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        bounds = _bounds_text(minimum, maximum)
        raise ValueError(f"`{name}` must be an integer{bounds}, got {_describe(value)} ({type(value).__name__}).")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"`{name}` must be an integer{_bounds_text(minimum, maximum)}, got {value}.")
    return value


def check_number(name: str, value: Any, minimum: float | None = None, maximum: float | None = None,
                 exclusive_minimum: bool = False) -> float:
    """`value` as a finite `float` within the bounds (`> minimum` when `exclusive_minimum`); bools, NaN and
    infinities are refused."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a finite number{_bounds_text(minimum, maximum, exclusive_minimum)}, got "
                         f"{_describe(value)} ({type(value).__name__}).")
    value = float(value)
    below = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    if not math.isfinite(value) or below or (maximum is not None and value > maximum):
        raise ValueError(f"`{name}` must be a finite number{_bounds_text(minimum, maximum, exclusive_minimum)}, got "
                         f"{value!r}.")
    return value


def _bounds_text(minimum: float | None, maximum: float | None, exclusive_minimum: bool = False) -> str:
    low = ">" if exclusive_minimum else ">="
    if minimum is not None and maximum is not None:
        return f" in ({minimum}, {maximum}]" if exclusive_minimum else f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" {low} {minimum}"
    return f" <= {maximum}" if maximum is not None else ""


def check_choice(name: str, value: Any, choices: Sequence[Any], allow_none: bool = False) -> Any:
    """`value` unless it is not one of the string `choices` (or None when `allow_none`); non-strings are refused."""
    if value is None and allow_none:
        return value
    if not isinstance(value, str | type(None)) or value not in choices:
        none = "None or " if allow_none else ""
        raise ValueError(f"`{name}` must be {none}one of {tuple(choices)}, got {_describe(value)}.")
    return value


def check_finite_tensor(name: str, value: torch.Tensor) -> torch.Tensor:
    """`value` unless it holds NaN or infinite entries (one cheap reduction)."""
    if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"`{name}` must hold finite values, got {bad} NaN or infinite entries out of "
                         f"{value.numel()}.")
    return value


def check_generator(name: str, generator: Any, batch_size: int | None = None) -> None:
    """None, a `torch.Generator`, or a list of them (one per batch element when `batch_size` is given)."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if isinstance(generator, (list, tuple)) and all(isinstance(g, torch.Generator) for g in generator):
        if batch_size is not None and len(generator) != batch_size:
            raise ValueError(f"`{name}` as a list must hold one torch.Generator per video ({batch_size}), got "
                             f"{len(generator)}.")
        return
    raise ValueError(f"`{name}` must be None, a torch.Generator or a list of them (one per video), got "
                     f"{_describe(generator)} ({type(generator).__name__}); seed one with "
                     "torch.Generator().manual_seed(seed).")
