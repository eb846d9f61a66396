# SPDX-License-Identifier: Apache-2.0
"""The argument checks of every public entry point, each failing with "`name` must be <expected>, got <received>".

The one home of these checks: models (`models/checks_dfot.py`), checkpoint conversion, `camera.py`, the scheduler,
the pipeline's `__call__` arguments (`pipelines/call_arguments.py`), the sequence layout, the training objective,
metrics and evaluation all call them, so a count, a probability or a choice is checked by the same rule and reported
in the same words everywhere. (The command lines check their flags before any of these run and word their errors
"--flag: expected ..., got ...", `cli.py`.)

Every checker returns the value normalised to a plain Python type (``numpy.int64(2)`` or a 0-d integer tensor ->
``2``), so that it can be stored in a diffusers config (JSON) or passed on. Bools are refused wherever a number is
expected (``True`` is an ``int`` to Python but never a meaningful count or probability here), and floats wherever an
integer is (``2.0`` usually comes from a division that lost its rounding or a misplaced argument). A value of the
wrong type raises :class:`InvalidTypeError`, a ``TypeError`` that is also a ``ValueError`` so that callers catching
either keep working; a value of the right type outside its range raises ``ValueError``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "InvalidTypeError",
    "check_all_finite",
    "check_choice",
    "check_finite",
    "check_generator",
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
    """Short description of a received value for error messages: the value itself for scalars, short strings and
    short lists of them, shape and dtype for tensors and arrays (the item shapes for a list of them), the type name
    otherwise."""
    if isinstance(value, (bool, np.bool_)):
        return f"{bool(value)} (a bool)"
    if value is None or isinstance(value, numbers.Number):
        return repr(value.item() if hasattr(value, "item") else value)  # numpy scalars print as plain numbers
    if isinstance(value, torch.Tensor) or (hasattr(value, "shape") and hasattr(value, "dtype")):
        return f"a {type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 80 else repr(value[:77] + "...")
    if isinstance(value, (list, tuple)):
        return _describe_sequence(value)
    return f"a {type(value).__name__}"


def _describe_sequence(value: list | tuple) -> str:
    if all(v is None or isinstance(v, (numbers.Number, str)) for v in value) and len(repr(value)) <= 80:
        return repr(value)  # e.g. ['exo2ego'] where 'exo2ego' was meant
    if value and any(hasattr(v, "shape") for v in value):  # e.g. a list of per-video poses of different lengths
        shapes = [tuple(v.shape) if hasattr(v, "shape") else type(v).__name__ for v in value[:4]]
        return f"a {type(value).__name__} of {len(value)} items {shapes}{' ...' if len(value) > 4 else ''}"
    return f"a {type(value).__name__}"


def _unwrap_0d(value: Any, integer: bool) -> Any:
    """The Python scalar of a 0-d tensor (integer dtypes only when ``integer``; never bool), else ``value``."""
    if not isinstance(value, torch.Tensor) or value.ndim != 0 or value.dtype == torch.bool or value.is_complex():
        return value
    return value if integer and value.is_floating_point() else value.item()


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

    Accepts Python and numpy integers and 0-d integer tensors; refuses bools, floats (even integral ones) and
    strings.
    """
    expected = _int_expectation(minimum, maximum)
    scalar = _unwrap_0d(value, integer=True)
    if isinstance(scalar, (bool, np.bool_)) or not isinstance(scalar, numbers.Integral):
        raise InvalidTypeError(f"`{name}` must be {expected}, got {describe(value)}.")
    scalar = int(scalar)
    if (minimum is not None and scalar < minimum) or (maximum is not None and scalar > maximum):
        raise ValueError(f"`{name}` must be {expected}, got {scalar}.")
    return scalar


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

    Accepts Python and numpy ints and floats and 0-d real tensors; refuses bools, NaN, infinities, strings and
    tensors with more than one value. ``noun`` names the kind of number in the message (``"a probability"``).
    """
    expected = " ".join(filter(None, [noun, _interval(minimum, maximum, open_min, open_max)]))
    scalar = _unwrap_0d(value, integer=False)
    if isinstance(scalar, (bool, np.bool_)) or not isinstance(scalar, numbers.Real):
        raise InvalidTypeError(f"`{name}` must be {expected}, got {describe(value)}.")
    number = float(scalar)
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


def _is_choice(value: Any, choice: Any) -> bool:
    if isinstance(value, bool) != isinstance(choice, bool):  # a bool never stands for 0 or 1 here
        return False
    try:  # a tensor or array compared with a string may raise, or answer elementwise (never a match)
        equal = value == choice
    except (TypeError, ValueError, RuntimeError):
        return False
    return isinstance(equal, (bool, np.bool_)) and bool(equal)


def check_choice(name: str, value: Any, choices: Iterable[Any], *, allow_none: bool = False) -> Any:
    """``value`` unchanged if it equals one of ``choices`` (or is None when ``allow_none``)."""
    choices = tuple(choices)
    if (value is None and allow_none) or any(_is_choice(value, c) for c in choices):
        return value
    none = "None or " if allow_none else ""
    raise ValueError(f"`{name}` must be {none}one of {choices}, got {describe(value)}.")


def check_generator(name: str, generator: Any, batch_size: int | None = None) -> None:
    """None, a ``torch.Generator``, or a list of them (one per batch element when ``batch_size`` is given)."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if isinstance(generator, (list, tuple)) and all(isinstance(g, torch.Generator) for g in generator):
        if batch_size is not None and len(generator) != batch_size:
            raise ValueError(f"`{name}` as a list must hold one torch.Generator per video ({batch_size}), got "
                             f"{len(generator)}.")
        return
    raise InvalidTypeError(f"`{name}` must be None, a torch.Generator or a list of them (one per video), got "
                           f"{describe(generator)}; seed one with torch.Generator().manual_seed(seed).")


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


def check_all_finite(tensors: Mapping[str, torch.Tensor | None]) -> None:
    """Every floating-point tensor of ``tensors`` (name -> tensor, None skipped) finite, read back with one host
    synchronisation for all of them (:func:`sum_is_finite` probes); a failed probe is confirmed and worded by
    :func:`check_finite`, naming the first tensor with a NaN or inf."""
    floats = {name: t for name, t in tensors.items() if t is not None and (t.is_floating_point() or t.is_complex())}
    if not floats:
        return
    device = next(iter(floats.values())).device
    if bool(torch.stack([sum_is_finite(t).to(device) for t in floats.values()]).all()):
        return
    for name, tensor in floats.items():
        check_finite(name, tensor)


def non_finite_summary(tensor: torch.Tensor) -> str:
    """``"3 NaN and 1 inf entries (of 10)"`` for a tensor with non-finite values (for error messages)."""
    nan = int(torch.isnan(tensor).sum())
    inf = int(torch.isinf(tensor).sum())
    return f"{nan} NaN and {inf} inf entries (of {tensor.numel()})"
