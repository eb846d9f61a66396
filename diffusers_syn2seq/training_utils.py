# SPDX-License-Identifier: Apache-2.0
"""Pieces of `training/train.py` that tests and other scripts import: training windows, the diffusion-forcing loss,
atomic checkpoints, video metrics and the Hub upload (or its dry run).

The data path reads in one direction: dataset take -> Syn2Seq sequence -> random window (deterministic in
`(seed, epoch, index)`) -> batch -> model space (pixels or per-frame VAE latents) -> noisy frames at per-frame levels
-> transformer -> weighted MSE against the scheduler's target.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .camera import ray_map
from .data.sequence import SEGMENT_EGO, SEGMENT_EXO, SEGMENT_TRANSITION, build_syn2seq_sequence, sample_window
from .pipelines.pipeline_syn2seq import encode_frames

__all__ = [
    "CHECKPOINT_PREFIX",
    "DEFAULT_LORA_TARGETS",
    "HUB_IGNORE_PATTERNS",
    "EpochShuffleSampler",
    "Syn2SeqTrainingWindows",
    "checkpoint_steps",
    "diffusion_forcing_loss",
    "encode_frames",
    "files_to_upload",
    "model_inputs",
    "prune_checkpoints",
    "psnr",
    "push_folder_to_hub",
    "resolve_checkpoint",
    "save_checkpoint_atomically",
    "ssim",
    "step_seed",
]

# Attention and MLP projections of `DFoTTransformerBlock`.
DEFAULT_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
CHECKPOINT_PREFIX = "checkpoint-"
# Never uploaded: training state, logs, the dry-run copy itself.
HUB_IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/*", ".checkpoint-*", ".checkpoint-*/*", "logs/*", "hub_dry_run/*",
                       "latent_cache*", "*.tmp"]


# ----------------------------------------------------------------------------------------------------------------
# Data: deterministic Syn2Seq windows
# ----------------------------------------------------------------------------------------------------------------
class Syn2SeqTrainingWindows(torch.utils.data.Dataset):
    """Training windows of a take dataset; the window start and the Ego2Exo reversal of item `i` in epoch `e` are drawn
    from `numpy.random.default_rng([seed, e, i])`, so they do not depend on workers, processes or resumption.

    Args:
        takes: map-style dataset of takes (`Syn2SeqClipDataset` items: `exo`, `ego`, poses, optional `transition`),
            decoded in the DataLoader workers.
        mode, max_frames, reverse_prob, reversal, transition_fn, num_transition_frames: as in
            `diffusers_syn2seq.data.Syn2SeqSequenceBuilder`.
        seed: base seed.
        latents: optional per-take cache (`encode_take_latents`): dicts `exo`, `ego`, `transition` of `(T, C, h, w)`
            latents plus the poses; when given, videos are not decoded and windows hold latents in `frames`.

    Item: a window of `sample_window` (`frames` `(F, C, H, W)`, `poses`, `pose_mask`, `segment_ids`, ...).
    """

    def __init__(
        self,
        takes: Sequence[Mapping[str, Any]],
        mode: str,
        max_frames: int,
        reverse_prob: float = 0.0,
        reversal: str = "full",
        transition_fn=None,
        num_transition_frames: int | None = None,
        seed: int = 0,
        latents: Sequence[Mapping[str, Any]] | None = None,
    ):
        self.takes, self.latents = takes, latents
        self.mode, self.max_frames, self.reverse_prob, self.reversal = mode, max_frames, reverse_prob, reversal
        self.transition_fn, self.num_transition_frames = transition_fn, num_transition_frames
        self.seed, self.epoch = seed, 0

    def select_epoch(self, epoch: int) -> None:
        """Select the epoch whose windows are drawn (call before creating the DataLoader iterator). Deliberately not
        named `set_epoch`: accelerate's prepared loaders call that with their own iteration count, which restarts at 0
        in a resumed run and would break exact resumption."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.latents) if self.latents is not None else len(self.takes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        reverse = bool(rng.uniform() < self.reverse_prob)
        if self.latents is None:
            sequence = build_syn2seq_sequence(
                self.takes[index], self.mode, reverse, self.reversal, self.transition_fn, self.num_transition_frames
            )
            return sample_window(sequence, self.max_frames, rng=rng)
        # Cached latents: lay out the sequence on 1x1 placeholder frames, then gather each frame's latent by
        # (segment, index within its clip), which `build_syn2seq_sequence` records for every frame.
        cache = self.latents[index]
        sample = {key: cache[key] for key in ("exo_poses", "ego_poses", "transition_poses", "take_id")}
        for key in ("exo", "ego", "transition"):
            sample[key] = None if cache[key] is None else np.zeros((len(cache[key]), 1, 1, 3), np.uint8)
        sequence = build_syn2seq_sequence(sample, self.mode, reverse, self.reversal)
        window = sample_window(sequence, self.max_frames, rng=rng)
        by_segment = {SEGMENT_EXO: cache["exo"], SEGMENT_TRANSITION: cache["transition"], SEGMENT_EGO: cache["ego"]}
        window["frames"] = torch.stack(
            [by_segment[int(s)][int(i)] for s, i in zip(window["segment_ids"], window["frame_index"])]
        )
        return window


class EpochShuffleSampler(torch.utils.data.Sampler):
    """A permutation of `range(num_items)` drawn from `torch.Generator().manual_seed(seed + epoch)`: the same on every
    process and after resumption (accelerate shards the batches of this order across processes)."""

    def __init__(self, num_items: int, seed: int = 0, shuffle: bool = True):
        self.num_items, self.seed, self.shuffle, self.epoch = num_items, seed, shuffle, 0

    def select_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.num_items))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_items, generator=generator).tolist())


def step_seed(seed: int, micro_step: int, process_index: int) -> int:
    """Seed of the noise, levels and dropout of one micro-batch: a pure function of the run seed, the micro-step and the
    process, so a resumed run draws exactly what an uninterrupted one would."""
    return (seed * 1_000_003 + micro_step * 9_973 + process_index * 7_919) % (2**63 - 1)


# ----------------------------------------------------------------------------------------------------------------
# Model space
# ----------------------------------------------------------------------------------------------------------------
@torch.no_grad()
@torch.no_grad()
def encode_take_latents(vae, take: Mapping[str, Any], transition_fn=None, num_transition_frames: int | None = None,
                        batch_size: int = 16) -> dict[str, Any]:
    """Latents of one decoded take for `Syn2SeqTrainingWindows(latents=...)`: `exo`, `ego`, `transition` (the cached
    transition, else `transition_fn(exo[-1], ego[0], n)`, else None) as CPU `(T, C, h, w)`, and their poses."""

    def encode(video: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return torch.cat([encode_frames(vae, chunk).cpu() for chunk in pixels.split(batch_size)])

    transition, transition_poses = take.get("transition"), take.get("transition_poses")
    if transition is None and transition_fn is not None and num_transition_frames:
        transition, transition_poses = transition_fn(take["exo"][-1], take["ego"][0], num_transition_frames), None
    return {
        "take_id": take.get("take_id"),
        "exo": encode(take["exo"]),
        "ego": encode(take["ego"]),
        "transition": None if transition is None else encode(transition),
        "exo_poses": np.asarray(take["exo_poses"]),
        "ego_poses": np.asarray(take["ego_poses"]),
        "transition_poses": None if transition_poses is None else np.asarray(transition_poses),
    }


def model_inputs(batch: Mapping[str, Any], transformer_config, vae=None) -> dict[str, torch.Tensor | None]:
    """Collated windows -> transformer inputs in model space.

    Returns:
        `x0` `(B, C, F, h, w)` float32 (pixels in [-1, 1], or scaled latents: VAE-encoded here unless the windows
        already hold cached latents), `frame_mask` `(B, F)` bool, and for pose-conditioned models `camera_rays`
        `(B, C_ray, F, h, w)` (poses normalised by each window's first frame) and `pose_mask` `(B, F)` bool.
    """
    frames = batch["frames"]  # (B, F, C, H, W)
    if vae is not None and frames.shape[2] == 3 and frames.shape[2] != transformer_config.in_channels:
        b, f = frames.shape[:2]
        frames = encode_frames(vae, frames.flatten(0, 1)).unflatten(0, (b, f))
    x0 = frames.transpose(1, 2).float()
    out: dict[str, torch.Tensor | None] = {"x0": x0, "frame_mask": batch["frame_mask"].to(x0.device)}
    ray_type = getattr(transformer_config, "camera_ray_type", None)
    out["camera_rays"] = out["pose_mask"] = None
    if ray_type is not None:
        poses = batch["poses"].to(x0.device, torch.float32)
        out["camera_rays"] = ray_map(poses, x0.shape[-2], x0.shape[-1], kind=ray_type, normalize=True)
        out["pose_mask"] = (batch["pose_mask"] & batch["frame_mask"]).to(x0.device)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Objective
# ----------------------------------------------------------------------------------------------------------------
def diffusion_forcing_loss(
    transformer,
    scheduler,
    x0: torch.Tensor,
    frame_mask: torch.Tensor,
    camera_rays: torch.Tensor | None = None,
    pose_mask: torch.Tensor | None = None,
    noise_level_sampling: str = "iid",
    num_context_frames: int = 0,
    loss_weighting: str = "sigmoid",
    condition_dropout: float = 0.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    levels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DFoT's objective on one batch: every frame gets its own noise level, all real frames get loss.

    Args:
        x0: clean frames `(B, C, F, H, W)` in model space.
        frame_mask: `(B, F)` True for real frames; padded frames are fully noised and get no loss.
        camera_rays, pose_mask: pose conditioning (`model_inputs`); frames with `pose_mask` False get the null
            camera embedding.
        noise_level_sampling: `"iid"` (DFoT) or `"uniform_future"` (frames after `num_context_frames` share a level).
        loss_weighting: `scheduler.loss_weights` strategy (`"sigmoid"`, `"min_snr"`, `"fused_min_snr"`, `"uniform"`).
        condition_dropout: probability of dropping a sample's camera poses (trains the unconditional branch of pose
            guidance, DFoT's 10%).
        generator: source of levels, noise and dropout (None: the global RNG).
        noise, levels: fixed values instead of drawing them (used for the fixed-batch loss).

    Returns:
        the scalar loss (mean over real frames of the weighted per-frame MSE in `prediction_type` space) and a dict with
        the per-frame `mse` and `weights` `(B, F)` and the `levels`.
    """
    batch, _, num_frames = x0.shape[:3]
    device = x0.device
    if levels is None:
        levels = scheduler.sample_noise_levels(
            batch, num_frames, strategy=noise_level_sampling, num_context_frames=min(num_context_frames, num_frames),
            frame_mask=frame_mask.cpu(), continuous=scheduler.is_continuous, generator=generator,
        )
    levels = levels.to(device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(device)
    noise = noise.clamp(-20.0, 20.0)  # DFoT clips the training noise
    noisy = scheduler.add_noise(x0, noise, levels)
    target = scheduler.get_target(x0, noise, levels)

    rays_mask = None
    if camera_rays is not None:
        rays_mask = pose_mask.clone() if pose_mask is not None else torch.ones(batch, num_frames, dtype=torch.bool)
        if condition_dropout > 0:
            keep = torch.rand(batch, generator=generator) >= condition_dropout
            rays_mask = rays_mask & keep.to(rays_mask.device)[:, None]
    model_dtype = next(transformer.parameters()).dtype
    prediction = transformer(
        hidden_states=noisy.to(model_dtype),
        timestep=scheduler.model_timesteps(levels).to(device),
        camera_rays=None if camera_rays is None else camera_rays.to(model_dtype),
        camera_rays_mask=rays_mask,
        return_dict=False,
    )[0]
    mse = ((prediction.float() - target.float()) ** 2).mean(dim=(1, 3, 4))  # (B, F)
    weights = scheduler.loss_weights(levels.cpu(), strategy=loss_weighting).to(device)
    valid = frame_mask.to(device).float()
    loss = (mse * weights * valid).sum() / valid.sum().clamp(min=1.0)
    return loss, {"mse": mse.detach(), "weights": weights, "levels": levels}


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


# ----------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------
def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-frame PSNR in dB of `(..., C, H, W)` images in `[0, data_range]` -> `(...)`."""
    mse = ((pred.float() - target.float()) ** 2).flatten(-3).mean(-1)
    return 10.0 * torch.log10(data_range**2 / mse.clamp(min=1e-12))


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Per-frame SSIM (Wang et al. 2004; Gaussian window 11, sigma 1.5, channel mean) of `(..., C, H, W)` images in
    `[0, data_range]` -> `(...)`. The window shrinks to the image side for tiny frames."""
    lead, (c, h, w) = pred.shape[:-3], pred.shape[-3:]
    x, y = pred.float().reshape(-1, c, h, w), target.float().reshape(-1, c, h, w)
    size = min(window, h, w)
    size -= 1 - size % 2  # odd, so the window has a centre
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.device)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, size, size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return value.flatten(1).mean(-1).reshape(lead)


# ----------------------------------------------------------------------------------------------------------------
# Hub
# ----------------------------------------------------------------------------------------------------------------
def files_to_upload(folder: str | os.PathLike, ignore_patterns: Sequence[str] = HUB_IGNORE_PATTERNS) -> list[str]:
    """Relative POSIX paths under `folder` that `upload_folder(..., ignore_patterns=...)` would send, sorted."""
    root = Path(folder)
    files = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if any(fnmatch.fnmatch(rel, pattern) for pattern in ignore_patterns):
            continue
        files.append(rel)
    return files


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload Syn2Seq training output",
    dry_run_dir: str | os.PathLike | None = None,
    ignore_patterns: Sequence[str] = HUB_IGNORE_PATTERNS,
) -> dict[str, Any]:
    """Upload `folder` to the Hub model repo `repo_id` (`create_repo` then `upload_folder`), or, with `dry_run_dir`,
    copy exactly the files that would be uploaded to `dry_run_dir/files/` and write `dry_run_dir/upload_manifest.json`
    (repo, files, sizes), touching no network.

    Returns:
        the manifest dict (`repo_id`, `files`, `dry_run`, and `commit_url` for a real upload).
    """
    if not repo_id or os.path.isdir(repo_id) or repo_id.count("/") > 1:
        raise ValueError(f"--hub_model_id must be a Hub repo id like 'user/name', got {repo_id!r}.")
    files = files_to_upload(folder, ignore_patterns)
    manifest: dict[str, Any] = {
        "repo_id": repo_id,
        "repo_type": "model",
        "private": private,
        "commit_message": commit_message,
        "files": [{"path": f, "size": (Path(folder) / f).stat().st_size} for f in files],
        "ignore_patterns": list(ignore_patterns),
        "dry_run": dry_run_dir is not None,
    }
    if dry_run_dir is not None:
        target = Path(dry_run_dir)
        if target.exists():
            shutil.rmtree(target)
        for rel in files:
            (target / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(folder) / rel, target / "files" / rel)
        target.mkdir(parents=True, exist_ok=True)
        (target / "upload_manifest.json").write_text(json.dumps(manifest, indent=2))
        return manifest
    from huggingface_hub import create_repo, upload_folder

    repo_id = create_repo(repo_id, exist_ok=True, token=token, private=private).repo_id
    commit = upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message, token=token,
                           ignore_patterns=list(ignore_patterns))
    manifest["repo_id"] = repo_id
    manifest["commit_url"] = str(getattr(commit, "commit_url", commit))
    return manifest


def is_finite_number(value: float) -> bool:
    """True for a finite float (used to refuse NaN/inf losses)."""
    return isinstance(value, (int, float)) and math.isfinite(value)
