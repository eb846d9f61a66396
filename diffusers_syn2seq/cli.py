# Copyright 2026 The diffusers-syn2seq Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""`syn2seq` command-line interface.

    syn2seq demo --output_dir outputs/demo
    syn2seq generate --exo exo.mp4 --poses poses.json --out ego.mp4 [--model PIPELINE_FOLDER]
    syn2seq evaluate --model runs/video_pose-s0 --model runs/video_pose-s1 --data data/synth32 --output eval.json

`generate` runs a trained Syn2Seq pipeline on the user's own exo clip. The poses file holds the exo camera poses
(one per exo frame) and the ego camera poses (one per wanted ego frame), each a 16-vector in the DFoT convention
(`fx, fy, px, py` normalised by the image size, then the row-major world-to-camera `[R|T]`, OpenCV axes):

- `.json`: `{"exo_poses": [[16 floats], ...], "ego_poses": [[16 floats], ...]}`;
- `.npz`: arrays `exo_poses` `(Ne, 16)` and `ego_poses` `(Ng, 16)`;
- `.npy`: one `(Ne + Ng, 16)` array, the Ne exo poses first (Ne = frames of the exo video), then the ego poses;
- `.csv`: one row per camera, `view,v0,...,v15` with `view` = `exo` or `ego` (a header row is optional), rows of
  each view in time order.

`evaluate` scores generated target frames against the ground truth of held-out takes of a Syn2Seq dataset (PSNR,
SSIM per frame; mean and 95% interval over scenes) and the trivial baselines; it is the evaluation half of
`benchmarks/syn2seq_experiment.py`. Several `--model` folders are the training seeds of one row.

A trained pipeline folder may carry `syn2seq_settings.json` (`mode`, `num_transition_frames`, written by the
experiment); `generate` and `evaluate` take their defaults from it.

`demo` renders a held-out SynthEgoExo scene, checks the DFoT models against the official reference tensors when
they are available (`../shared/fixtures/dfot_reference`, or `SYN2SEQ_SHARED_DIR`), and runs `Syn2SeqPipeline` end
to end (exo clip + poses -> transition -> ego clip). No trained model ships yet, so the pipeline runs a small
randomly initialised pose-conditioned DFoT: the generated frames show the machinery, not a result.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .bundled import SETTINGS_FILENAME, bundled_model_path, read_settings
from .data.sequence import MODES
from .evaluation import (
    evaluate_baselines,
    evaluate_pipeline,
    frames_to_unit_tensor,
    load_eval_scenes,
    mean_frame,
    pixel_frame_size,
    resize_frames,
    source_target_views,
    summarize,
)
from .training_utils import psnr


def find_reference_fixtures() -> Path | None:
    """The DFoT reference tensors, if this checkout sits next to the project's `shared/` folder."""
    candidates = []
    if os.environ.get("SYN2SEQ_SHARED_DIR"):
        candidates.append(Path(os.environ["SYN2SEQ_SHARED_DIR"]))
    candidates += [Path.cwd().parent / "shared", Path(__file__).resolve().parents[2] / "shared"]
    for shared in candidates:
        folder = shared / "fixtures" / "dfot_reference"
        if folder.is_dir():
            return folder
    return None


def check_reference_parity(folder: Path) -> dict[str, float]:
    """Convert each official fixture state dict and return the max abs difference to the official output."""
    from safetensors.torch import load_file

    from .models import convert_dfot_checkpoint

    results = {}
    for name in ("dit3d_discrete", "dit3d_external_cond", "dit3d_continuous", "uvit3d_pose"):
        path = folder / f"{name}.safetensors"
        if not path.is_file():
            continue
        tensors = load_file(str(path))
        config = json.loads((folder / f"{name}.json").read_text())
        state_dict = {k[len("state_dict.") :]: v for k, v in tensors.items() if k.startswith("state_dict.")}
        model = convert_dfot_checkpoint(state_dict, config)
        kwargs = {}
        if "input.external_cond" in tensors:
            cond = tensors["input.external_cond"]
            if cond.ndim == 5:  # per-pixel ray encoding (B, T, 180, H, W) -> (B, 180, T, H, W)
                kwargs["camera_rays"] = cond.permute(0, 2, 1, 3, 4)
            else:
                kwargs["condition"] = cond
        with torch.no_grad():
            out = model(tensors["input.x"].permute(0, 2, 1, 3, 4), tensors["input.noise_levels"], **kwargs).sample
        results[name] = (out.permute(0, 2, 1, 3, 4) - tensors["output"]).abs().max().item()
    return results


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


def demo(args: argparse.Namespace) -> int:
    from .data import render_synthetic_clip
    from .data.synthetic import seeds_for_split
    from .data.video_io import write_video
    from .models import DFoTTransformer3DModel
    from .pipelines import Syn2SeqPipeline
    from .schedulers import DiffusionForcingScheduler

    start = time.perf_counter()
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    folder = find_reference_fixtures()
    if folder is None:
        print("DFoT reference fixtures not found (set SYN2SEQ_SHARED_DIR): parity check skipped.")
    else:
        for name, diff in check_reference_parity(folder).items():
            print(f"parity with the official DFoT backbone, {name:<20}: max abs difference {diff:.2e}")

    seed = seeds_for_split("test", 1)[0] + args.scene
    clip = render_synthetic_clip(
        seed, num_frames=args.num_frames, resolution=args.resolution, num_transition_frames=args.num_transition_frames
    )
    print(f"rendered held-out SynthEgoExo scene (seed {seed}): exo {clip['exo'].shape}, ego {clip['ego'].shape}")

    total = 2 * args.num_frames + args.num_transition_frames
    transformer = DFoTTransformer3DModel(
        in_channels=3,
        sample_size=args.resolution,
        max_frames=total,
        patch_size=4,
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=32,
        camera_ray_type="plucker",
    )
    pipe = Syn2SeqPipeline(transformer=transformer, scheduler=DiffusionForcingScheduler())
    pipe.set_progress_bar_config(desc="denoising")
    result = pipe(
        clip["exo"],
        source_poses=torch.from_numpy(clip["exo_poses"]).float(),
        target_poses=torch.from_numpy(clip["ego_poses"]).float(),
        num_transition_frames=args.num_transition_frames,
        num_inference_steps=args.steps,
        generator=torch.Generator().manual_seed(args.seed),
    )
    generated = (np.clip(result.frames[0], 0, 1) * 255).round().astype(np.uint8)

    fps = 10
    write_video(out_dir / "exo.mp4", clip["exo"], fps=fps)
    write_video(out_dir / "ego_true.mp4", clip["ego"], fps=fps)
    write_video(out_dir / "ego.mp4", generated, fps=fps)
    score = float(psnr(frames_to_unit_tensor(generated), frames_to_unit_tensor(clip["ego"])).mean())
    side_by_side(
        [("exo (input)", clip["exo"]), (f"ego generated\nPSNR {score:.2f} dB\n(untrained)", generated),
         ("ego (true)", clip["ego"])],
        out_dir / "side_by_side.png",
    )
    print(
        "NOTE: no trained model ships yet (see the roadmap in README.md); this run uses a randomly initialised "
        "DFoT, so the generated ego frames are not meaningful."
    )
    print(f"mean per-frame PSNR of the generated ego frames vs ground truth: {score:.2f} dB")
    print(f"wrote {out_dir / 'ego.mp4'}, {out_dir / 'exo.mp4'}, {out_dir / 'ego_true.mp4'}, {out_dir / 'side_by_side.png'}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


# ====================================================================================================================
# Poses files, pipelines, generation
# ====================================================================================================================


def _pose_array(value, path: Path, key: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"poses file {str(path)!r}: {key} must be numbers, ({error})") from None
    if array.ndim != 2 or array.shape[1] != 16:
        raise ValueError(f"poses file {str(path)!r}: {key} must have shape (N, 16), got {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"poses file {str(path)!r}: {key} contains NaN or infinite values")
    return array


def load_poses_file(path: str | os.PathLike, num_exo_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read `(exo_poses (Ne, 16), ego_poses (Ng, 16))` from a .json, .npz, .npy or .csv file (module docstring).

    `num_exo_frames` (the exo video's length) is required for `.npy` (to split the array) and checked for every
    format: a mismatch raises a `ValueError` naming the file, the expected and the received count.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"poses file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or "exo_poses" not in data or "ego_poses" not in data:
                raise ValueError(f"poses file {str(path)!r}: expected a JSON object with keys 'exo_poses' and "
                                 f"'ego_poses'")
            exo, ego = data["exo_poses"], data["ego_poses"]
        elif suffix == ".npz":
            with np.load(path) as data:
                missing = {"exo_poses", "ego_poses"} - set(data.files)
                if missing:
                    raise ValueError(f"poses file {str(path)!r}: missing arrays {sorted(missing)} (found {data.files})")
                exo, ego = data["exo_poses"], data["ego_poses"]
        elif suffix == ".npy":
            if num_exo_frames is None:
                raise ValueError(f"poses file {str(path)!r}: a .npy file needs the exo frame count to be split")
            both = _pose_array(np.load(path, allow_pickle=False), path, "poses")
            if len(both) <= num_exo_frames:
                raise ValueError(f"poses file {str(path)!r}: expected {num_exo_frames} exo poses followed by at least "
                                 f"one ego pose, received {len(both)} rows in total")
            exo, ego = both[:num_exo_frames], both[num_exo_frames:]
        elif suffix == ".csv":
            exo, ego = [], []
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                cells = [c.strip() for c in line.split(",")]
                if not line.strip() or (number == 1 and cells[0].lower() == "view"):
                    continue
                if cells[0].lower() not in ("exo", "ego") or len(cells) != 17:
                    raise ValueError(f"poses file {str(path)!r} line {number}: expected 'exo' or 'ego' followed by 16 "
                                     f"numbers, received {len(cells)} cells starting with {cells[0]!r}")
                (exo if cells[0].lower() == "exo" else ego).append([float(c) for c in cells[1:]])
        else:
            raise ValueError(f"poses file {str(path)!r}: unsupported extension {suffix!r} (use .json, .npz, .npy or "
                             f".csv)")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"poses file {str(path)!r} could not be read: {error}") from None
    exo, ego = _pose_array(exo, path, "exo_poses"), _pose_array(ego, path, "ego_poses")
    if num_exo_frames is not None and len(exo) != num_exo_frames:
        raise ValueError(f"poses file {str(path)!r}: expected {num_exo_frames} exo poses (one per frame of the exo "
                         f"video), received {len(exo)}")
    if len(ego) < 1:
        raise ValueError(f"poses file {str(path)!r}: expected at least 1 ego pose, received 0")
    return exo, ego


def _torch_dtype(name: str) -> torch.dtype:
    return {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
            "fp16": torch.float16, "float16": torch.float16}[name]


def load_pipeline(model: str | os.PathLike | None, device: str = "cpu", dtype: str = "fp32"):
    """`Syn2SeqPipeline` from a folder (None: the bundled model), on `device` in `dtype`, progress bar off."""
    from .pipelines import Syn2SeqPipeline

    folder = bundled_model_path() if model is None else Path(model)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"--model: expected a Syn2Seq pipeline folder with model_index.json, got {str(folder)!r}")
    pipe = Syn2SeqPipeline.from_pretrained(str(folder), torch_dtype=_torch_dtype(dtype))
    pipe.to(device)
    return pipe, folder


def generate(args: argparse.Namespace) -> int:
    from .data.video_io import read_video, write_video

    start = time.perf_counter()
    exo_path, out_path = Path(args.exo), Path(args.out)
    if not exo_path.is_file():
        raise FileNotFoundError(f"--exo: video file {str(exo_path)!r} does not exist")
    try:
        exo = read_video(exo_path)
    except ValueError as error:
        raise ValueError(f"--exo: could not read video {str(exo_path)!r}: {error}") from None
    exo_poses, ego_poses = load_poses_file(args.poses, num_exo_frames=len(exo))
    pipe, folder = load_pipeline(args.model, args.device, args.dtype)
    settings = read_settings(folder)
    mode = args.mode or settings.get("mode", "video+pose")
    num_transition = args.num_transition_frames
    if num_transition is None:
        num_transition = 0 if mode == "jump" else int(settings.get("num_transition_frames", 4))
    size = pixel_frame_size(pipe)
    if exo.shape[1:3] != (size, size):
        print(f"resizing the exo frames from {exo.shape[2]}x{exo.shape[1]} to the model resolution {size}x{size}")
        exo = resize_frames(exo, size)
    pipe.set_progress_bar_config(desc="denoising", disable=args.quiet)
    kwargs = {}
    if getattr(pipe.transformer.config, "camera_ray_type", None) is not None:
        kwargs = dict(source_poses=torch.from_numpy(exo_poses).float(), target_poses=torch.from_numpy(ego_poses).float(),
                      transition_poses="interpolate" if mode == "video+pose" else "drop")
    result = pipe(exo, num_frames=len(ego_poses), num_transition_frames=num_transition, direction="exo2ego",
                  num_inference_steps=args.steps, generator=torch.Generator().manual_seed(args.seed),
                  output_type="np", **kwargs)
    frames = (np.clip(result.frames[0], 0, 1) * 255).round().astype(np.uint8)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_video(out_path, frames, fps=args.fps)
    print(f"wrote {len(frames)} ego frames ({size}x{size}) to {out_path} in {time.perf_counter() - start:.1f} s "
          f"(model {folder}, mode {mode}, {num_transition} transition frames, {args.steps} steps)")
    return 0


def evaluate_cli(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    scenes = load_eval_scenes(args.data, args.split, args.num_scenes)
    source_view, target_view = source_target_views(args.direction)
    print(f"{len(scenes)} {args.split} scenes of {args.data}, {args.direction}")
    report: dict = {"data": str(args.data), "split": args.split, "direction": args.direction, "steps": args.steps,
                    "seed": args.seed, "ci_method": args.ci, "models": [], "per_seed": []}
    for model in args.model or []:
        pipe, folder = load_pipeline(model, args.device, args.dtype)
        settings = read_settings(folder)
        mode = args.mode or settings.get("mode")
        if mode is None:
            raise ValueError(f"--mode: {str(folder)!r} has no {SETTINGS_FILENAME}; pass --mode jump|video|video+pose")
        num_transition = args.num_transition_frames
        if num_transition is None:
            num_transition = int(settings.get("num_transition_frames", 4))
        result = evaluate_pipeline(pipe, scenes, mode, args.direction, num_transition, args.steps, args.seed,
                                   args.num_frames, progress=not args.quiet)
        result.update(model=str(folder), mode=mode, num_transition_frames=0 if mode == "jump" else num_transition)
        report["models"].append(str(folder))
        report["per_seed"].append(result)
        print(f"  {folder}: PSNR {np.mean(result['psnr']):.2f} dB, SSIM {np.mean(result['ssim']):.3f}")
        del pipe
    if report["per_seed"]:
        report["summary"] = summarize(report["per_seed"], method=args.ci)
        s = report["summary"]
        print(f"row: PSNR {s['psnr']['mean']:.2f} [{s['psnr']['low']:.2f}, {s['psnr']['high']:.2f}] dB, SSIM "
              f"{s['ssim']['mean']:.3f} [{s['ssim']['low']:.3f}, {s['ssim']['high']:.3f}] over {len(scenes)} scenes")
    if args.baselines:
        mean_target = mean_frame(args.data, view=target_view, split=args.baseline_split)
        baselines = evaluate_baselines(scenes, mean_target, args.direction, args.num_frames)
        report["baselines"] = {name: {"per_seed": [r], "summary": summarize([r], method=args.ci)}
                               for name, r in baselines.items()}
        for name, b in report["baselines"].items():
            print(f"baseline {name}: PSNR {b['summary']['psnr']['mean']:.2f} dB, SSIM {b['summary']['ssim']['mean']:.3f}")
    if not args.model and not args.baselines:
        raise ValueError("nothing to evaluate: pass --model FOLDER (repeatable) and/or --baselines")
    report["seconds"] = time.perf_counter() - start
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(args.output) + ".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(args.output)
        print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syn2seq", description="Syn2Seq-Forcing exo<->ego video generation.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="Render a held-out synthetic scene and run the pipeline on it.")
    demo_parser.add_argument("--output_dir", default="outputs/demo", help="where the MP4s and the PNG are written")
    demo_parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    demo_parser.add_argument("--scene", type=int, default=0, help="index of the held-out test scene")
    demo_parser.add_argument("--resolution", type=int, default=32, help="frame size (divisible by 4)")
    demo_parser.add_argument("--num_frames", type=int, default=6, help="exo and ego frames")
    demo_parser.add_argument("--num_transition_frames", type=int, default=2)
    demo_parser.add_argument("--steps", type=int, default=10, help="denoising steps")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
        p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"],
                       help="weights and compute dtype (fp32 on CPUs without native bf16)")
        p.add_argument("--seed", type=int, default=0, help="sampling seed (evaluate: scene i uses seed + i)")
        p.add_argument("--steps", type=int, default=25, help="denoising steps")
        p.add_argument("--num-transition-frames", type=int, default=None,
                       help="generated transition frames (default: the model's syn2seq_settings.json, else 4; "
                            "0 for jump models)")
        p.add_argument("--mode", choices=list(MODES), default=None,
                       help="Syn2Seq mode of the model (default: its syn2seq_settings.json)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    gen = commands.add_parser(
        "generate", help="Generate the ego video of your own exo video and camera poses.",
        description="Generate the ego clip of an exo clip. The poses file gives one 16-vector per exo frame and one "
                    "per wanted ego frame: JSON {\"exo_poses\": [[16]...], \"ego_poses\": [[16]...]}, .npz with "
                    "arrays exo_poses / ego_poses, .npy (Ne + Ng, 16) with the exo poses first, or .csv rows "
                    "'exo|ego,v0..v15'. Pose convention: fx, fy, px, py normalised by image size, then row-major "
                    "world-to-camera [R|T] (OpenCV axes).")
    gen.add_argument("--exo", required=True, help="exo video file (MP4 or anything FFmpeg reads)")
    gen.add_argument("--poses", required=True, help="poses file (.json, .npz, .npy or .csv; see above)")
    gen.add_argument("--out", required=True, help="output ego video (.mp4)")
    gen.add_argument("--model", default=None, help="Syn2Seq pipeline folder (default: the bundled model)")
    gen.add_argument("--fps", type=float, default=10.0, help="frame rate of the written video")
    common(gen)

    ev = commands.add_parser(
        "evaluate", help="Score trained models (and trivial baselines) on held-out takes of a Syn2Seq dataset.",
        description="Generate the target clip of each held-out take and score it against the ground truth: PSNR and "
                    "SSIM per frame, mean and 95%% interval over scenes. Several --model folders are the training "
                    "seeds of one row (each scene's score is averaged over them). --baselines adds 'mean training "
                    "target frame' and 'copy the source frame next to the transition'.")
    ev.add_argument("--model", action="append", default=None, help="pipeline folder (repeatable: training seeds)")
    ev.add_argument("--data", required=True, help="Syn2Seq dataset folder")
    ev.add_argument("--split", default="test")
    ev.add_argument("--num-scenes", type=int, default=None, help="first N takes of the split (default: all)")
    ev.add_argument("--num-frames", type=int, default=None, help="target frames scored (default: the whole clip)")
    ev.add_argument("--direction", default="exo2ego", choices=["exo2ego", "ego2exo"])
    ev.add_argument("--baselines", action="store_true", help="also score the trivial baselines")
    ev.add_argument("--baseline-split", default="train", help="split of the mean-frame baseline")
    ev.add_argument("--ci", default="t", choices=["t", "bootstrap"], help="95%% interval: Student t or bootstrap")
    ev.add_argument("--output", default=None, help="JSON file for every number")
    common(ev)

    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.resolution % 4:
            parser.error(f"--resolution must be divisible by 4, got {args.resolution}")
        return demo(args)
    try:
        if args.command == "generate":
            return generate(args)
        if args.command == "evaluate":
            return evaluate_cli(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"syn2seq {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
