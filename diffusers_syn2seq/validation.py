# SPDX-License-Identifier: Apache-2.0
"""Argument checks shared by the public entry points, each failing with "`name` must be <expected>, got <received>".

Every checker returns the value normalised to a plain Python type (``numpy.int64(2)`` -> ``2``), so that it can be
stored in a diffusers config (JSON) or passed on. Bools are refused wherever a number is expected (``True`` is an
``int`` to Python but never a meaningful count or probability here). A value of the wrong type raises
:class:`InvalidTypeError`, a ``TypeError`` that is also a ``ValueError`` so that callers catching either keep working;
a value of the right type outside its range raises ``ValueError``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import torch

__all__ = [
    "InvalidTypeError",
    "check_choice",
    "check_finite",
    "check_int",
    "check_non_negative_int",
    "check_number",
    "check_positive_int",
    "check_positive_number",
    "check_probability",
    "describe",
    "non_finite_summary",
    "sum_is_finite",
]


class InvalidTypeError(TypeError, ValueError):
    """An argument of the wrong type (a ``TypeError`` that ``except ValueError`` also catches)."""


def describe(value: Any) -> str:
    """Short description of a received value for error messages: the value itself for scalars and short strings,
    shape and dtype for tensors and arrays, the type name otherwise."""
    if isinstance(value, bool):
        return f"{value} (a bool)"
    if value is None or isinstance(value, numbers.Number):
        return repr(value.item() if hasattr(value, "item") else value)  # numpy scalars print as plain numbers
    if isinstance(value, torch.Tensor) or (hasattr(value, "shape") and hasattr(value, "dtype")):
        return f"a {type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 80 else repr(value[:77] + "...")
    return f"a {type(value).__name__}"


def _int_expectation(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer in [{minimum}, {maximum}]"
    if minimum == 1:
        return "a positive integer"
    if minimum == 0:
        return "a non-negative integer"
    if minimum is not None:
        return f"an integer >= {minimum}"
    return "an integer" if maximum is None else f"an integer <= {maximum}"


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python ``int`` in ``[minimum, maximum]`` (either bound optional).

    Accepts Python and numpy integers; refuses bools, floats (even integral ones: ``2.0`` usually means a
    misplaced argument) and strings.
    """
    expected = _int_expectation(minimum, maximum)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(f"`{name}` must be {expected}, got {describe(value)}.")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"`{name}` must be {expected}, got {value}.")
    return value


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as a Python ``int`` >= 1 (:func:`check_int`)."""
    return check_int(name, value, minimum=1)


def check_non_negative_int(name: str, value: Any) -> int:
    """``value`` as a Python ``int`` >= 0 (:func:`check_int`)."""
    return check_int(name, value, minimum=0)


def _interval(minimum: float | None, maximum: float | None, open_min: bool, open_max: bool) -> str:
    if minimum is not None and maximum is not None:
        return f"in {'(' if open_min else '['}{minimum:g}, {maximum:g}{')' if open_max else ']'}"
    if minimum is not None:
        return f"{'>' if open_min else '>='} {minimum:g}"
    if maximum is not None:
        return f"{'<' if open_max else '<='} {maximum:g}"
    return ""


def check_number(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_min: bool = False,
    open_max: bool = False,
    noun: str = "a finite number",
) -> float:
    """``value`` as a finite Python ``float`` in the interval given by the bounds (``open_*`` excludes a bound).

    Accepts Python and numpy ints and floats; refuses bools, NaN, infinities, strings and tensors. ``noun`` names
    the kind of number in the message (``"a probability"``).
    """
    expected = " ".join(filter(None, [noun, _interval(minimum, maximum, open_min, open_max)]))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"`{name}` must be {expected}, got {describe(value)}.")
    number = float(value)
    too_low = minimum is not None and (number <= minimum if open_min else number < minimum)
    too_high = maximum is not None and (number >= maximum if open_max else number > maximum)
    if not math.isfinite(number) or too_low or too_high:
        raise ValueError(f"`{name}` must be {expected}, got {number!r}.")
    return number


def check_positive_number(name: str, value: Any) -> float:
    """``value`` as a finite ``float`` > 0 (:func:`check_number`)."""
    return check_number(name, value, minimum=0.0, open_min=True)


def check_probability(name: str, value: Any, *, allow_one: bool = False) -> float:
    """``value`` as a probability ``float`` in ``[0, 1)`` (``[0, 1]`` with ``allow_one``)."""
    return check_number(name, value, 0.0, 1.0, open_max=not allow_one, noun="a probability")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` unchanged if it equals one of ``choices`` (a bool matches only a bool)."""
    choices = tuple(choices)
    try:  # a bool never stands for 0 or 1 here; a tensor or array compared with strings may raise
        known = any(bool(value == c) and isinstance(value, bool) == isinstance(c, bool) for c in choices)
    except (TypeError, ValueError, RuntimeError):
        known = False
    if not known:
        raise ValueError(f"`{name}` must be one of {choices}, got {describe(value)}.")
    return value


def sum_is_finite(tensor: torch.Tensor) -> torch.Tensor:
    """0-d bool tensor on the tensor's device, True when the sum of ``tensor`` is finite, hence every entry is.

    A quick probe (one reduction pass, no host synchronisation, no boolean copy of the tensor: ~30x cheaper than
    ``isfinite(t).all()`` on a large float32 CPU tensor). False means "maybe not finite": a sum of finite entries
    can overflow (float16), so callers confirm with ``torch.isfinite`` before raising.
    """
    return torch.isfinite(tensor.sum())


def check_finite(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` unchanged if every entry is finite; otherwise a ``ValueError`` with the NaN and inf counts.

    One reduction and one host synchronisation (:func:`sum_is_finite`); integer and bool tensors are always finite.
    """
    if not isinstance(tensor, torch.Tensor):
        raise InvalidTypeError(f"`{name}` must be a torch.Tensor, got {describe(tensor)}.")
    if not (tensor.is_floating_point() or tensor.is_complex()) or bool(sum_is_finite(tensor)):
        return tensor
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"`{name}` must contain only finite values, got {non_finite_summary(tensor)}.")
    return tensor


def non_finite_summary(tensor: torch.Tensor) -> str:
    """``"3 NaN and 1 inf entries"`` for a tensor with non-finite values (for error messages)."""
    nan = int(torch.isnan(tensor).sum())
    inf = int(torch.isinf(tensor).sum())
    return f"{nan} NaN and {inf} inf entries (of {tensor.numel()})"
