# SPDX-License-Identifier: Apache-2.0
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

`demo` renders a held-out SynthEgoExo scene, generates its ego clip with the model bundled in the package
(`diffusers_syn2seq.bundled_model_path()`, trained by `benchmarks/syn2seq_experiment.py`) or `--model`, and writes
the videos and a side-by-side PNG with the PSNR (printed next to the "copy the last exo frame" baseline).
`--check-parity` also compares the DFoT models with the official reference tensors when they are available
(`../shared/fixtures/dfot_reference`, or `SYN2SEQ_SHARED_DIR`).
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
)
from .metrics import psnr, summarize


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
    """Render a held-out SynthEgoExo scene, generate its target clip with a trained model (default: the bundled one),
    write the videos and a side-by-side PNG, and print the scores next to the trivial "copy the source frame"
    baseline."""
    from .data import render_synthetic_clip
    from .data.synthetic import seeds_for_split
    from .data.video_io import write_video
    from .evaluation import generate_scene

    start = time.perf_counter()
    out_dir = Path(args.output_dir)
    if args.check_parity:
        folder = find_reference_fixtures()
        if folder is None:
            print("DFoT reference fixtures not found (set SYN2SEQ_SHARED_DIR): parity check skipped.")
        else:
            for name, diff in check_reference_parity(folder).items():
                print(f"parity with the official DFoT backbone, {name:<20}: max abs difference {diff:.2e}")

    pipe, model_folder, settings, mode, num_transition = load_pipeline_and_mode(args)
    size = pixel_frame_size(pipe)
    num_frames = args.num_frames or int(settings.get("num_frames", 4))
    needed = 2 * num_frames + num_transition
    if needed > pipe.transformer.config.max_frames:
        raise ValueError(f"--num_frames: {num_frames} source + {num_transition} transition + {num_frames} target "
                         f"frames exceed the model's max_frames {pipe.transformer.config.max_frames}")
    if args.direction == "ego2exo" and float(settings.get("reverse_prob", 0.5)) == 0.0:
        print(f"warning: {model_folder} was trained on Exo2Ego only (syn2seq_settings.json reverse_prob 0); its "
              "Ego2Exo output is out of distribution.")
    source_view, target_view = source_target_views(args.direction)

    seed = seeds_for_split("test", 1)[0] + args.scene
    scene = render_synthetic_clip(seed, num_frames=num_frames, resolution=size, num_transition_frames=num_transition)
    scene["take_id"] = f"synth-{seed}"
    print(f"rendered held-out SynthEgoExo test scene {args.scene} (seed {seed}): {num_frames} {source_view} + "
          f"{num_frames} {target_view} frames at {size}x{size}")
    print(f"model {model_folder} ({mode}, {num_transition} transition frames, {args.steps} steps, {args.direction})")
    pipe.set_progress_bar_config(desc="denoising", disable=args.quiet)
    generated, truth = generate_scene(pipe, scene, mode, args.direction, num_transition, args.steps, args.seed)
    score = float(psnr(generated, truth).mean())
    adjacent = scene[source_view][-1] if args.direction == "exo2ego" else scene[source_view][0]
    baseline = float(psnr(frames_to_unit_tensor(adjacent[None]).expand_as(truth), truth).mean())
    frames = (generated.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)

    out_dir.mkdir(parents=True, exist_ok=True)
    fps = 8.0
    write_video(out_dir / f"{target_view}.mp4", frames, fps=fps)
    write_video(out_dir / f"{source_view}.mp4", scene[source_view], fps=fps)
    write_video(out_dir / f"{target_view}_true.mp4", scene[target_view], fps=fps)
    side_by_side(
        [(f"{source_view} (input)", scene[source_view]),
         (f"{target_view} generated\nPSNR {score:.2f} dB", frames),
         (f"{target_view} (true)", scene[target_view])],
        out_dir / "side_by_side.png",
    )
    print(f"mean per-frame PSNR of the generated {target_view} frames: {score:.2f} dB "
          f"(trivial baseline, copy the {source_view} frame next to the transition: {baseline:.2f} dB)")
    print("wrote " + ", ".join(str(out_dir / name) for name in (f"{target_view}.mp4", f"{source_view}.mp4",
                                                                 f"{target_view}_true.mp4", "side_by_side.png")))
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
        raise FileNotFoundError(f"--model: expected a Syn2Seq pipeline folder with model_index.json, "
                                f"got {str(folder)!r}")
    pipe = Syn2SeqPipeline.from_pretrained(str(folder), dtype=_torch_dtype(dtype))
    pipe.to(device)
    return pipe, folder


def load_pipeline_and_mode(args: argparse.Namespace):
    """`(pipe, folder, settings, mode, num_transition_frames)` for `--model` (default: bundled): the mode and the
    transition length come from the command line, else the folder's `syn2seq_settings.json`, else `video+pose` / 4
    (0 for `jump`)."""
    pipe, folder = load_pipeline(args.model, args.device, args.dtype)
    settings = read_settings(folder)
    mode = args.mode or settings.get("mode", "video+pose")
    num_transition = args.num_transition_frames
    if num_transition is None:
        num_transition = 0 if mode == "jump" else int(settings.get("num_transition_frames", 4))
    return pipe, folder, settings, mode, num_transition


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
    pipe, folder, _, mode, num_transition = load_pipeline_and_mode(args)
    size = pixel_frame_size(pipe)
    if exo.shape[1:3] != (size, size):
        print(f"resizing the exo frames from {exo.shape[2]}x{exo.shape[1]} to the model resolution {size}x{size}")
        exo = resize_frames(exo, size)
    pipe.set_progress_bar_config(desc="denoising", disable=args.quiet)
    kwargs = {}
    if getattr(pipe.transformer.config, "camera_ray_type", None) is not None:
        kwargs = dict(source_poses=torch.from_numpy(exo_poses).float(),
                      target_poses=torch.from_numpy(ego_poses).float(),
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
            print(f"baseline {name}: PSNR {b['summary']['psnr']['mean']:.2f} dB, "
                  f"SSIM {b['summary']['ssim']['mean']:.3f}")
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

    demo_parser = commands.add_parser(
        "demo", help="Render a held-out synthetic scene and generate its ego video with the bundled model.",
        description="Render a held-out SynthEgoExo test scene (never seen in training), generate its ego clip from "
                    "the exo clip and camera poses with a trained Syn2Seq pipeline (default: the model bundled with "
                    "the package), and write ego.mp4, exo.mp4, ego_true.mp4 and side_by_side.png (exo | generated "
                    "ego | true ego, with PSNR). Resolution, frames and mode come from the model's "
                    "syn2seq_settings.json.")
    demo_parser.add_argument("--output_dir", "--output-dir", default="outputs/demo",
                             help="where the MP4s and the PNG are written")
    demo_parser.add_argument("--model", default=None, help="Syn2Seq pipeline folder (default: the bundled model)")
    demo_parser.add_argument("--scene", type=int, default=0, help="index of the held-out test scene")
    demo_parser.add_argument("--direction", default="exo2ego", choices=["exo2ego", "ego2exo"])
    demo_parser.add_argument("--num_frames", "--num-frames", type=int, default=None,
                             help="source and target frames (default: the model's syn2seq_settings.json, else 4)")
    demo_parser.add_argument("--check-parity", action="store_true",
                             help="also check the DFoT models against the official reference tensors, when the "
                                  "project's shared/ folder is next to this checkout")
    common(demo_parser)

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
    try:
        if args.command == "demo":
            if args.num_frames is not None and args.num_frames < 1:
                raise ValueError(f"--num_frames: expected a positive frame count, got {args.num_frames}")
            return demo(args)
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
