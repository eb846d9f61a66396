# SPDX-License-Identifier: Apache-2.0
"""Evaluation of Syn2Seq generation: generate the target frames of held-out takes the way the benchmark does, score
them per frame (PSNR / SSIM of `diffusers_syn2seq.metrics`), and score the trivial baselines (mean training target
frame, copy of the last source frame) the same way. Used by `syn2seq evaluate`, the validation of
`training/train.py` and `benchmarks/syn2seq_experiment.py`; the statistics over scenes and seeds are in `metrics`.
"""

import os
from pathlib import Path

import numpy as np
import torch

from .data.sequence import MODES
from .metrics import psnr, ssim


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (T, H, W, 3) frames resized (bicubic) to (T, size, size, 3); returned as is when already that size."""
    from PIL import Image

    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BICUBIC)) for f in frames])


def pixel_frame_size(pipe) -> int:
    """Side in pixels of the frames the pipeline's model takes (its input grid times the VAE factor)."""
    return pipe.model_frame_size[0] * pipe.vae_scale_factor


def load_eval_scenes(data: str | os.PathLike, split: str = "test", num_scenes: int | None = None) -> list[dict]:
    """Decoded takes of a Syn2Seq dataset split (the first `num_scenes`, in table order)."""
    from .data import Syn2SeqClipDataset

    dataset = Syn2SeqClipDataset(data, split=split, load_transition=False)
    n = len(dataset) if num_scenes is None else min(num_scenes, len(dataset))
    if n == 0:
        raise ValueError(f"--data: split {split!r} of {str(data)!r} has no takes")
    return [dataset[i] for i in range(n)]


def mean_frame(data: str | os.PathLike, view: str = "ego", split: str = "train", max_takes: int | None = None
               ) -> np.ndarray:
    """Pixel-wise mean frame `(H, W, 3)` float in [0, 1] over every `view` frame of the split's takes."""
    from .data import Syn2SeqClipDataset

    dataset = Syn2SeqClipDataset(data, split=split, load_transition=False)
    total, count = None, 0
    for i in range(len(dataset) if max_takes is None else min(max_takes, len(dataset))):
        frames = dataset[i][view].astype(np.float64) / 255.0
        total = frames.sum(0) if total is None else total + frames.sum(0)
        count += len(frames)
    if count == 0:
        raise ValueError(f"split {split!r} of {str(data)!r} has no takes for the mean {view} frame")
    return total / count


def new_scores() -> dict[str, list]:
    """Empty per-scene score lists of one evaluated model or baseline."""
    return {"scene_ids": [], "psnr": [], "ssim": [], "per_frame_psnr": [], "per_frame_ssim": []}


def record_scores(scores: dict[str, list], scene_id: str, generated: torch.Tensor, truth: torch.Tensor) -> None:
    """Append one scene's per-frame PSNR / SSIM of (F, 3, H, W) tensors in [0, 1] and their means to `scores`."""
    frame_psnr, frame_ssim = psnr(generated, truth).tolist(), ssim(generated, truth).tolist()
    scores["scene_ids"].append(str(scene_id))
    scores["per_frame_psnr"].append(frame_psnr)
    scores["per_frame_ssim"].append(frame_ssim)
    scores["psnr"].append(float(np.mean(frame_psnr)))
    scores["ssim"].append(float(np.mean(frame_ssim)))


def frames_to_unit_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames -> float (T, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def source_target_views(direction: str) -> tuple[str, str]:
    """("exo", "ego") for exo2ego, ("ego", "exo") for ego2exo."""
    if direction not in ("exo2ego", "ego2exo"):
        raise ValueError(f"direction must be 'exo2ego' or 'ego2exo', got {direction!r}")
    return ("exo", "ego") if direction == "exo2ego" else ("ego", "exo")


def generate_scene(pipe, scene: dict, mode: str | None = None, direction: str = "exo2ego",
                   num_transition_frames: int | None = None, steps: int = 25, seed: int = 0,
                   num_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate one take's target clip from its source clip (and poses, for posed models) the way the benchmark does.

    `mode` and `num_transition_frames` default to the pipeline's configuration (the settings the model was trained
    with); `jump` generates no transition whatever `num_transition_frames` says. Returns `(generated, truth)`, float
    `(F, 3, H, W)` tensors in [0, 1] at the model's resolution, `F` = `num_frames` (default: the whole target clip).
    """
    mode = pipe.config.mode if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    source_view, target_view = source_target_views(direction)
    n = len(scene[target_view]) if num_frames is None else min(num_frames, len(scene[target_view]))
    size = pixel_frame_size(pipe)
    kwargs = {}
    if getattr(pipe.transformer.config, "camera_ray_type", None) is not None:
        kwargs = dict(source_poses=torch.from_numpy(np.asarray(scene[f"{source_view}_poses"])),
                      target_poses=torch.from_numpy(np.asarray(scene[f"{target_view}_poses"][:n])))
    out = pipe(resize_frames(scene[source_view], size), num_frames=n, mode=mode,
               num_transition_frames=0 if mode == "jump" else num_transition_frames, direction=direction,
               num_inference_steps=steps, generator=torch.Generator().manual_seed(seed), output_type="pt",
               **kwargs).frames[0]
    truth = frames_to_unit_tensor(resize_frames(scene[target_view][:n], size))
    return out.float().cpu().clamp(0, 1), truth


def copy_source_prediction(scene: dict, direction: str, num_frames: int) -> torch.Tensor:
    """The "copy the source frame" baseline: the source frame next to the transition in time (the last exo frame for
    Exo2Ego, the first ego frame for Ego2Exo) repeated `num_frames` times, float `(F, 3, H, W)` in [0, 1]."""
    source_view, _ = source_target_views(direction)
    adjacent = scene[source_view][-1] if direction == "exo2ego" else scene[source_view][0]
    return frames_to_unit_tensor(adjacent[None]).expand(num_frames, -1, -1, -1).contiguous()


def evaluate_pipeline(pipe, scenes: list[dict], mode: str | None = None, direction: str = "exo2ego",
                      num_transition_frames: int | None = None, steps: int = 25, seed: int = 0,
                      num_frames: int | None = None, progress: bool = True) -> dict:
    """Generate the target clip of every scene (`generate_scene`; `mode` and `num_transition_frames` default to the
    pipeline's configuration) and score it: per-scene mean PSNR / SSIM and per-frame PSNR. Scene `i` samples with seed
    `seed + i`."""
    from tqdm.auto import tqdm

    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    pipe.set_progress_bar_config(disable=True)
    result = new_scores()
    for i, scene in enumerate(tqdm(scenes, desc=f"evaluating {direction}", disable=not progress)):
        generated, truth = generate_scene(pipe, scene, mode, direction, num_transition_frames, steps, seed + i,
                                          num_frames)
        record_scores(result, scene["take_id"], generated, truth)
    return result


def evaluate_baselines(scenes: list[dict], mean_target_frame: np.ndarray, direction: str = "exo2ego",
                       num_frames: int | None = None) -> dict[str, dict]:
    """Trivial baselines scored like a model: `mean_frame` predicts the mean training target frame for every target
    frame; `copy_source` repeats the source frame next to the transition in time (the last exo frame for Exo2Ego,
    the first ego frame for Ego2Exo)."""
    _, target_view = source_target_views(direction)
    results = {name: new_scores() for name in ("mean_frame", "copy_source")}
    for scene in scenes:
        n = len(scene[target_view]) if num_frames is None else min(num_frames, len(scene[target_view]))
        truth = frames_to_unit_tensor(scene[target_view][:n])
        predictions = {
            "mean_frame": torch.from_numpy(mean_target_frame).permute(2, 0, 1).float()[None].expand_as(truth),
            "copy_source": copy_source_prediction(scene, direction, n),
        }
        for name, prediction in predictions.items():
            record_scores(results[name], scene["take_id"], prediction.contiguous(), truth)
    return results



def load_pipeline(model: str | os.PathLike | None, device: str = "cpu", dtype: str = "fp32"):
    """`(Syn2SeqPipeline, folder)` from a trained pipeline folder (None: the bundled model), on `device` in `dtype`
    (`"fp32"`, `"bf16"` or `"fp16"`). Its Syn2Seq settings come with it (`pipe.config.mode`, ...)."""
    from .bundled import bundled_model_path
    from .pipelines import Syn2SeqPipeline

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"--dtype: expected one of {sorted(dtypes)}, got {dtype!r}")
    folder = bundled_model_path() if model is None else Path(model)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"--model: expected a Syn2Seq pipeline folder with model_index.json, got "
                                f"{str(folder)!r}")
    pipe = Syn2SeqPipeline.from_pretrained(str(folder), dtype=dtypes[dtype])
    pipe.to(device)
    return pipe, folder


def side_by_side(rows: list[tuple[str, np.ndarray]], path: Path, scale: int = 2) -> None:
    """A PNG with one labelled strip of frames per row."""
    from PIL import Image, ImageDraw

    label_width = 150
    strips = [np.concatenate(list(frames), axis=1) for _, frames in rows]
    width = max(s.shape[1] for s in strips) * scale + label_width
    height = sum(s.shape[0] for s in strips) * scale
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for (label, _), strip in zip(rows, strips):
        image = Image.fromarray(strip).resize((strip.shape[1] * scale, strip.shape[0] * scale), Image.NEAREST)
        canvas.paste(image, (label_width, y))
        draw.multiline_text((4, y + 4), label, fill="black")
        y += image.height
    canvas.save(path)
