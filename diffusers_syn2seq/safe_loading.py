# SPDX-License-Identifier: Apache-2.0
"""Loading pretrained weights from a local folder or a Hub repo id: safetensors only, errors that say what was tried.

Every `from_pretrained` of a model, VAE or pipeline that a user names (a flag, a config entry) goes through
`load_pretrained`: it passes `use_safetensors=True`, so a checkpoint a user was handed is never unpickled (a pickled
`.bin` can run code when loaded), and it words the three ways loading fails: the path is neither an existing folder
nor a Hub repo id; the folder holds only pickled weights (with the one line that converts them); the name is not a
local folder and the Hub could not give it (offline, unknown repo), instead of diffusers' "couldn't connect to
https://huggingface.co".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub.utils import HFValidationError, validate_repo_id

from .validation import describe

__all__ = ["PICKLED_WEIGHT_SUFFIXES", "check_folder_or_repo_id", "load_pretrained", "refuse_pickled_only"]

PICKLED_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
Loaded = TypeVar("Loaded")


def check_folder_or_repo_id(name_or_path: Any, what: str) -> str:
    """``name_or_path`` as a string when it is an existing local folder or a well-formed Hub repo id (``name`` or
    ``user/name``); otherwise a ``ValueError`` naming ``what`` (a flag or an argument) and saying what is missing."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ValueError(f"{what}: expected a local folder or a Hub repo id, got {describe(name_or_path)}.")
    value = os.fspath(name_or_path)
    if os.path.isdir(value):
        return value
    if os.path.exists(value):
        raise ValueError(f"{what}: expected a folder or a Hub repo id, got the file {value!r}.")
    try:
        validate_repo_id(value)
    except HFValidationError:
        raise ValueError(f"{what}: expected a local folder or a Hub repo id (user/name), got {value!r}: no such "
                         "folder, and not a Hub repo id either.") from None
    return value


def refuse_pickled_only(folder: str | os.PathLike, what: str, owner: str) -> None:
    """A ``ValueError`` naming ``what`` when ``folder`` (with its subfolders) holds pickled weight files and no
    safetensors file, saying how to convert them (``owner``: the class whose ``from_pretrained`` reads the folder)."""
    folder = Path(folder)
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    if any(p.suffix == ".safetensors" for p in files):
        return
    pickled = sorted(str(p.relative_to(folder)) for p in files if p.suffix in PICKLED_WEIGHT_SUFFIXES)
    if pickled:
        raise ValueError(
            f"{what}: {str(folder)!r} holds pickled weights only ({', '.join(pickled[:3])}), which are never loaded "
            f"here (unpickling a file can run code); convert them once, where you trust the file: "
            f"{owner}.from_pretrained({str(folder)!r}, use_safetensors=False).save_pretrained({str(folder)!r}) writes "
            "safetensors beside them."
        )


def load_pretrained(load: Callable[..., Loaded], name_or_path: Any, what: str, *, safetensors: bool = True,
                    **kwargs: Any) -> Loaded:
    """``load(name_or_path, use_safetensors=True, **kwargs)``: ``load`` is a ``from_pretrained`` (or, with
    ``safetensors=False``, a ``load_config``, which reads no weights); errors name ``what`` (module docstring).

    Raises:
        ValueError: ``name_or_path`` is neither a folder nor a repo id, or the folder holds only pickled weights.
        OSError: loading failed otherwise (the reason included; "not a local folder" when it was tried on the Hub).
    """
    value = check_folder_or_repo_id(name_or_path, what)
    try:
        return load(value, **({"use_safetensors": True} if safetensors else {}), **kwargs)
    except OSError as error:
        if not os.path.isdir(value):
            raise OSError(f"{what}: {value!r} is not a local folder (no such folder), and loading it as a Hub repo id "
                          f"failed: {error}") from error
        if safetensors:
            owner = getattr(getattr(load, "__self__", None), "__name__", "DiffusionPipeline")
            refuse_pickled_only(Path(value) / (kwargs.get("subfolder") or ""), what, owner)
        raise OSError(f"{what}: could not load {value!r}: {error}") from error
