# SPDX-License-Identifier: Apache-2.0
"""What Syn2Seq training scripts share: per-step seeds, model inputs, checkpoints.

The data path reads in one direction: dataset take -> Syn2Seq sequence -> random window (`diffusers_syn2seq.data`,
deterministic in `(seed, epoch, index)`) -> batch -> model space (pixels or per-frame VAE latents,
`diffusers_syn2seq.latents`) -> the diffusion-forcing loss (`diffusers_syn2seq.objective`).

Checkpoints are written under a hidden temporary name, completed by a marker file listing every file and its size
(written last), and renamed into place; pruning renames a checkpoint to a hidden name before deleting it. A kill at any
moment therefore never leaves a folder that is listed as a checkpoint but incomplete, and a run resumes exactly from
the last complete one. Nothing in a checkpoint is unpickled without torch's restricted loader: the EMA weights are
`ema.safetensors` (accelerate's `register_for_checkpointing` would unpickle them with `weights_only=False`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .data.windows import window_camera_rays, window_history_lengths
from .latents import encode_frames
from .safe_io import atomic_write_text, fix_weight_modes

__all__ = [
    "CHECKPOINT_MARKER",
    "CHECKPOINT_PREFIX",
    "DEFAULT_LORA_TARGETS",
    "EMA_WEIGHTS_NAME",
    "check_total_limit",
    "default_lora_targets",
    "checkpoint_problems",
    "checkpoint_steps",
    "incomplete_checkpoints",
    "load_ema_state",
    "loadable_checkpoint",
    "model_inputs",
    "prune_checkpoints",
    "remove_stale_checkpoint_folders",
    "resolve_checkpoint",
    "save_checkpoint_atomically",
    "save_ema_state",
    "step_seed",
]

logger = logging.getLogger(__name__)
# Attention and MLP projections of `DFoTTransformerBlock`.
DEFAULT_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_MARKER = "syn2seq_checkpoint.json"  # {"step": N, "files": {relative path: size}}, written last
EMA_WEIGHTS_NAME = "ema.safetensors"
MODEL_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
LEGACY_EMA_PICKLE = "custom_checkpoint_0.pkl"  # the EMA of checkpoints written before ema.safetensors
LEGACY_CHECKPOINT_FILES = ("optimizer.bin", "scheduler.bin", "random_states_0.pkl")


def default_lora_targets(transformer: torch.nn.Module | type) -> list[str]:
    """The LoRA target modules of a backbone: its class's `lora_target_modules` when it names its own (SkyReels-V2 /
    Wan: feed-forward `ffn.net`), else the DFoT DiT's attention and MLP projections (`DEFAULT_LORA_TARGETS`)."""
    klass = transformer if isinstance(transformer, type) else type(transformer)
    return list(getattr(klass, "lora_target_modules", DEFAULT_LORA_TARGETS))


# ----------------------------------------------------------------------------------------------------------------
# Randomness: per-step seeds
# ----------------------------------------------------------------------------------------------------------------
def step_seed(seed: int, micro_step: int, process_index: int) -> int:
    """Seed of the noise, levels and dropout of one micro-batch: a pure function of the run seed, the micro-step and the
    process, so a resumed run draws exactly what an uninterrupted one would."""
    return (seed * 1_000_003 + micro_step * 9_973 + process_index * 7_919) % (2**63 - 1)


# ----------------------------------------------------------------------------------------------------------------
# Model space
# ----------------------------------------------------------------------------------------------------------------
def model_inputs(batch: Mapping[str, Any], transformer_config, vae=None, device: torch.device | str | None = None
                 ) -> dict[str, torch.Tensor | None]:
    """Collated windows -> transformer inputs in model space.

    Args:
        device: where `x0` and `camera_rays` go (default: where the batch's frames are). The masks and `num_history`
            stay where the batch is, and the camera rays are computed there: with the batch on the CPU (train.py's
            loader) nothing is read back from the device, so neither this nor the objective synchronises with it.

    Returns:
        `x0` `(B, C, F, h, w)` float32 (pixels in [-1, 1], or scaled latents: VAE-encoded here unless the windows
        already hold cached latents), `frame_mask` `(B, F)` bool, `num_history` `(B,)` leading source frames
        (`window_history_lengths`, for the `inference_matched` noise levels; None without `segment_ids`), and for
        pose-conditioned models `camera_rays` `(B, C_ray, F, h, w)` and `pose_mask` `(B, F)` bool from
        `window_camera_rays`, the conditioning the pipeline uses when sampling.
    """
    frames = batch["frames"]  # (B, F, C, H, W)
    device = frames.device if device is None else torch.device(device)
    frames = frames.to(device)
    if vae is not None and frames.shape[2] == 3 and frames.shape[2] != transformer_config.in_channels:
        b, f = frames.shape[:2]
        frames = encode_frames(vae, frames.flatten(0, 1)).unflatten(0, (b, f))
    x0 = frames.transpose(1, 2).float()
    out: dict[str, torch.Tensor | None] = {"x0": x0, "frame_mask": batch["frame_mask"]}
    out["num_history"] = None
    if "segment_ids" in batch:  # collated windows; hand-made batches without a layout get random history lengths
        out["num_history"] = window_history_lengths(batch["segment_ids"], batch["reversed"])
    ray_type = getattr(transformer_config, "camera_ray_type", None)
    out["camera_rays"] = out["pose_mask"] = None
    if ray_type is not None:
        rays, mask = window_camera_rays(batch["poses"], batch["pose_mask"] & batch["frame_mask"], x0.shape[-2],
                                        x0.shape[-1], ray_type)
        out["camera_rays"], out["pose_mask"] = rays.to(device), mask
    return out


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints: written under a hidden name, completed by a marker, renamed; pruned by renaming away, then deleting
# ----------------------------------------------------------------------------------------------------------------
def check_total_limit(total_limit: Any) -> None:
    """`--checkpoints_total_limit`: None (keep all) or an integer >= 1 (a limit below 1 would delete every
    checkpoint, the one just written included)."""
    if total_limit is not None and (isinstance(total_limit, bool) or not isinstance(total_limit, int)
                                    or total_limit < 1):
        raise ValueError(f"--checkpoints_total_limit: expected an integer >= 1 or nothing (keep all), got "
                         f"{total_limit!r}")


def _marker_problems(folder: Path) -> list[str] | None:
    """What the completion marker of `folder` says is missing ([] when complete); None without a marker."""
    marker = folder / CHECKPOINT_MARKER
    if not marker.is_file():
        return None
    try:
        files = json.loads(marker.read_text())["files"]
        files = {str(k): int(v) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return [f"a readable completion marker ({CHECKPOINT_MARKER} is damaged)"]
    problems = []
    for relative, size in sorted(files.items()):
        file = folder / relative
        if not file.is_file():
            problems.append(relative)
        elif file.stat().st_size != size:
            problems.append(f"{relative} ({file.stat().st_size} bytes, expected {size})")
    return problems


def _legacy_problems(folder: Path) -> list[str]:
    """Files missing from a checkpoint written before the completion marker existed (weights, optimiser, scheduler
    and random states, so a folder a kill left half-deleted is told apart from a complete one)."""
    missing = [name for name in LEGACY_CHECKPOINT_FILES if not (folder / name).is_file()]
    full = all((folder / "transformer" / name).is_file() for name in ("config.json", MODEL_WEIGHTS_NAME))
    if not full and not (folder / LORA_WEIGHTS_NAME).is_file():
        missing.append(f"transformer/config.json and transformer/{MODEL_WEIGHTS_NAME} (or {LORA_WEIGHTS_NAME})")
    return missing


def checkpoint_problems(folder: str | os.PathLike) -> list[str]:
    """What keeps `folder` from being a complete checkpoint: [] when its completion marker is present and every file
    it lists has the listed size; otherwise the missing pieces (the marker itself, or files)."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"the folder {str(folder)!r} itself"]
    problems = _marker_problems(folder)
    if problems is None:
        return [f"its completion marker {CHECKPOINT_MARKER} (written last; without it the checkpoint is incomplete "
                "or older than the marker)"]
    return problems


def _checkpoint_folders(output_dir: str | os.PathLike) -> dict[int, Path]:
    root = Path(output_dir)
    if not root.is_dir():
        return {}
    return {int(m.group(1)): p for p in root.iterdir()
            if p.is_dir() and (m := re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", p.name))}


def checkpoint_steps(output_dir: str | os.PathLike) -> list[int]:
    """Steps of the complete checkpoints (`checkpoint-N` folders whose completion marker is present and whose files
    are all there) in `output_dir`, ascending."""
    return sorted(step for step, folder in _checkpoint_folders(output_dir).items() if not checkpoint_problems(folder))


def incomplete_checkpoints(output_dir: str | os.PathLike) -> dict[Path, list[str]]:
    """`checkpoint-N` folders of `output_dir` that are not complete, with what each is missing."""
    found = {folder: checkpoint_problems(folder) for _, folder in sorted(_checkpoint_folders(output_dir).items())}
    return {folder: problems for folder, problems in found.items() if problems}


def _resolve_latest(output_dir: str | os.PathLike) -> Path | None:
    steps = checkpoint_steps(output_dir)
    incomplete = {folder: problems for folder, problems in incomplete_checkpoints(output_dir).items()
                  if not steps or int(folder.name.removeprefix(CHECKPOINT_PREFIX)) > steps[-1]}
    listing = "; ".join(f"{folder.name} lacks {', '.join(problems)}" for folder, problems in incomplete.items())
    if incomplete and not steps:
        # Starting afresh would overwrite these folders at the next save: the user decides.
        raise ValueError(f"--resume_from_checkpoint latest: expected a complete checkpoint in {str(output_dir)!r}, "
                         f"found only incomplete ones: {listing}. Pass one by path to resume from it (an older "
                         "train.py's checkpoint is checked file by file) or remove them.")
    if incomplete:
        logger.warning(f"skipping incomplete checkpoints newer than {CHECKPOINT_PREFIX}{steps[-1]}: {listing}")
    return Path(output_dir) / f"{CHECKPOINT_PREFIX}{steps[-1]}" if steps else None


def resolve_checkpoint(output_dir: str | os.PathLike, value: str | None) -> Path | None:
    """`--resume_from_checkpoint` value -> complete checkpoint folder.

    `"latest"` is the complete checkpoint with the highest step in `output_dir` (None when there is no checkpoint
    folder at all: the run starts fresh; a `ValueError` when there are only incomplete ones). A name is looked up in
    `output_dir`, a path is used as is; an incomplete folder raises a `ValueError` naming it and what it lacks. A
    folder without a completion marker (written by an older train.py) is accepted when every file such a checkpoint
    holds is there. Hidden (temporary or being deleted) folders are never returned."""
    if value is None:
        return None
    if value == "latest":
        return _resolve_latest(output_dir)
    path = Path(value)
    if not path.is_dir():
        path = Path(output_dir) / value
    if not path.is_dir() or not re.fullmatch(rf"{CHECKPOINT_PREFIX}\d+", path.name):
        raise ValueError(
            f"--resume_from_checkpoint must be 'latest', a checkpoint name in --output_dir or a path to a "
            f"'checkpoint-N' folder, got {value!r} (no such complete checkpoint)."
        )
    problems = checkpoint_problems(path)
    if problems and _marker_problems(path) is None and not _legacy_problems(path):
        logger.warning(f"{path} has no completion marker (written by an older train.py); all its files are there")
        return path
    if problems:
        if _marker_problems(path) is None:
            problems = problems + _legacy_problems(path)
        raise ValueError(f"--resume_from_checkpoint: {str(path)!r} is an incomplete checkpoint (interrupted while "
                         f"written or deleted); it lacks {', '.join(problems)}")
    return path


def _remove_folder(folder: Path) -> None:
    """Rename `folder` to a hidden name (atomic: it stops being listed at once), then delete it, so a kill at any
    moment never leaves a half-deleted folder under a checkpoint's name."""
    hidden = folder.with_name(f".{folder.name}.deleting-{os.getpid()}")
    os.replace(folder, hidden)
    shutil.rmtree(hidden)


def prune_checkpoints(output_dir: str | os.PathLike, total_limit: int | None, keep: int | None = None) -> list[Path]:
    """Delete the oldest complete checkpoints beyond `total_limit` (None: keep all; else >= 1), never the one of step
    `keep` (the checkpoint just written); returns the folders removed."""
    check_total_limit(total_limit)
    if total_limit is None:
        return []
    steps = checkpoint_steps(output_dir)
    excess = max(0, len(steps) - total_limit)
    removed = [Path(output_dir) / f"{CHECKPOINT_PREFIX}{s}" for s in steps if s != keep][:excess]
    for path in removed:
        _remove_folder(path)
    return removed


def remove_stale_checkpoint_folders(output_dir: str | os.PathLike) -> list[Path]:
    """Remove the hidden `.checkpoint-*` folders killed saves and prunes leave (never listed, never resumed)."""
    root = Path(output_dir)
    stale = sorted(root.glob(f".{CHECKPOINT_PREFIX}*")) if root.is_dir() else []
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return stale


def _write_marker(folder: Path, step: int) -> None:
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != CHECKPOINT_MARKER}
    atomic_write_text(folder / CHECKPOINT_MARKER, json.dumps({"step": step, "files": files}, indent=1))


def _write_failure(final: Path, error: BaseException) -> OSError:
    free = shutil.disk_usage(final.parent).free if final.parent.is_dir() else 0
    code = error.errno if isinstance(error, OSError) and error.errno else errno.EIO
    return OSError(code, f"could not write the checkpoint {str(final)!r} ({free:,} bytes free there; is the disk "
                         f"full or read-only?): {' '.join(str(error).split())}. Earlier checkpoints are kept.",
                   str(final))


def save_checkpoint_atomically(accelerator, output_dir: str | os.PathLike, step: int,
                               total_limit: int | None = None) -> Path:
    """`accelerator.save_state` into the hidden `.checkpoint-N.tmp`, then (main process) the completion marker (last
    file written), the rename to `checkpoint-N` and the pruning.

    A process killed while writing leaves only the hidden folder, which is never listed and which the next save
    removes, so `latest` always resolves to a complete checkpoint; a failed write (disk full, read-only) removes it
    and raises an `OSError` naming the checkpoint. Every process must call this.
    Test hook: with `SYN2SEQ_TEST_PAUSE_CHECKPOINT_STEP=N` the main process writes `PAUSED` into the temporary folder
    of step N after `save_state` and sleeps, so a test can kill it mid-checkpoint deterministically.
    """
    check_total_limit(total_limit)
    root = Path(output_dir)
    final = root / f"{CHECKPOINT_PREFIX}{step}"
    tmp = root / f".{CHECKPOINT_PREFIX}{step}.tmp"
    if accelerator.is_main_process:
        remove_stale_checkpoint_folders(root)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
    except (OSError, RuntimeError, SafetensorError) as error:  # torch says "unexpected pos" for a full disk
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise _write_failure(final, error) from error
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if os.environ.get("SYN2SEQ_TEST_PAUSE_CHECKPOINT_STEP") == str(step):
            (tmp / "PAUSED").write_text(str(os.getpid()))
            while True:  # the test kills us here
                time.sleep(1.0)
        try:
            fix_weight_modes([tmp])
            _write_marker(tmp, step)
        except OSError as error:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _write_failure(final, error) from error
        if final.exists():  # re-saving a step (e.g. after resuming onto it): replace the old one
            _remove_folder(final)
        os.replace(tmp, final)
        prune_checkpoints(root, total_limit, keep=step)
    accelerator.wait_for_everyone()
    return final


# ----------------------------------------------------------------------------------------------------------------
# EMA weights in checkpoints: safetensors, never a pickle
# ----------------------------------------------------------------------------------------------------------------
def _ema_tensors_and_metadata(state: Mapping[str, Any], source: str) -> tuple[dict[str, torch.Tensor], dict]:
    """`EMAModel.state_dict()` -> (`shadow_params.<i>` tensors, JSON metadata of the numbers)."""
    state = dict(state)
    shadow = state.pop("shadow_params", None)
    if not isinstance(shadow, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in shadow):
        raise ValueError(f"{source}: expected an EMA state with a list of shadow_params tensors")
    if not all(isinstance(v, (bool, int, float)) for v in state.values()):
        raise ValueError(f"{source}: expected EMA settings that are numbers, got {sorted(state)}")
    tensors = {f"shadow_params.{i}": t.detach().to("cpu").contiguous() for i, t in enumerate(shadow)}
    return tensors, {"format": "syn2seq-ema-1", "state": json.dumps(state)}


def save_ema_state(ema, folder: str | os.PathLike) -> Path:
    """Write `ema` (a diffusers `EMAModel`) to `folder/ema.safetensors`: its shadow parameters as tensors, its
    settings (decay, optimisation step, ...) as JSON in the header. `load_ema_state` reads it back exactly."""
    path = Path(folder) / EMA_WEIGHTS_NAME
    tensors, metadata = _ema_tensors_and_metadata(ema.state_dict(), str(path))
    save_file(tensors, str(path), metadata=metadata)
    fix_weight_modes([path])
    return path


def load_ema_state(ema, folder: str | os.PathLike) -> None:
    """Load `folder/ema.safetensors` (`save_ema_state`) into `ema`, on the device of its current shadow parameters;
    errors name the file and what does not match."""
    path = Path(folder) / EMA_WEIGHTS_NAME
    if not path.is_file():
        raise ValueError(f"checkpoint {str(folder)!r}: expected the EMA weights {EMA_WEIGHTS_NAME} (this run uses "
                         "--use_ema), but the checkpoint has none; resume without --use_ema or from an EMA run")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
        state = json.loads(metadata["state"])
    except (OSError, ValueError, KeyError, SafetensorError) as error:
        raise ValueError(f"{str(path)!r}: not a readable EMA state ({error})") from None
    current = ema.shadow_params
    expected = [f"shadow_params.{i}" for i in range(len(current))]
    if sorted(tensors) != sorted(expected):
        raise ValueError(f"{str(path)!r}: expected {len(current)} EMA tensors (shadow_params.0..), got {len(tensors)}")
    for key, param in zip(expected, current):
        if tensors[key].shape != param.shape:
            raise ValueError(f"{str(path)!r}: {key} has shape {tuple(tensors[key].shape)}, the model's parameter "
                             f"{tuple(param.shape)}")
    state["shadow_params"] = [tensors[key].to(device=param.device, dtype=param.dtype)
                              for key, param in zip(expected, current)]
    try:
        ema.load_state_dict(state)
    except ValueError as error:
        raise ValueError(f"{str(path)!r}: {error}") from None


def _convert_legacy_ema(pickle_file: Path, target: Path) -> None:
    """The EMA of a checkpoint written before `ema.safetensors` existed (accelerate's `custom_checkpoint_0.pkl`),
    read with torch's restricted loader (`weights_only=True`: tensors and numbers only, never code) and written as
    `ema.safetensors` to `target`."""
    try:
        state = torch.load(pickle_file, map_location="cpu", weights_only=True)
    except Exception as error:  # the restricted unpickler raises UnpicklingError, RuntimeError, ...
        raise ValueError(f"{str(pickle_file)!r}: refused by the restricted loader (weights_only=True), so it is not a "
                         f"plain EMA state (tensors and numbers) and is never loaded: {' '.join(str(error).split())}"
                         ) from None
    if not isinstance(state, Mapping):
        raise ValueError(f"{str(pickle_file)!r}: expected an EMA state dict, got {type(state).__name__}")
    tensors, metadata = _ema_tensors_and_metadata(state, str(pickle_file))
    save_file(tensors, str(target / EMA_WEIGHTS_NAME), metadata=metadata)


def _check_random_states(folder: Path) -> None:
    """accelerate reads `random_states_<i>.pkl` with its restricted loader but skips the file silently when that
    refuses it; read each here the same way, so a tampered file is an error naming it."""
    from accelerate.utils import load

    for path in sorted(folder.glob("random_states_*.pkl")):
        try:
            states = load(path)
        except Exception as error:  # UnpicklingError for anything that is not plain state
            raise ValueError(f"{str(path)!r}: refused by accelerate's restricted loader (weights_only=True), so it is "
                             f"not a plain random state and is never loaded: {' '.join(str(error).split())}") from None
        if not isinstance(states, Mapping):
            raise ValueError(f"{str(path)!r}: expected a dict of random states, got {type(states).__name__}")


@contextmanager
def loadable_checkpoint(folder: str | os.PathLike, use_ema: bool) -> Iterator[Path]:
    """The folder to hand to `accelerator.load_state`: `folder` itself, or, when it holds accelerate's pickled
    `custom_checkpoint_*.pkl` files (which accelerate would unpickle with `weights_only=False`), a temporary view
    without them.

    Only a checkpoint of an older train.py (no completion marker) may hold one, `custom_checkpoint_0.pkl`, its EMA:
    converted to `ema.safetensors` in the view with the restricted loader when the run uses EMA, ignored otherwise.
    Any other pickled state, and random states the restricted loader refuses, raise a `ValueError` naming the file.
    """
    folder = Path(folder)
    _check_random_states(folder)
    pickles = sorted(p.name for p in folder.iterdir() if re.fullmatch(r"custom_checkpoint_\d+\.pkl", p.name))
    if not pickles:
        yield folder
        return
    if (folder / CHECKPOINT_MARKER).exists() or pickles != [LEGACY_EMA_PICKLE]:
        raise ValueError(f"checkpoint {str(folder)!r} holds pickled state {pickles} that train.py does not write; "
                         "pickles are never loaded from checkpoints (unpickling can run code): remove them to resume")
    view = Path(tempfile.mkdtemp(prefix="syn2seq-resume-"))
    try:
        for entry in folder.iterdir():
            if entry.name != LEGACY_EMA_PICKLE:
                (view / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        if use_ema and not (folder / EMA_WEIGHTS_NAME).exists():
            _convert_legacy_ema(folder / LEGACY_EMA_PICKLE, view)
        yield view
    finally:
        shutil.rmtree(view, ignore_errors=True)
