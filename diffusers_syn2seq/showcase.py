# SPDX-License-Identifier: Apache-2.0
"""One clip generated and shown beside its source and truth: the shared core of `syn2seq demo`, `generate` and the app.

A *showcase* is the source clip, the generated target clip and, for a held-out SynthEgoExo scene, the true target
clip and the PSNRs (model and "copy the source frame next to the transition" baseline). `syn2seq demo` writes one to a
folder, `syn2seq generate` writes its generated clip, and the interactive app (`diffusers_syn2seq.app`) shows it in a
browser. Clips are uint8 `(F, H, W, 3)` at the model resolution; the pictures are enlarged (nearest neighbour) so that
a frame is at least `MIN_DISPLAY_SIDE` pixels: the bundled model's 32-pixel frames are unreadable at 1x.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .bundled import trained_reverse_prob, trained_scene_style
from .evaluation import (
    copy_source_prediction,
    generate_scene,
    pixel_frame_size,
    resize_frames,
    side_by_side,
    side_by_side_animation,
    source_target_views,
)
from .metrics import psnr

MIN_DISPLAY_SIDE = 128  # pixels of an enlarged frame in the side-by-side pictures


@dataclass
class Showcase:
    """A generated clip with its source and (when known) its truth; uint8 `(F, H, W, 3)` clips, PSNR in dB."""

    source_view: str
    target_view: str
    source: np.ndarray
    generated: np.ndarray
    truth: np.ndarray | None = None
    psnr: float | None = None
    baseline_psnr: float | None = None

    def rows(self) -> list[tuple[str, np.ndarray]]:
        """Labelled clips in display order: source | generated (with its PSNR) | truth."""
        score = "" if self.psnr is None else f"\nPSNR {self.psnr:.2f} dB"
        rows = [(f"{self.source_view} (input)", self.source), (f"{self.target_view} generated{score}", self.generated)]
        if self.truth is not None:
            rows.append((f"{self.target_view} (true)", self.truth))
        return rows


def syn2seq_settings(pipe, mode: str | None = None, num_transition_frames: int | None = None) -> tuple[str, int]:
    """`(mode, num_transition_frames)`: the given ones, else the pipeline's configuration (0 for `jump`)."""
    mode = mode or pipe.config.mode
    if num_transition_frames is None:
        num_transition_frames = 0 if mode == "jump" else pipe.config.num_transition_frames
    return mode, int(num_transition_frames)


def demo_num_frames(requested: int | None, max_frames: int, num_transition: int, temporal: int = 1) -> int:
    """Frames of the demo's source and target clips: `requested`, else the longest clips of one window of `max_frames`
    model frames. Longer clips are sampled with a sliding window, as `syn2seq generate` does (`window_note`). With a
    causal video VAE compressing time `temporal` times, `max_frames` counts latent frames and a clip of n frames gives
    `1 + (n - 1) // t` source and `n // t` target latents (`scene_frame_counts`); the default is then `1 + t k`."""
    if requested is not None:
        return requested
    t = temporal
    if t == 1:
        return max(1, (max_frames - num_transition) // 2)
    return 1 + t * max(1, (max_frames - num_transition // t - 1) // 2)


def window_note(max_frames: int, num_history: int, num_generate: int) -> str | None:
    """What the pipeline does when `[num_history | num_generate]` model frames exceed its window (the one rule of the
    demo, `generate` and the app), None when they fit one window."""
    from .data.windows import plan_windows

    windows = plan_windows(num_history, num_generate, max_frames)
    if len(windows) == 1:
        return None
    return (f"{num_history} source + {num_generate} generated model frames exceed the model's window of {max_frames}: "
            f"sampled with a sliding window ({len(windows)} windows, each keeping {max_frames // 2} frames of "
            "history; quality may drop after the first window)")


def pipeline_note(pipe, folder: str | os.PathLike, direction: str, style: str | None = None,
                  frame_size: tuple[int, int] | None = None, what: str = "the scenes") -> list[str]:
    """Warnings about running the model outside what it was trained on: an Ego2Exo run of an Exo2Ego-only model,
    scenes of another SynthEgoExo style (`style`), frames `(H, W)` of another size than the model's (`frame_size`;
    they are resized). `what` names the data in the messages."""
    notes = []
    if direction == "ego2exo" and trained_reverse_prob(folder) == 0.0:
        notes.append(f"warning: {folder} was trained on Exo2Ego only (reverse_prob 0); its Ego2Exo output is out of "
                     "distribution.")
    trained = trained_scene_style(folder)
    if style is not None and trained is not None and style != trained:
        notes.append(f"warning: {folder} was trained on {trained} SynthEgoExo scenes; {what} are {style} scenes, "
                     "out of its training distribution.")
    size = pixel_frame_size(pipe)
    if frame_size is not None and tuple(frame_size) != (size, size):
        notes.append(f"warning: {what} have {frame_size[1]}x{frame_size[0]} frames and {folder} was trained at "
                     f"{size}x{size}: they are resized (bicubic), and the scores are not those of the resolution "
                     "it was trained at.")
    return notes


def held_out_scene(index: int, num_frames: int, size: int, num_transition: int, style: str,
                   name: str = "--scene") -> tuple[dict, int]:
    """`(clip, seed)`: held-out SynthEgoExo test scene `index` (seed `first test seed + index`), rendered at `size`."""
    from .data import SPLIT_SEED_RANGES, render_synthetic_clip

    first, last = SPLIT_SEED_RANGES["test"]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < last - first:
        raise ValueError(f"{name}: expected the index of a held-out test scene in [0, {last - first - 1}], got "
                         f"{index!r}")
    seed = first + index
    return render_synthetic_clip(seed, num_frames=num_frames, resolution=size, num_transition_frames=num_transition,
                                 style=style), seed


def to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """float `(F, 3, H, W)` tensor or `(F, H, W, 3)` array in [0, 1] -> uint8 `(F, H, W, 3)`."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


def showcase_scene(pipe, scene: dict, mode: str, direction: str, num_transition: int, steps: int, seed: int,
                   sampling: dict | None = None) -> Showcase:
    """Generate a scene's target clip from its source clip (`evaluation.generate_scene`) and score it against the
    truth and the "copy the source frame" baseline. `sampling`: further pipeline arguments (history guidance,
    `callback_on_step_end`, ...)."""
    source_view, target_view = source_target_views(direction)
    generated, truth = generate_scene(pipe, scene, mode, direction, num_transition, steps, seed, sampling=sampling)
    baseline = copy_source_prediction(scene, direction, len(truth))
    return Showcase(source_view, target_view, resize_frames(scene[source_view], pixel_frame_size(pipe)),
                    to_uint8(generated), to_uint8(truth), float(psnr(generated, truth).mean()),
                    float(psnr(baseline, truth).mean()))


def read_source_clip(path: str | os.PathLike, name: str = "--exo") -> np.ndarray:
    """The uint8 `(F, H, W, 3)` frames of a user's video file; a missing or unreadable file raises naming `name`."""
    from .data.video_io import read_video

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: video file {str(path)!r} does not exist")
    try:
        return read_video(path)
    except ValueError as error:
        raise ValueError(f"{name}: could not read video {str(path)!r}: {error}") from None


def showcase_upload(pipe, exo: np.ndarray, exo_poses: np.ndarray, ego_poses: np.ndarray, mode: str,
                    num_transition: int, steps: int, seed: int, sampling: dict | None = None) -> Showcase:
    """Generate the ego clip of a user's exo clip (resized to the model resolution) for `len(ego_poses)` ego frames;
    there is no truth. Poses: `(Ne, 16)` and `(Ng, 16)` (`data.poses_file`); used by pose-conditioned models only."""
    size = pixel_frame_size(pipe)
    exo = resize_frames(exo, size)
    kwargs = {}
    if getattr(pipe.transformer.config, "camera_ray_type", None) is not None:
        kwargs = dict(source_poses=torch.from_numpy(exo_poses), target_poses=torch.from_numpy(ego_poses))
    result = pipe(exo, num_frames=len(ego_poses), mode=mode, num_transition_frames=num_transition,
                  direction="exo2ego", num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                  output_type="np", **kwargs, **(sampling or {}))
    return Showcase("exo", "ego", exo, to_uint8(result.frames[0]))


def display_scale(side: int, minimum: int = MIN_DISPLAY_SIDE) -> int:
    """Integer nearest-neighbour enlargement that makes a `side`-pixel frame at least `minimum` pixels."""
    return max(1, math.ceil(minimum / side))


def enlarge(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of uint8 `(F, H, W, 3)` frames by an integer `scale` (pixels stay sharp)."""
    return frames.repeat(scale, axis=1).repeat(scale, axis=2)


def write_pictures(showcase: Showcase, png: str | os.PathLike, gif: str | os.PathLike | None = None,
                   fps: float = 8.0) -> None:
    """The side-by-side strip PNG (one labelled row of frames per clip) and, with `gif`, the animated side-by-side,
    both enlarged so that a frame is at least `MIN_DISPLAY_SIDE` pixels."""
    scale = display_scale(showcase.source.shape[1])
    side_by_side(showcase.rows(), Path(png), scale=scale)
    if gif is not None:
        side_by_side_animation(showcase.rows(), Path(gif), scale=scale, fps=fps)
