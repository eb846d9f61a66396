# SPDX-License-Identifier: Apache-2.0
"""Evaluation of Syn2Seq generation: per-frame PSNR / SSIM of generated target frames on held-out takes, the trivial
baselines (mean training target frame, copy of the last source frame), and the statistics over scenes and training
seeds (mean with a 95% Student-t or bootstrap interval, paired differences between rows). Used by `syn2seq evaluate`
and `benchmarks/syn2seq_experiment.py`.
"""

import os
from pathlib import Path

import numpy as np
import torch

from .data.sequence import MODES


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (T, H, W, 3) frames resized (bicubic) to (T, size, size, 3); returned as is when already that size."""
    from PIL import Image

    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BICUBIC)) for f in frames])


def pixel_frame_size(pipe) -> int:
    """Side in pixels of the frames the pipeline's model takes (its input grid times the VAE factor)."""
    return pipe.model_frame_size[0] * pipe.vae_scale_factor

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    import math

    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution with `df` degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def student_t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t (bisection on the CDF; |error| < 1e-10)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return 0.5 * (lo + hi)


def mean_ci(values, level: float = 0.95, method: str = "t", num_bootstrap: int = 10000, seed: int = 0) -> dict:
    """Mean of `values` and its `level` interval: `"t"` = Student-t interval `mean +- t_{(1+level)/2, n-1} s/sqrt(n)`
    (s: sample standard deviation), `"bootstrap"` = percentile bootstrap of the mean (`num_bootstrap` resamples).
    With one value the interval is (nan, nan)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    n = len(x)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    out = {"mean": mean, "n": n, "level": level, "method": method, "low": float("nan"), "high": float("nan"),
           "std": float(x.std(ddof=1)) if n > 1 else float("nan")}
    if n < 2:
        return out
    if method == "t":
        half = student_t_ppf(0.5 + level / 2.0, n - 1) * out["std"] / np.sqrt(n)
        out.update(low=float(mean - half), high=float(mean + half))
    elif method == "bootstrap":
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, n, size=(num_bootstrap, n))].mean(axis=1)
        out.update(low=float(np.quantile(means, (1 - level) / 2)), high=float(np.quantile(means, (1 + level) / 2)))
    else:
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    return out


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
    from .training_utils import psnr, ssim

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


def summarize(per_seed: list[dict], level: float = 0.95, method: str = "t") -> dict:
    """Aggregate the evaluations of one row (one dict per training seed, same scenes in the same order): each
    scene's score is averaged over seeds, then mean and interval over scenes; per-frame PSNR averaged likewise."""
    ids = per_seed[0]["scene_ids"]
    for r in per_seed[1:]:
        if r["scene_ids"] != ids:
            raise ValueError("the evaluations of one row must cover the same scenes in the same order")
    out = {"num_seeds": len(per_seed), "num_scenes": len(ids)}
    for metric in ("psnr", "ssim"):
        scene_means = np.mean([r[metric] for r in per_seed], axis=0)
        out[metric] = mean_ci(scene_means, level, method)
        out[f"{metric}_per_seed"] = [float(np.mean(r[metric])) for r in per_seed]
        out[f"{metric}_per_scene"] = scene_means.tolist()
    out["per_frame_psnr"] = np.mean([np.mean(r["per_frame_psnr"], axis=0) for r in per_seed], axis=0).tolist()
    return out


def paired_difference(a: dict, b: dict, metric: str = "psnr", level: float = 0.95, method: str = "t") -> dict:
    """Mean and interval of the per-scene difference `a - b` (summaries from `summarize`, same scenes)."""
    diff = np.asarray(a[f"{metric}_per_scene"]) - np.asarray(b[f"{metric}_per_scene"])
    return mean_ci(diff, level, method)


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
