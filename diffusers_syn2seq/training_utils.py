# SPDX-License-Identifier: Apache-2.0
"""What Syn2Seq training scripts share: per-step seeds, model inputs, checkpoints.

The data path reads in one direction: dataset take -> Syn2Seq sequence -> random window (`diffusers_syn2seq.data`,
deterministic in `(seed, epoch, index)`) -> batch -> model space (pixels or per-frame VAE latents,
`diffusers_syn2seq.latents`) -> the diffusion-forcing loss (`diffusers_syn2seq.objective`). Checkpoints are written
under a temporary name and renamed when complete, so a run resumes exactly from the last complete one.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .data.windows import window_camera_rays, window_history_lengths
from .latents import encode_frames

__all__ = [
    "CHECKPOINT_PREFIX",
    "DEFAULT_LORA_TARGETS",
    "checkpoint_steps",
    "model_inputs",
    "prune_checkpoints",
    "resolve_checkpoint",
    "save_checkpoint_atomically",
    "step_seed",
]

# Attention and MLP projections of `DFoTTransformerBlock`.
DEFAULT_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
CHECKPOINT_PREFIX = "checkpoint-"


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
def model_inputs(batch: Mapping[str, Any], transformer_config, vae=None) -> dict[str, torch.Tensor | None]:
    """Collated windows -> transformer inputs in model space.

    Returns:
        `x0` `(B, C, F, h, w)` float32 (pixels in [-1, 1], or scaled latents: VAE-encoded here unless the windows
        already hold cached latents), `frame_mask` `(B, F)` bool, `num_history` `(B,)` leading source frames
        (`window_history_lengths`, for the `inference_matched` noise levels; None without `segment_ids`), and for
        pose-conditioned models `camera_rays` `(B, C_ray, F, h, w)` and `pose_mask` `(B, F)` bool from
        `window_camera_rays`, the conditioning the pipeline uses when sampling.
    """
    frames = batch["frames"]  # (B, F, C, H, W)
    if vae is not None and frames.shape[2] == 3 and frames.shape[2] != transformer_config.in_channels:
        b, f = frames.shape[:2]
        frames = encode_frames(vae, frames.flatten(0, 1)).unflatten(0, (b, f))
    x0 = frames.transpose(1, 2).float()
    out: dict[str, torch.Tensor | None] = {"x0": x0, "frame_mask": batch["frame_mask"].to(x0.device)}
    out["num_history"] = None
    if "segment_ids" in batch:  # collated windows; hand-made batches without a layout get random history lengths
        out["num_history"] = window_history_lengths(batch["segment_ids"], batch["reversed"]).to(x0.device)
    ray_type = getattr(transformer_config, "camera_ray_type", None)
    out["camera_rays"] = out["pose_mask"] = None
    if ray_type is not None:
        rays, mask = window_camera_rays(batch["poses"], batch["pose_mask"] & batch["frame_mask"], x0.shape[-2],
                                        x0.shape[-1], ray_type)
        out["camera_rays"], out["pose_mask"] = rays.to(x0.device), mask.to(x0.device)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints: written under a temporary name, renamed when complete
# ----------------------------------------------------------------------------------------------------------------
def checkpoint_steps(output_dir: str | os.PathLike) -> list[int]:
    """Steps of the complete checkpoints (`checkpoint-N` folders) in `output_dir`, ascending."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    steps = [int(m.group(1)) for p in root.iterdir() if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    return sorted(steps)


def resolve_checkpoint(output_dir: str | os.PathLike, value: str | None) -> Path | None:
    """`--resume_from_checkpoint` value -> checkpoint folder: `"latest"` is the complete checkpoint with the highest
    step in `output_dir` (None when there is none: the run starts fresh), a name is looked up in `output_dir`, a path
    is used as is. Temporary (incomplete) folders are never returned."""
    if value is None:
        return None
    if value == "latest":
        steps = checkpoint_steps(output_dir)
        return Path(output_dir) / f"{CHECKPOINT_PREFIX}{steps[-1]}" if steps else None
    path = Path(value)
    if not path.is_dir():
        path = Path(output_dir) / value
    if not path.is_dir() or not re.fullmatch(r"checkpoint-\d+", path.name):
        raise ValueError(
            f"--resume_from_checkpoint must be 'latest', a checkpoint name in --output_dir or a path to a "
            f"'checkpoint-N' folder, got {value!r} (no such complete checkpoint)."
        )
    return path


def prune_checkpoints(output_dir: str | os.PathLike, total_limit: int | None) -> list[Path]:
    """Delete the oldest complete checkpoints beyond `total_limit` (after a new one is complete); returns them."""
    if not total_limit:
        return []
    steps = checkpoint_steps(output_dir)
    removed = [Path(output_dir) / f"{CHECKPOINT_PREFIX}{s}" for s in steps[: max(0, len(steps) - total_limit)]]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def save_checkpoint_atomically(accelerator, output_dir: str | os.PathLike, step: int,
                               total_limit: int | None = None) -> Path:
    """`accelerator.save_state` into `.checkpoint-N.tmp`, then (main process) rename to `checkpoint-N` and prune.

    A process killed while writing leaves only the temporary folder, which `resolve_checkpoint` ignores and the next
    save removes, so `latest` always resolves to a complete checkpoint. Every process must call this.
    Test hook: with `SYN2SEQ_TEST_PAUSE_CHECKPOINT_STEP=N` the main process writes `PAUSED` into the temporary folder
    of step N after `save_state` and sleeps, so a test can kill it mid-checkpoint deterministically.
    """
    root = Path(output_dir)
    final = root / f"{CHECKPOINT_PREFIX}{step}"
    tmp = root / f".{CHECKPOINT_PREFIX}{step}.tmp"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if os.environ.get("SYN2SEQ_TEST_PAUSE_CHECKPOINT_STEP") == str(step):
            (tmp / "PAUSED").write_text(str(os.getpid()))
            while True:  # the test kills us here
                time.sleep(1.0)
        if final.exists():  # re-saving a step (e.g. after resuming onto it): replace the old one
            shutil.rmtree(final)
        os.replace(tmp, final)
        prune_checkpoints(root, total_limit)
    accelerator.wait_for_everyone()
    return final
