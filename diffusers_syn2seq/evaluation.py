# SPDX-License-Identifier: Apache-2.0
"""Evaluation of Syn2Seq generation: generate the target frames of held-out takes the way the benchmark does, score
them per frame (PSNR / SSIM / layout PSNR of `diffusers_syn2seq.metrics`), and score the trivial baselines (mean
training target frame, copy of the last source frame) the same way. Used by `syn2seq evaluate`, the validation of
`training/train.py` and `benchmarks/syn2seq_experiment.py`; the statistics over scenes and seeds are in `metrics`.

Per scene `i` (seed `s = seed + i`), `evaluate_scene` records:

- `psnr`, `ssim`, `layout_psnr`: of the single sample, generated with a generator seeded `s`;
- `mean_of_n_psnr` (`num_samples` > 1): PSNR of the pixel-wise mean of `num_samples` samples, generated in one
  batched call (`num_videos_per_prompt`), sample `k` from its own generator seeded `sample_seed(s, k)` (sample 0 is
  the single sample, seed `s`), against the truth;
- `exo_dependence` (when asked): the single sample's PSNR minus the PSNR of a generation from scene `i + 1`'s source
  clip and source poses (`donor_scene`: the scene's own target poses and truth, seed `s`); 0 for a model that ignores
  its input. Each costs generations: `num_samples` + 1 per scene with both.
"""

import io
import os
from pathlib import Path

import numpy as np
import torch

from .data.sequence import MODES, SequenceLayout
from .metrics import default_layout_block, exo_dependence, layout_psnr, mean_of_samples_psnr, psnr, ssim
from .safe_io import atomic_write_bytes
from .validation import check_choice, check_positive_int


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
    """Empty per-scene score lists of one evaluated model or baseline (`mean_of_n_psnr` and `exo_dependence` are
    added by `record_scores` when they are computed)."""
    return {"scene_ids": [], "psnr": [], "ssim": [], "layout_psnr": [], "per_frame_psnr": [], "per_frame_ssim": []}


def record_scores(scores: dict[str, list], scene_id: str, generated: torch.Tensor, truth: torch.Tensor,
                  layout_block: int | None = None, samples: torch.Tensor | None = None,
                  swapped: torch.Tensor | None = None) -> None:
    """Append one scene's scores of (F, 3, H, W) tensors in [0, 1] to `scores`: per-frame PSNR / SSIM and their means,
    and the mean layout PSNR (`layout_block`: default `metrics.default_layout_block`); with `samples` (N, F, 3, H, W)
    the mean-of-N PSNR, with `swapped` (the generation from another scene's source) the exo-dependence."""
    frame_psnr, frame_ssim = psnr(generated, truth).tolist(), ssim(generated, truth).tolist()
    scores["scene_ids"].append(str(scene_id))
    scores["per_frame_psnr"].append(frame_psnr)
    scores["per_frame_ssim"].append(frame_ssim)
    scores["psnr"].append(float(np.mean(frame_psnr)))
    scores["ssim"].append(float(np.mean(frame_ssim)))
    scores.setdefault("layout_psnr", []).append(float(np.mean(layout_psnr(generated, truth, layout_block).tolist())))
    if samples is not None:
        scores.setdefault("mean_of_n_psnr", []).append(float(np.mean(mean_of_samples_psnr(samples, truth).tolist())))
    if swapped is not None:
        scores.setdefault("exo_dependence", []).append(float(np.mean(exo_dependence(generated, swapped, truth)
                                                                     .tolist())))


def frames_to_unit_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames -> float (T, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def source_target_views(direction: str) -> tuple[str, str]:
    """("exo", "ego") for exo2ego, ("ego", "exo") for ego2exo."""
    if direction not in ("exo2ego", "ego2exo"):
        raise ValueError(f"direction must be 'exo2ego' or 'ego2exo', got {direction!r}")
    return ("exo", "ego") if direction == "exo2ego" else ("ego", "exo")


def scene_frame_counts(temporal_compression: int, num_source: int, num_target: int, num_frames: int | None
                       ) -> tuple[int, int]:
    """`(source, target)` frame counts a scene is generated with: the whole clips (target cut to `num_frames`), or,
    for a causal video VAE compressing time `t` times, the longest source of `1 + t a` frames and target of `t c`
    frames (latent boundaries, as training cuts its sequences). An explicit `num_frames` off the boundaries raises.
    """
    t = temporal_compression
    if num_frames is not None and t > 1 and num_frames % t:
        raise ValueError(f"`num_frames` (--num_frames of `syn2seq evaluate`, --validation_num_frames of train.py) must "
                         f"be a multiple of {t} for a VAE compressing time {t}x (whole latent frames), or None for "
                         f"the longest such part of the clip, got {num_frames}.")
    target = num_target if num_frames is None else min(num_frames, num_target)
    if t == 1:
        return num_source, target
    source, target = 1 + t * ((num_source - 1) // t), t * (target // t)
    if num_source < 1 + t or target < t:
        raise ValueError(f"a scene needs at least {1 + t} source and {t} target frames for a VAE compressing time "
                         f"{t}x, got {num_source} source and {num_target} target frames.")
    return source, target


def target_frames(direction: str, num_target: int, n: int, reversal: str = "full") -> slice:
    """Which `n` of a target clip's `num_target` frames (natural time order) a generated target of `n` frames stands
    for: the first `n` in sequence order, as training cuts its sequences (`data.sequence`). Those are the frames next
    to the transition (the first ego frames for Exo2Ego; the last exo frames for Ego2Exo with the `full` reversal,
    whose sequence plays the exo clip backwards), except with Ego2Exo's `segments` reversal, whose exo clip plays
    forwards after the reversed transition (its first frames)."""
    # The sequence layout is the one home of the order rules; segment lengths do not change them.
    target_reversed = SequenceLayout(0, 0, 0, direction=direction, reversal=reversal).segments[-1][2]
    return slice(num_target - n, num_target) if target_reversed else slice(0, n)


# Seeds of the further samples of a scene: far apart, so that sample k of scene i never reuses scene j's seed.
SAMPLE_SEED_STRIDE = 1_000_003


def sample_seed(seed: int, k: int) -> int:
    """Seed of sample `k` of a scene seeded `seed` (sample 0: `seed` itself)."""
    return seed + k * SAMPLE_SEED_STRIDE


def generate_scene(pipe, scene: dict, mode: str | None = None, direction: str = "exo2ego",
                   num_transition_frames: int | None = None, steps: int = 25, seed: int = 0,
                   num_frames: int | None = None, generator: torch.Generator | list[torch.Generator] | None = None,
                   sampling: dict | None = None, num_samples: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate one take's target clip from its source clip (and poses, for posed models) the way the benchmark does.

    `mode` and `num_transition_frames` default to the pipeline's configuration (the settings the model was trained
    with); `jump` generates no transition whatever `num_transition_frames` says. Returns `(generated, truth)`, float
    `(F, 3, H, W)` tensors in [0, 1] at the model's resolution, `F` = `num_frames` (default: the whole target clip);
    a shorter target is the part of the clip `target_frames` names (its poses and truth alike). With a causal video
    VAE (`pipe.vae_scale_factor_temporal` = t > 1) the clips are cut to latent boundaries (`scene_frame_counts`):
    the source keeps its `1 + t a` frames next to the transition (the last exo frames for Exo2Ego, the first ego
    frames for Ego2Exo), the target `t c` frames, and `num_frames` must be a multiple of t.
    The noise comes from `generator` when given (it advances), else from a new generator seeded `seed`. `sampling`:
    further `Syn2SeqPipeline.__call__` arguments (e.g. `history_guidance="vanilla", guidance_scale=2.0`).
    `num_samples` > 1 generates that many samples in one batched call (`num_videos_per_prompt`; `generator` may then
    be a list of one generator per sample) and returns them stacked, `(num_samples, F, 3, H, W)`.
    """
    mode = check_choice("mode", pipe.config.mode if mode is None else mode, MODES)
    source_view, target_view = source_target_views(direction)
    temporal = int(getattr(pipe, "vae_scale_factor_temporal", 1))
    num_source, n = scene_frame_counts(temporal, len(scene[source_view]), len(scene[target_view]), num_frames)
    keep = slice(len(scene[source_view]) - num_source, None) if direction == "exo2ego" else slice(0, num_source)
    reversal = (sampling or {}).get("reversal") or getattr(pipe.config, "reversal", "full")
    target = target_frames(direction, len(scene[target_view]), n, reversal)
    size = pixel_frame_size(pipe)
    kwargs = {}
    if getattr(pipe.transformer.config, "camera_ray_type", None) is not None:
        kwargs = dict(source_poses=torch.from_numpy(np.asarray(scene[f"{source_view}_poses"])[keep]),
                      target_poses=torch.from_numpy(np.asarray(scene[f"{target_view}_poses"])[target]))
    out = pipe(resize_frames(scene[source_view][keep], size), num_frames=n, mode=mode,
               num_transition_frames=0 if mode == "jump" else num_transition_frames, direction=direction,
               num_inference_steps=steps, output_type="pt", num_videos_per_prompt=num_samples,
               generator=generator if generator is not None else torch.Generator().manual_seed(seed),
               **kwargs, **(sampling or {})).frames
    truth = frames_to_unit_tensor(resize_frames(scene[target_view][target], size))
    return out[0 if num_samples == 1 else slice(None)].float().cpu().clamp(0, 1), truth


def copy_source_prediction(scene: dict, direction: str, num_frames: int) -> torch.Tensor:
    """The "copy the source frame" baseline: the source frame next to the transition in time (the last exo frame for
    Exo2Ego, the first ego frame for Ego2Exo) repeated `num_frames` times, float `(F, 3, H, W)` in [0, 1]."""
    source_view, _ = source_target_views(direction)
    adjacent = scene[source_view][-1] if direction == "exo2ego" else scene[source_view][0]
    return frames_to_unit_tensor(adjacent[None]).expand(num_frames, -1, -1, -1).contiguous()


def with_source_of(scene: dict, donor: dict, direction: str = "exo2ego") -> dict:
    """`scene` with its source clip and source poses taken from `donor` (target clip and poses kept). A longer donor
    clip is cut to the scene's source length on the side next to the transition (the last exo frames for Exo2Ego,
    the first ego frames for Ego2Exo)."""
    source_view, _ = source_target_views(direction)
    n = len(scene[source_view])
    keep = slice(max(0, len(donor[source_view]) - n), None) if direction == "exo2ego" else slice(0, n)
    swapped = dict(scene, **{source_view: donor[source_view][keep]})
    if f"{source_view}_poses" in donor:
        swapped[f"{source_view}_poses"] = donor[f"{source_view}_poses"][keep]
    swapped.pop("transition", None)  # a cached transition belongs to the scene's own source
    return swapped


def donor_index(i: int, num_scenes: int) -> int:
    """The scene whose source clip scene `i` is generated from for the exo-dependence: `(i + 1) mod num_scenes`."""
    return (i + 1) % num_scenes


def evaluate_scene(pipe, scene: dict, scores: dict[str, list], mode: str | None = None, direction: str = "exo2ego",
                   num_transition_frames: int | None = None, steps: int = 25, seed: int = 0,
                   num_frames: int | None = None, num_samples: int = 1, layout_block: int | None = None,
                   donor_scene: dict | None = None, sampling: dict | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate one scene and append its scores to `scores` (`record_scores`; see the module docstring): the single
    sample (seed `seed`), `num_samples` > 1 samples for the mean-of-N PSNR, and with `donor_scene` the generation from
    its source clip for the exo-dependence. Returns `(generated, truth)` of the single sample."""
    num_samples = int(check_positive_int("num_samples", num_samples))
    # one generator per sample, so sample 0 (the single sample) is the same whatever num_samples is
    generators = [torch.Generator().manual_seed(sample_seed(seed, k)) for k in range(num_samples)]
    samples, truth = generate_scene(pipe, scene, mode, direction, num_transition_frames, steps, seed, num_frames,
                                    generator=generators if num_samples > 1 else generators[0], sampling=sampling,
                                    num_samples=num_samples)
    generated = samples[0] if num_samples > 1 else samples
    swapped = None
    if donor_scene is not None:
        swapped, _ = generate_scene(pipe, with_source_of(scene, donor_scene, direction), mode, direction,
                                    num_transition_frames, steps, seed, num_frames, sampling=sampling)
    record_scores(scores, scene["take_id"], generated, truth, layout_block, samples if num_samples > 1 else None,
                  swapped)
    return generated, truth


def evaluate_pipeline(pipe, scenes: list[dict], mode: str | None = None, direction: str = "exo2ego",
                      num_transition_frames: int | None = None, steps: int = 25, seed: int = 0,
                      num_frames: int | None = None, progress: bool = True, num_samples: int = 1,
                      layout_block: int | None = None, exo_dependence: bool = False,
                      sampling: dict | None = None) -> dict:
    """Generate the target clip of every scene (`generate_scene`; `mode` and `num_transition_frames` default to the
    pipeline's configuration) and score it (`evaluate_scene`): per-scene mean PSNR / SSIM / layout PSNR and per-frame
    PSNR; with `num_samples` > 1 the mean-of-N PSNR, with `exo_dependence` (needs >= 2 scenes) the exo-dependence
    against the source clip of scene `(i + 1) mod n`. Scene `i` samples with seed `seed + i`. Costs `num_samples`
    generations per scene, plus one with `exo_dependence`. `sampling`: further pipeline arguments (`generate_scene`).
    """
    from tqdm.auto import tqdm

    check_choice("mode", mode, MODES, allow_none=True)
    if exo_dependence and len(scenes) < 2:
        raise ValueError(f"exo_dependence needs at least 2 scenes (another scene's source clip), got {len(scenes)}")
    pipe.set_progress_bar_config(disable=True)
    size = pixel_frame_size(pipe)
    layout_block = layout_block or default_layout_block(size, size)
    result = new_scores()
    donors = [donor_index(i, len(scenes)) for i in range(len(scenes))] if exo_dependence else None
    for i, scene in enumerate(tqdm(scenes, desc=f"evaluating {direction}", disable=not progress)):
        evaluate_scene(pipe, scene, result, mode, direction, num_transition_frames, steps, seed + i, num_frames,
                       num_samples, layout_block, scenes[donors[i]] if donors else None, sampling)
    result["num_samples"] = int(num_samples)
    result["layout_block"] = layout_block
    if donors:
        result["exo_donor_ids"] = [str(scenes[j]["take_id"]) for j in donors]
    return result


def evaluate_baselines(scenes: list[dict], mean_target_frame: np.ndarray, direction: str = "exo2ego",
                       num_frames: int | None = None, layout_block: int | None = None,
                       temporal_compression: int = 1, reversal: str = "full") -> dict[str, dict]:
    """Trivial baselines scored like a model's single sample (PSNR / SSIM / layout PSNR): `mean_frame` predicts the
    mean training target frame for every target frame; `copy_source` repeats the source frame next to the transition
    in time (the last exo frame for Exo2Ego, the first ego frame for Ego2Exo). They are deterministic, so mean-of-N
    does not apply, and exo-dependence is measured for models only. `temporal_compression`: that of the models'
    causal video VAE, and `reversal` that of their pipelines, so the baselines score the same target frames
    (`scene_frame_counts`, `target_frames`)."""
    source_view, target_view = source_target_views(direction)
    layout_block = layout_block or default_layout_block(*scenes[0][target_view].shape[1:3])
    results = {name: new_scores() for name in ("mean_frame", "copy_source")}
    for scene in scenes:
        n = scene_frame_counts(temporal_compression, len(scene[source_view]), len(scene[target_view]), num_frames)[1]
        truth = frames_to_unit_tensor(scene[target_view][target_frames(direction, len(scene[target_view]), n,
                                                                        reversal)])
        predictions = {
            "mean_frame": torch.from_numpy(mean_target_frame).permute(2, 0, 1).float()[None].expand_as(truth),
            "copy_source": copy_source_prediction(scene, direction, n),
        }
        for name, prediction in predictions.items():
            record_scores(results[name], scene["take_id"], prediction.contiguous(), truth, layout_block)
    for r in results.values():
        r["layout_block"] = layout_block
    return results



def load_pipeline(model: str | os.PathLike | None, device: str = "cpu", dtype: str = "fp32"):
    """`(Syn2SeqPipeline, folder)` from a trained pipeline folder (None: the bundled model), on `device` in `dtype`
    (`"fp32"`, `"bf16"` or `"fp16"`). Its Syn2Seq settings come with it (`pipe.config.mode`, ...)."""
    from .bundled import bundled_model_path
    from .pipelines import Syn2SeqPipeline
    from .safe_loading import load_pretrained

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"--dtype: expected one of {sorted(dtypes)}, got {dtype!r}")
    folder = bundled_model_path() if model is None else Path(model)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"--model: expected a Syn2Seq pipeline folder with model_index.json, got "
                                f"{str(folder)!r}")
    pipe = load_pretrained(Syn2SeqPipeline.from_pretrained, str(folder), "--model", dtype=dtypes[dtype])
    pipe.to(device)
    return pipe, folder


def label_font():
    """The labels' font: Pillow's default TrueType font at 13 px (at its tiny default size a space is less than a
    pixel wide and "ego generated" reads "egogenerated"), else the bitmap font (Pillow < 10.1 or no FreeType)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def side_by_side(rows: list[tuple[str, np.ndarray]], path: Path, scale: int = 2, gap: int = 4) -> None:
    """A PNG with one labelled strip of frames per row, each frame enlarged `scale` times (nearest neighbour) and
    separated from the next by `gap` white pixels. Rows: uint8 `(F, H, W, 3)` clips."""
    from PIL import Image, ImageDraw

    font = label_font()
    label_width = 150
    frame_width = max(frames.shape[2] for _, frames in rows) * scale + gap
    width = label_width + max(len(frames) for _, frames in rows) * frame_width
    height = sum(frames.shape[1] * scale + gap for _, frames in rows) - gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for label, frames in rows:
        for i, frame in enumerate(frames):
            image = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
            canvas.paste(image, (label_width + i * frame_width, y))
        draw.multiline_text((4, y + 4), label, fill="black", font=font)
        y += frames.shape[1] * scale + gap
    png = io.BytesIO()
    canvas.save(png, format="PNG")
    atomic_write_bytes(path, png.getvalue())  # a reader never sees half a PNG


def side_by_side_animation(columns: list[tuple[str, np.ndarray]], path: Path, scale: int = 2, fps: float = 8.0
                           ) -> None:
    """An animated GIF showing the labelled clips next to each other, frame after frame (a shorter clip holds its last
    frame), each frame enlarged `scale` times (nearest neighbour). Clips: uint8 `(F, H, W, 3)`."""
    from PIL import Image, ImageDraw

    font = label_font()
    label_height = 36  # two lines of the 13-px font
    side = max(frames.shape[1] for _, frames in columns) * scale
    width = max(frames.shape[2] for _, frames in columns) * scale
    images = []
    for t in range(max(len(frames) for _, frames in columns)):
        canvas = Image.new("RGB", (len(columns) * (width + 4), side + label_height), "white")
        draw = ImageDraw.Draw(canvas)
        for i, (label, frames) in enumerate(columns):
            frame = frames[min(t, len(frames) - 1)]
            image = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
            canvas.paste(image, (i * (width + 4), label_height))
            draw.multiline_text((i * (width + 4) + 2, 2), label, fill="black", font=font)
        images.append(canvas)
    gif = io.BytesIO()
    images[0].save(gif, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    atomic_write_bytes(path, gif.getvalue())
