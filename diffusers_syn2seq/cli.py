# SPDX-License-Identifier: Apache-2.0
"""`syn2seq` command line: parses arguments, calls the package, prints results.

    syn2seq demo --output_dir outputs/demo
    syn2seq generate --exo exo.mp4 --poses poses.json --out ego.mp4 [--model PIPELINE_FOLDER]
    syn2seq evaluate --model runs/video_pose-s0 --model runs/video_pose-s1 --data data/synth32 --output eval.json
    syn2seq app [--model PIPELINE_FOLDER] [--port 7860]      (needs the [app] extra: Gradio)

`generate` runs a trained Syn2Seq pipeline on the user's own exo clip; the poses file format is described in
`diffusers_syn2seq.data.poses_file`. `evaluate` scores generated target frames against the ground truth of held-out
takes of a Syn2Seq dataset and the trivial baselines (`diffusers_syn2seq.evaluation`); it is the evaluation half of
`benchmarks/syn2seq_experiment.py`. `demo` renders a held-out SynthEgoExo scene, generates its ego clip with the model
bundled in the package (`diffusers_syn2seq.bundled_model_path()`) or `--model`, and writes the videos, a side-by-side
PNG (frames enlarged to at least 128 px) and GIF with the PSNR next to the "copy the last exo frame" baseline
(`diffusers_syn2seq.showcase`, shared with `generate` and the app). `app` serves the interactive page
(`diffusers_syn2seq.app`).

Each model folder's Syn2Seq settings (`mode`, `num_transition_frames`, `reversal`) come from its pipeline
configuration (`model_index.json`, or the `syn2seq_settings.json` of older folders); `--mode` and
`--num_transition_frames` override them. Flags are spelled with underscores, like `training/train.py` and diffusers'
scripts; the dashed spellings are accepted too.

Bad input (a flag out of range, a missing or unreadable file, an output that cannot be written) prints one line
`syn2seq <command>: error: <message>` and exits with status 2; `--debug` (or SYN2SEQ_DEBUG=1) shows the traceback.
Outputs are checked for writing before the generation starts and written under a temporary name, then renamed.
`convert_dfot_command` is the `syn2seq-convert-dfot` console command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from .bundled import trained_scene_style
from .cli_support import (
    BAD_INPUT_ERRORS,
    ToolArgumentParser,
    add_debug_flag,
    debug_requested,
    read_json_object,
    run_tool,
)
from .data.choices import MODES
from .data.synthetic_render import SCENE_STYLES
from .safe_io import atomic_write_text, check_output_dir, check_output_file, fix_weight_modes, publish_folder

# torch, diffusers and the modules that import them are imported inside the commands: `syn2seq --help` and a
# flag error answer in well under a second instead of 5-9 s.

# What the baselines of `evaluate` are not scored on, and why (printed, and recorded in the JSON).
BASELINE_NOT_APPLICABLE = ("mean_of_n_psnr", "exo_dependence")
BASELINE_NOTE = ("mean-of-N and exo-dependence do not apply (deterministic predictions: the mean of N copies is the "
                 "prediction itself; exo-dependence is measured for generative models only)")


def _settings(pipe, args: argparse.Namespace) -> tuple[str, int]:
    """`(mode, num_transition_frames)`: the command line's, else the pipeline's configuration (0 for `jump`)."""
    from .showcase import syn2seq_settings

    return syn2seq_settings(pipe, args.mode, args.num_transition_frames)


def demo(args: argparse.Namespace) -> int:
    from .data import write_video
    from .evaluation import load_pipeline, pixel_frame_size, source_target_views
    from .showcase import demo_num_frames, held_out_scene, pipeline_note, showcase_scene, window_note, write_pictures

    start = time.perf_counter()
    out_dir = Path(args.output_dir)
    held_out_scene(args.scene, 1, 8, 0, "flat")  # checks --scene before the model loads
    pipe, folder = load_pipeline(args.model, args.device, args.dtype)
    mode, num_transition = _settings(pipe, args)
    t = pipe.vae_scale_factor_temporal
    num_frames = demo_num_frames(args.num_frames, pipe.transformer.config.max_frames, num_transition, t)
    check_output_dir(out_dir, "--output_dir")  # before the generation
    # the scene style the model was trained on (a textured scene is out of distribution for a flat-trained model)
    style = args.style or trained_scene_style(folder) or "textured"
    for note in pipeline_note(pipe, folder, args.direction, style):
        print(note)
    size = pixel_frame_size(pipe)
    scene, seed = held_out_scene(args.scene, num_frames, size, num_transition, style)
    source_view, target_view = source_target_views(args.direction)
    print(f"rendered held-out SynthEgoExo test scene {args.scene} (seed {seed}, {style}): {num_frames} {source_view} + "
          f"{num_frames} {target_view} frames at {size}x{size}")
    print(f"model {folder} ({mode}, {num_transition} transition frames, {args.steps} steps, {args.direction})")
    note = window_note(pipe.transformer.config.max_frames, 1 + (num_frames - 1) // t,
                       num_transition // t + num_frames // t)
    if note:
        print(note)
    pipe.set_progress_bar_config(desc="denoising", disable=args.quiet)
    shown = showcase_scene(pipe, scene, mode, args.direction, num_transition, args.steps, args.seed, _sampling(args))
    written = [out_dir / f"{target_view}.mp4", out_dir / f"{source_view}.mp4", out_dir / f"{target_view}_true.mp4",
               out_dir / "side_by_side.png", out_dir / "side_by_side.gif"]
    for path, video in zip(written, (shown.generated, scene[source_view], scene[target_view])):
        write_video(path, video, fps=8.0)
    write_pictures(shown, written[3], written[4], fps=8.0)  # each written under a temporary name, then renamed
    print(f"mean per-frame PSNR of the generated {target_view} frames: {shown.psnr:.2f} dB "
          f"(trivial baseline, copy the {source_view} frame next to the transition: {shown.baseline_psnr:.2f} dB)")
    print("wrote " + ", ".join(str(path) for path in written))
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def generate(args: argparse.Namespace) -> int:
    from .data.poses_file import load_poses_file
    from .data.video_io import write_video
    from .evaluation import load_pipeline, pixel_frame_size
    from .showcase import read_source_clip, showcase_upload, window_note

    start = time.perf_counter()
    out_path = Path(args.out)
    check_video_suffix(out_path, "--out")
    exo = read_source_clip(args.exo, "--exo")
    try:
        exo_poses, ego_poses = load_poses_file(args.poses, num_exo_frames=len(exo))
    except (ValueError, OSError) as error:  # name the flag: the message names the file, line and value
        raise type(error)(f"--poses: {error}") from None
    check_output_file(out_path, "--out")
    pipe, folder = load_pipeline(args.model, args.device, args.dtype)
    mode, num_transition = _settings(pipe, args)
    size = pixel_frame_size(pipe)
    if exo.shape[1:3] != (size, size):
        print(f"resizing the exo frames from {exo.shape[2]}x{exo.shape[1]} to the model resolution {size}x{size}")
    t = pipe.vae_scale_factor_temporal
    note = window_note(pipe.transformer.config.max_frames, 1 + (len(exo) - 1) // t,
                       num_transition // t + len(ego_poses) // t)
    if note:
        print(note)
    pipe.set_progress_bar_config(desc="denoising", disable=args.quiet)
    shown = showcase_upload(pipe, exo, exo_poses, ego_poses, mode, num_transition, args.steps, args.seed,
                            _sampling(args))
    write_video(out_path, shown.generated, fps=args.fps)  # temporary name, then rename
    print(f"wrote {len(shown.generated)} ego frames ({size}x{size}) to {out_path} in "
          f"{time.perf_counter() - start:.1f} s (model {folder}, mode {mode}, {num_transition} transition frames, "
          f"{args.steps} steps)")
    return 0


VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")  # the MP4 container write_video writes


def check_video_suffix(path: Path, name: str) -> None:
    """Refuse an output name whose suffix promises another format than the MP4 data written (an image viewer would
    fail on `x.png`). A folder is left to `check_output_file`, whose message says it is one."""
    if path.suffix.lower() not in VIDEO_SUFFIXES and not path.is_dir():
        raise ValueError(f"{name}: expected a video file name ending in {', '.join(VIDEO_SUFFIXES)} (an MP4 video is "
                         f"written), got {str(path)!r}")


def _interval(s: dict, digits: int, unit: str = "", sign: str = "") -> str:
    """`mean [low, high]unit` of a `mean_ci` dict (the mean alone with one scene)."""
    if math.isnan(s["low"]):
        return f"{s['mean']:{sign}.{digits}f}{unit}"
    return f"{s['mean']:{sign}.{digits}f} [{s['low']:{sign}.{digits}f}, {s['high']:{sign}.{digits}f}]{unit}"


def _scores_line(summary: dict, num_samples: int) -> str:
    """The scores of one summary (`metrics.summarize`), the new ones when present."""
    parts = [f"PSNR {_interval(summary['psnr'], 2, ' dB')}", f"SSIM {_interval(summary['ssim'], 3)}"]
    if "layout_psnr" in summary:
        parts.append(f"layout PSNR {_interval(summary['layout_psnr'], 2, ' dB')}")
    if "mean_of_n_psnr" in summary:
        parts.append(f"mean-of-{num_samples} PSNR {_interval(summary['mean_of_n_psnr'], 2, ' dB')}")
    if "exo_dependence" in summary:
        parts.append(f"exo-dependence {_interval(summary['exo_dependence'], 2, ' dB', '+')}")
    return ", ".join(parts)


def _sampling(args: argparse.Namespace) -> dict:
    """The pipeline's sampling arguments set by the command line (history guidance), checked."""
    if not (math.isfinite(args.guidance_scale) and args.guidance_scale >= 1):
        raise ValueError(f"--guidance_scale: expected a finite number >= 1, got {args.guidance_scale}")
    if args.history_guidance is None:
        if args.guidance_scale != 1:
            raise ValueError(f"--guidance_scale: {args.guidance_scale} needs --history_guidance vanilla|fractional")
        return {}
    return {"history_guidance": args.history_guidance, "guidance_scale": args.guidance_scale}


def _check_evaluate_args(args: argparse.Namespace) -> None:
    """Flag checks of `evaluate` that need no data (before anything is loaded)."""
    if args.num_samples < 1:
        raise ValueError(f"--num_samples: expected an integer >= 1 (1 disables mean-of-N), got {args.num_samples}")
    if args.layout_block is not None and args.layout_block < 1:
        raise ValueError(f"--layout_block: expected a block side >= 1 pixel, got {args.layout_block}")
    if args.num_scenes is not None and args.num_scenes < 1:
        raise ValueError(f"--num_scenes: expected an integer >= 1 (default: every take of the split), got "
                         f"{args.num_scenes}")
    if args.output:
        check_output_file(args.output, "--output")


def _check_scenes(args: argparse.Namespace, scenes: list[dict], target_view: str) -> bool:
    """`--num_frames` against the clips; returns whether the exo-dependence is computed (it needs two scenes)."""
    shortest = min(len(scene[target_view]) for scene in scenes)
    if args.num_frames is not None and args.num_frames > shortest:
        raise ValueError(f"--num_frames: expected at most the {target_view} clip length of every scene ({shortest} "
                         f"frames in {args.data}), got {args.num_frames}")
    exo = bool(_models(args)) and not args.no_exo_dependence
    if exo and len(scenes) < 2:
        print("exo-dependence skipped: it needs at least 2 scenes (another scene's source clip)")
        return False
    return exo


def _differences(row: dict, baselines: dict, method: str) -> dict:
    """Paired per-scene differences `row - baseline` (same scenes) of PSNR, SSIM and layout PSNR, printed."""
    from .metrics import paired_difference

    differences = {}
    for name, baseline in baselines.items():
        differences[name] = {metric: paired_difference(row, baseline["summary"], metric, method=method)
                             for metric in ("psnr", "ssim", "layout_psnr")}
        d = differences[name]
        print(f"row - {name} (paired): PSNR {_interval(d['psnr'], 2, ' dB', '+')}, "
              f"SSIM {_interval(d['ssim'], 3, '', '+')}, layout PSNR {_interval(d['layout_psnr'], 2, ' dB', '+')}")
    return differences


def _models(args: argparse.Namespace) -> list:
    """The `--model` folders of `evaluate`; none given: the bundled model (None), unless `--baselines_only`."""
    return [] if args.baselines_only else (args.model or [None])


def evaluate(args: argparse.Namespace) -> int:
    from .bundled import dataset_scene_style
    from .data import load_metadata
    from .evaluation import (
        evaluate_baselines,
        evaluate_pipeline,
        load_eval_scenes,
        load_pipeline,
        mean_frame,
        source_target_views,
    )
    from .metrics import summarize
    from .showcase import pipeline_note

    args.baselines = args.baselines or args.baselines_only
    start = time.perf_counter()
    _check_evaluate_args(args)
    scenes = load_eval_scenes(args.data, args.split, args.num_scenes)
    _, target_view = source_target_views(args.direction)
    exo = _check_scenes(args, scenes, target_view)
    print(f"{len(scenes)} {args.split} scenes of {args.data}, {args.direction}")
    report: dict = {"data": str(args.data), "split": args.split, "direction": args.direction, "steps": args.steps,
                    "seed": args.seed, "ci_method": args.ci, "num_samples": args.num_samples,
                    "layout_block": args.layout_block, "exo_dependence": exo, "sampling": _sampling(args),
                    "models": [], "per_seed": []}
    temporal = 1  # a causal video VAE's time compression: the baselines score the frames its models generate
    reversals = set()  # likewise the models' Ego2Exo sequence order (`evaluation.target_frames`)
    data_style = dataset_scene_style(load_metadata(args.data, validate=False))
    for model in _models(args):
        pipe, folder = load_pipeline(model, args.device, args.dtype)
        for note in pipeline_note(pipe, folder, args.direction, data_style, scenes[0][target_view].shape[1:3],
                                  f"the takes of {args.data}"):
            print(note)
        temporal = max(temporal, pipe.vae_scale_factor_temporal)
        reversals.add(pipe.config.reversal)
        if len(reversals) > 1 and args.baselines and args.direction == "ego2exo":
            raise ValueError(f"--baselines with --direction ego2exo: the --model folders have different `reversal` "
                             f"settings ({', '.join(sorted(reversals))}), so they may score different target frames; "
                             "evaluate them separately")
        mode, num_transition = _settings(pipe, args)
        result = evaluate_pipeline(pipe, scenes, mode, args.direction, num_transition, args.steps, args.seed,
                                   args.num_frames, progress=not args.quiet, num_samples=args.num_samples,
                                   layout_block=args.layout_block, exo_dependence=exo, sampling=_sampling(args))
        result.update(model=str(folder), mode=mode, num_transition_frames=0 if mode == "jump" else num_transition)
        report["models"].append(str(folder))
        report["per_seed"].append(result)
        print(f"  {folder}: {_scores_line(summarize([result], method=args.ci), args.num_samples)}")
        del pipe
    if report["per_seed"]:
        report["summary"] = summary = summarize(report["per_seed"], method=args.ci)
        print(f"row: {_scores_line(summary, args.num_samples)} over {len(scenes)} scenes "
              f"(layout blocks {report['per_seed'][0]['layout_block']} px)")
    if args.baselines:
        mean_target = mean_frame(args.data, view=target_view, split=args.baseline_split)
        baselines = evaluate_baselines(scenes, mean_target, args.direction, args.num_frames, args.layout_block,
                                       temporal, min(reversals, default="full"))
        report["baselines"] = {name: {"per_seed": [r], "summary": summarize([r], method=args.ci),
                                      "not_applicable": list(BASELINE_NOT_APPLICABLE)}
                               for name, r in baselines.items()}
        for name, b in report["baselines"].items():
            print(f"baseline {name}: {_scores_line(b['summary'], args.num_samples)}")
        print(f"baselines: {BASELINE_NOTE}")
        if report["per_seed"]:
            report["row_minus_baseline"] = _differences(report["summary"], report["baselines"], args.ci)
    report["seconds"] = time.perf_counter() - start
    if args.output:
        atomic_write_text(args.output, json.dumps(report, indent=1))
        print(f"wrote {args.output}")
    return 0


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """Add `--name` with its dashed alias `--na-me` when they differ."""
    dashed = name.replace("_", "-")
    parser.add_argument(f"--{name}", *([f"--{dashed}"] if dashed != name else []), **kwargs)


def _add_app_parser(commands) -> None:
    """`syn2seq app`: its own flags (it serves a page; it does not sample from the command line)."""
    page = commands.add_parser(
        "app", help="Open the interactive demo in a browser (needs Gradio: pip install 'diffusers-syn2seq[app]').",
        description="Serve the interactive demo: pick a held-out SynthEgoExo scene or upload an exo clip with its "
                    "poses file, choose mode, direction, steps, history guidance and seed, and see exo | generated | "
                    "true side by side (videos and an enlarged frame strip, with PSNR when the truth is known). The "
                    "repository's app.py runs the same page as a Hugging Face Space.")
    _flag(page, "model", default=None, help="Syn2Seq pipeline folder (default: the bundled model)")
    _flag(page, "device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...; default: cpu)")
    _flag(page, "dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="weights and compute dtype "
          "(default: fp32)")
    _flag(page, "host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only; "
          "0.0.0.0 for every interface)")
    _flag(page, "port", type=int, default=7860, help="TCP port (default: 7860)")
    _flag(page, "share", action="store_true", help="also open a temporary public Gradio link")
    _flag(page, "no_example", action="store_true",
          help="open an empty page (default: the page shows held-out scene 0 generated once at start-up)")
    _flag(page, "threads", type=int, default=None, help="torch CPU threads (default: as the other commands)")
    _flag(page, "quiet", action="store_true", help="no progress bars in the terminal")
    add_debug_flag(page)


def build_parser() -> argparse.ArgumentParser:
    parser = ToolArgumentParser(prog="syn2seq", description="Syn2Seq-Forcing exo<->ego video generation.")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, many_models: bool = False) -> None:
        if many_models:
            _flag(p, "model", action="append",
                  help="pipeline folder, repeatable: the training seeds of one row (default: the bundled model)")
        else:
            _flag(p, "model", default=None, help="Syn2Seq pipeline folder (default: the bundled model)")
        _flag(p, "device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
        _flag(p, "dtype", default="fp32", choices=["fp32", "bf16", "fp16"],
              help="weights and compute dtype (fp32 on CPUs without native bf16)")
        _flag(p, "seed", type=int, default=0, help="sampling seed (scene i uses seed + i; default: 0)" if many_models
              else "sampling seed (default: 0)")
        _flag(p, "steps", type=int, default=25, help="denoising steps (default: 25)")
        _flag(p, "num_transition_frames", type=int, default=None,
              help="generated transition frames (default: the model's pipeline configuration; 0 for jump)")
        _flag(p, "mode", choices=list(MODES), default=None,
              help="Syn2Seq mode (default: the model's pipeline configuration)")
        _flag(p, "history_guidance", choices=["vanilla", "fractional"], default=None,
              help="history guidance of the source frames (default: none)")
        _flag(p, "guidance_scale", type=float, default=1.0, help="history guidance scale (>= 1; 1 disables)")
        _flag(p, "quiet", action="store_true", help="no progress bars")
        _flag(p, "threads", type=int, default=None,
              help="torch CPU threads (default: the physical cores not kept busy by other processes, at least 1; "
                   "OMP_NUM_THREADS, when set, is respected)")
        add_debug_flag(p)

    demo_parser = commands.add_parser(
        "demo", help="Render a held-out synthetic scene and generate its ego video with the bundled model.",
        description="Render a held-out SynthEgoExo test scene (never seen in training), generate its ego clip from "
                    "the exo clip and camera poses with a trained Syn2Seq pipeline (default: the model bundled with "
                    "the package), and write ego.mp4, exo.mp4, ego_true.mp4 and side_by_side.png (exo | generated "
                    "ego | true ego, with PSNR, frames enlarged to at least 128 px) and side_by_side.gif (the same, "
                    "animated).")
    _flag(demo_parser, "output_dir", default="outputs/demo",
          help="where the MP4s, the PNG and the GIF are written (default: outputs/demo)")
    _flag(demo_parser, "scene", type=int, default=0, help="index of the held-out test scene (default: 0)")
    _flag(demo_parser, "direction", default="exo2ego", choices=["exo2ego", "ego2exo"],
          help="exo2ego: generate the ego clip from the exo clip; ego2exo: the reverse (default: exo2ego)")
    _flag(demo_parser, "style", default=None, choices=list(SCENE_STYLES),
          help="SynthEgoExo scene style (default: the one the model was trained on, from its training_summary.json)")
    _flag(demo_parser, "num_frames", type=int, default=None,
          help="source and target frames (default: as many as fit the model's window with the transition; longer "
               "clips are sampled with a sliding window, as generate does)")
    common(demo_parser)

    gen = commands.add_parser(
        "generate", help="Generate the ego video of your own exo video and camera poses.",
        description="Generate the ego clip of an exo clip. The poses file gives one 16-vector per exo frame and one "
                    "per wanted ego frame: JSON {\"exo_poses\": [[16]...], \"ego_poses\": [[16]...]}, .npz with "
                    "arrays exo_poses / ego_poses, .npy (Ne + Ng, 16) with the exo poses first, or .csv rows "
                    "'exo|ego,v0..v15'. Pose convention: fx, fy, px, py normalised by image size, then row-major "
                    "world-to-camera [R|T] (OpenCV axes).")
    _flag(gen, "exo", required=True, help="exo video file (MP4 or anything FFmpeg reads)")
    _flag(gen, "poses", required=True, help="poses file (.json, .npz, .npy or .csv; see above)")
    _flag(gen, "out", required=True, help="output ego video (MP4: a name ending in .mp4, .m4v or .mov)")
    _flag(gen, "fps", type=float, default=10.0, help="frame rate of the written video (default: 10)")
    common(gen)

    ev = commands.add_parser(
        "evaluate", help="Score trained models (and trivial baselines) on held-out takes of a Syn2Seq dataset.",
        description="Generate the target clip of each held-out take and score it against the ground truth, mean and "
                    "95% interval over scenes: PSNR and SSIM per frame of one sample (scene i: seed + i); layout "
                    "PSNR, the PSNR after averaging generated and true frames over non-overlapping blocks "
                    "(--layout_block), so geometry counts and texture phase does not; mean-of-N PSNR, the PSNR of the "
                    "pixel-wise mean of --num_samples samples (a posterior-mean estimate; the first sample is the "
                    "single one); exo-dependence, the PSNR with the scene's own source clip minus the PSNR with scene "
                    "(i+1) mod n's source clip and source poses (own target poses, same seed): 0 for a model that "
                    "ignores its input. A scene costs --num_samples generations, plus one for the exo-dependence. "
                    "Several --model folders are the training seeds of one row (each scene's score is averaged over "
                    "them); without --model the bundled model is scored. --baselines adds 'mean training target frame' "
                    "and 'copy the source frame next to the transition' (PSNR, SSIM, layout PSNR; mean-of-N and "
                    "exo-dependence do not apply to them); --baselines_only scores only those.")
    _flag(ev, "data", required=True, help="Syn2Seq dataset folder")
    _flag(ev, "split", default="test", help="dataset split whose takes are scored (train, validation, test; "
          "default: test)")
    _flag(ev, "num_scenes", type=int, default=None, help="first N takes of the split (default: all)")
    _flag(ev, "num_frames", type=int, default=None, help="target frames scored (default: the whole clip)")
    _flag(ev, "direction", default="exo2ego", choices=["exo2ego", "ego2exo"],
          help="exo2ego: generate the ego clip from the exo clip and score it; ego2exo: the reverse (default: exo2ego)")
    _flag(ev, "baselines", action="store_true", help="also score the trivial baselines")
    _flag(ev, "baselines_only", action="store_true", help="score only the trivial baselines (no model)")
    _flag(ev, "baseline_split", default="train", help="split of the mean-frame baseline")
    _flag(ev, "num_samples", type=int, default=4,
          help="samples per scene for the mean-of-N PSNR (default 4; 1 disables it; a scene costs N "
               "generations)")
    _flag(ev, "layout_block", type=int, default=None,
          help="layout PSNR block side in pixels (default: frame side // 8, i.e. 4 at 32x32, 8 at 64x64)")
    _flag(ev, "no_exo_dependence", action="store_true",
          help="skip the exo-dependence (it costs one more generation per scene)")
    _flag(ev, "ci", default="t", choices=["t", "bootstrap"], help="95%% interval: Student t or bootstrap")
    _flag(ev, "output", default=None, help="JSON file for every number")
    common(ev, many_models=True)

    _add_app_parser(commands)
    return parser


def app(args: argparse.Namespace) -> int:
    from .app import DEFAULT_STEPS, build_app

    page = build_app(args.model, args.device, args.dtype, example_steps=0 if args.no_example else DEFAULT_STEPS)
    print(f"serving the Syn2Seq demo on http://{args.host}:{args.port} (Ctrl+C stops it)")
    page.launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


def check_common_args(args: argparse.Namespace) -> None:
    """Checks of the flags every command shares; errors name the flag, the expected and the received value."""
    if args.command == "app":
        if not 1 <= args.port <= 65535:
            raise ValueError(f"--port: expected a TCP port in [1, 65535], got {args.port}")
        return _check_device(args)
    if getattr(args, "num_frames", None) is not None and args.num_frames < 1:
        raise ValueError(f"--num_frames: expected a positive frame count, got {args.num_frames}")
    if args.steps < 1:
        raise ValueError(f"--steps: expected an integer >= 1, got {args.steps}")
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed: expected an integer in [0, 2**63), got {args.seed}")
    if args.num_transition_frames is not None and args.num_transition_frames < 0:
        raise ValueError(f"--num_transition_frames: expected an integer >= 0, got {args.num_transition_frames}")
    if getattr(args, "fps", None) is not None and not (math.isfinite(args.fps) and args.fps > 0):
        raise ValueError(f"--fps: expected a finite number > 0, got {args.fps}")
    _check_device(args)


def _check_device(args: argparse.Namespace) -> None:
    """`--device` names a device this machine has."""
    import torch

    try:
        device = torch.device(args.device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device: expected a torch device such as cpu, cuda or cuda:1, got {args.device!r}"
                         ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: expected a device this machine has, got {args.device!r} (no CUDA device)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    from .threads import configure_threads

    try:
        configure_threads(args.threads)
        if args.quiet:  # also the "Loading pipeline components" bar of diffusers
            diffusers_logging.disable_progress_bar()
        check_common_args(args)
        if args.command != "app":
            _sampling(args)  # before any work
        return {"demo": demo, "generate": generate, "evaluate": evaluate, "app": app}[args.command](args)
    except BAD_INPUT_ERRORS as error:
        if debug_requested(argv):
            raise
        print(f"syn2seq {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


def _read_conversion_config(value: str, flag: str, what: str, presets: dict) -> dict:
    """The settings of `flag`: a name of `presets` (the released DFoT VAEs), else a JSON file holding an object."""
    if value in presets:
        return json.loads(json.dumps(presets[value]))  # a copy
    return read_json_object(value, flag, f"a JSON file of {what}",
                            f" (or a VAE preset: {', '.join(sorted(presets))})")


def _convert_dfot(argv: list[str] | None) -> int:
    import torch

    from .models.conversion_dfot import convert_dfot_checkpoint
    from .models.conversion_vae_dfot import DFOT_VAE_PRESETS
    from .pipelines.conversion_dfot_pipeline import convert_dfot_pipeline

    parser = ToolArgumentParser(prog="syn2seq-convert-dfot",
                                description="Convert an official DFoT checkpoint (backbone or VAE) to a diffusers "
                                "model folder, or a backbone and its VAE to a whole pipeline folder.")
    parser.add_argument("--checkpoint", required=True, help="Official .ckpt/.pt/.safetensors file (pickled files "
                        "are read with torch.load(weights_only=True): tensors and plain containers only).")
    parser.add_argument("--config", required=True, help="JSON with backbone_config, x_shape, max_tokens, "
                        "external_cond_dim; or the settings of an official VAE (ddconfig + embed_dim, or model_cfg), "
                        f"or a VAE preset: {', '.join(sorted(DFOT_VAE_PRESETS))}.")
    parser.add_argument("--vae_checkpoint", default=None, help="With --vae_config: the backbone's official VAE; "
                        "writes a whole pipeline folder (transformer, scheduler, vae, model_index.json).")
    parser.add_argument("--vae_config", default=None, help="Settings of --vae_checkpoint: a JSON file or a preset "
                        f"({', '.join(sorted(DFOT_VAE_PRESETS))}, with the official latent statistics).")
    parser.add_argument("--output_dir", required=True, help="Where to write the model or pipeline folder.")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    for flag, path in (("--checkpoint", args.checkpoint), ("--vae_checkpoint", args.vae_checkpoint)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{flag}: expected an official DFoT checkpoint file, got {path!r} (does not "
                                    "exist)")
    if (args.vae_checkpoint is None) != (args.vae_config is None):
        raise ValueError("--vae_checkpoint and --vae_config go together: expected both or neither, got only "
                         f"{'--vae_checkpoint' if args.vae_checkpoint else '--vae_config'}")
    dfot_config = _read_conversion_config(args.config, "--config", "backbone settings", DFOT_VAE_PRESETS)
    created = not os.path.lexists(args.output_dir)
    output_dir = check_output_dir(args.output_dir, "--output_dir")  # before the (long) conversion, not after it
    dtype = getattr(torch, args.dtype)
    try:
        if args.vae_checkpoint is not None:
            vae_config = _read_conversion_config(args.vae_config, "--vae_config", "VAE settings", DFOT_VAE_PRESETS)
            model = convert_dfot_pipeline(args.checkpoint, dfot_config, args.vae_checkpoint, vae_config,
                                          torch_dtype=dtype)
            last, parts = "model_index.json", [model.transformer, model.vae]
        else:
            model = convert_dfot_checkpoint(args.checkpoint, dfot_config, torch_dtype=dtype)
            last, parts = "config.json", [model]
    except BaseException:
        if created and not any(output_dir.iterdir()):  # a failed conversion leaves no empty folder behind
            output_dir.rmdir()
        raise
    staging = output_dir / f".convert-{time.time_ns()}.tmp"  # complete before it is moved into place
    try:
        model.save_pretrained(staging)
        fix_weight_modes([staging])
        publish_folder(staging, output_dir, last=last)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    n_params = sum(p.numel() for part in parts for p in part.parameters())
    print(f"Saved {type(model).__name__} ({n_params / 1e6:.1f}M parameters) to {args.output_dir}")
    return 0


def convert_dfot_command(argv: list[str] | None = None) -> int:
    """`syn2seq-convert-dfot`: `models.conversion_dfot.convert_dfot_checkpoint` from the command line, with the
    project's one-line errors, the output written in a hidden folder first and weights of mode 0644."""
    return run_tool("syn2seq-convert-dfot", _convert_dfot, argv)


if __name__ == "__main__":
    sys.exit(main())
