# SPDX-License-Identifier: Apache-2.0
"""The Syn2Seq-Forcing experiment on SynthEgoExo (issue 7): does a transition beat the "jump"?

One command renders the data, trains every row, evaluates on held-out test scenes and writes the table, the plot
and the report:

    python benchmarks/syn2seq_experiment.py                      # --scale cpu-small (default), ~2 h on 2 cores
    python benchmarks/syn2seq_experiment.py --scale gpu --device cuda
    python benchmarks/syn2seq_experiment.py --smoke              # whole pipeline at microscopic scale (tests)
    python benchmarks/syn2seq_experiment.py --dry_run            # print the plan and every command, run nothing

Steps (each resumable: a finished dataset, trained model or evaluation file is kept and skipped on a re-run; an
interrupted training run resumes from its latest checkpoint):

1. Data: `training/make_synthetic_dataset.py` renders train / validation / test takes (seed ranges of
   `diffusers_syn2seq.data.synthetic.seeds_for_split`, so the test scenes are never seen in training) with the true
   `render` transition cached (lossless H.264, so no codec error enters the scores); a copy of the dataset gets the
   `crossfade` transition cached by `training/cache_transitions.py`. `--style flat` renders flat-shaded scenes (one
   colour per surface, same geometry and cameras per seed) instead of the default procedural textures.
2. Training (`training/train.py`, one subprocess per run, `OMP_NUM_THREADS` threads each, `--jobs` in parallel):
   rows `jump`, `video`, `video+pose` (render transition) and `video+pose` (crossfade transition), Exo2Ego only
   (`--reverse_prob 0`), plus one `video+pose` model trained on both directions (`--reverse_prob 0.5`) for Ego2Exo.
   Identical architecture (the model window always holds exo + transition + ego), data, steps and optimiser; every
   row is trained with the same seeds (`--seeds`). The window is the whole sequence, so the model sees all exo frames
   while generating all ego frames (`jump`: 2N frames, the others 2N + Ni).
3. Evaluation (`syn2seq evaluate`, one subprocess per model): each test scene's target clip is generated from its
   source clip and poses (scene i samples with seed 1000 + i), and scored per frame with PSNR and SSIM
   (`diffusers_syn2seq.metrics`), plus three scores that separate "knows the scene" from "draws plausible noise":
   layout PSNR (PSNR of 4x4-pixel block means at 32x32: geometry, not texture phase), mean-of-N PSNR (the pixel-wise
   mean of `--num_samples` samples, default 4, against the truth: a posterior-mean estimate) and exo-dependence
   (PSNR with the scene's own exo clip minus PSNR with the next scene's exo clip and exo poses, same seed; 0 for a
   model that ignores its input). A row's per-scene score is the mean over its training seeds; the table
   gives the mean over scenes and its 95% Student-t interval (`--ci bootstrap`: percentile bootstrap, 10,000
   resamples). Differences to `jump` are paired over scenes (same scenes, same sampling seeds), with their own
   interval. Baselines: the mean training ego frame, and the last exo frame repeated (Ego2Exo: the mean training exo
   frame and the first ego frame). LPIPS and FVD are not computed: their weights are not installable from a package
   here.
4. Outputs: `benchmarks/results/syn2seq_experiment.json` (every number, seed, config and command),
   `benchmarks/results/REPORT.md` (table and the statement whether `video` / `video+pose` beat `jump`, computed from
   the numbers) and `benchmarks/results/syn2seq_per_frame_psnr.png` (per-frame PSNR curves; matplotlib when installed,
   otherwise drawn with PIL).

Scale `cpu-small` (the default) was sized on a 2-core AVX2 EPYC: 32x32 frames, 4 exo + 4 transition + 4 ego frames,
a DiT of 4 layers x width 128 (patch 4, 1.3M parameters), batch 4, fp32, 2 seeds; since issue 12 it trains with the
bundled model's recipe (`flat_uniform` scenes, lr 1e-3 with 200 warm-up steps and cosine decay, EMA 0.999) for 1000
steps. Per-step figures, measured with
`training/train.py` (EMA on), two runs side by side at one thread each: 1.05 s per step with the 12-frame window and
0.72 s with the 8-frame `jump` window; a 1-scene sampling forward takes 0.09 s. 9 runs x 1000 steps on 2 parallel
jobs plus 10 evaluations of 32 scenes x 25 steps x 5 generations (4 samples + the swapped-exo one) give the
estimate printed at start-up: about 2 h.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diffusers_syn2seq.data.synthetic import SCENE_STYLES  # noqa: E402
from diffusers_syn2seq.metrics import paired_difference, summarize  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jobs import log, run_commands  # noqa: E402

# Per-scale settings; every one can be overridden from the command line (see --help).
SCALES: dict[str, dict] = {
    "cpu-small": dict(resolution=32, frames=4, transition_frames=4, num_train=400, num_validation=8, num_test=32,
                      preset="dit-s", model_config=dict(num_layers=4, num_attention_heads=2, attention_head_dim=64),
                      # the recipe of the bundled model (benchmarks/results/LONG_RUNS.md) at a shorter length
                      style="flat_uniform", patch_size=4, batch_size=4, steps=1000, learning_rate=1e-3,
                      lr_scheduler="cosine", warmup=200, ema_decay=0.999,
                      seeds=[0, 1], bidirectional_seeds=[0], inference_steps=25, num_samples=4, device="cpu",
                      precision="fp32", jobs=2, threads=1, checkpointing_steps=400,
                      # measured on the 2-core CPU (module docstring): seconds per training step at 12 and 8 frames
                      # and per sampling forward of one scene
                      est_step_s=1.05, est_step_jump_s=0.72, est_forward_s=0.09),
    "gpu": dict(resolution=64, frames=8, transition_frames=8, num_train=4000, num_validation=32, num_test=128,
                preset="dit-s", model_config=None, style="textured", patch_size=4, batch_size=32, steps=20000,
                learning_rate=2e-4, lr_scheduler="constant_with_warmup", warmup=500, ema_decay=0.9999,
                seeds=[0, 1, 2], bidirectional_seeds=[0], inference_steps=50,
                num_samples=4, device="cuda", precision="bf16", jobs=1, threads=4, checkpointing_steps=2000,
                est_step_s=None, est_step_jump_s=None, est_forward_s=None),
    "smoke": dict(resolution=16, frames=2, transition_frames=2, num_train=3, num_validation=1, num_test=3,
                  preset="dit-tiny", model_config=dict(num_layers=1, num_attention_heads=1, attention_head_dim=16,
                                                       noise_embedding_dim=16),
                  style="textured", patch_size=4, batch_size=2, steps=2, learning_rate=1e-3,
                  lr_scheduler="constant_with_warmup", warmup=0, ema_decay=0.9,
                  seeds=[0, 1], bidirectional_seeds=[0], inference_steps=2, num_samples=2, device="cpu",
                  precision="fp32", jobs=1,
                  threads=1, checkpointing_steps=1000, est_step_s=None, est_step_jump_s=None, est_forward_s=None),
}
ROWS = [  # (row name, mode, transition source, reverse_prob, directions evaluated)
    ("jump", "jump", "render", 0.0, ["exo2ego"]),
    ("video", "video", "render", 0.0, ["exo2ego"]),
    ("video+pose", "video+pose", "render", 0.0, ["exo2ego"]),
    ("video+pose (crossfade)", "video+pose", "crossfade", 0.0, ["exo2ego"]),
    ("video+pose (both directions)", "video+pose", "render", 0.5, ["exo2ego", "ego2exo"]),
]
BIDIRECTIONAL = "video+pose (both directions)"


def _relative(path: Path) -> str:
    """A path as recorded in the results: relative to the repository root when inside it (portable), else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def slug(row: str) -> str:
    return row.replace("video+pose", "video_pose").replace(" (", "-").replace(")", "").replace(" ", "_")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Outputs: benchmarks/results/{syn2seq_experiment.json,REPORT.md,"
                                       "syn2seq_per_frame_psnr.png}.")
    p.add_argument("--scale", choices=["cpu-small", "gpu"], default="cpu-small")
    p.add_argument("--smoke", action="store_true", help="microscopic scale, in-process training (seconds; tests)")
    p.add_argument("--work_dir", "--work-dir", type=Path, default=None,
                   help="data, models, logs (default: runs/syn2seq_experiment[-smoke])")
    p.add_argument("--results_dir", "--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--resolution", type=int)
    p.add_argument("--frames", type=int, help="exo frames = ego frames per take")
    p.add_argument("--transition_frames", "--transition-frames", type=int)
    p.add_argument("--style", choices=SCENE_STYLES,
                   help="SynthEgoExo scene style of the data (default: flat_uniform at cpu-small, the style a CPU "
                        "model learns; textured at gpu)")
    p.add_argument("--num_train", "--num-train", type=int)
    p.add_argument("--num_test", "--num-test", type=int)
    p.add_argument("--steps", type=int, help="training steps per run")
    p.add_argument("--batch_size", "--batch-size", type=int)
    p.add_argument("--learning_rate", "--learning-rate", type=float)
    p.add_argument("--lr_scheduler", "--lr-scheduler", choices=["constant_with_warmup", "cosine"],
                   help="learning-rate schedule of every training run (default: cosine at cpu-small)")
    p.add_argument("--warmup", type=int, help="learning-rate warm-up steps")
    p.add_argument("--preset", choices=["dit-tiny", "dit-s", "dit-b", "dit-l", "dit-xl"],
                   help="DiT size (drops the scale's reduced model config)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds of every row (>= 2 for intervals over seeds)")
    p.add_argument("--inference_steps", "--inference-steps", type=int)
    p.add_argument("--num_samples", "--num-samples", type=int,
                   help="samples per test scene for the mean-of-N PSNR (default 4; 1 disables it)")
    p.add_argument("--device", help="cpu, cuda, ... (training subprocesses: cpu hides GPUs)")
    p.add_argument("--precision", choices=["fp32", "bf16"], help="fp32 on CPUs without native bf16")
    p.add_argument("--jobs", type=int, help="training / evaluation processes in parallel")
    p.add_argument("--threads", type=int, help="OMP/torch threads per process")
    p.add_argument("--ci", choices=["t", "bootstrap"], default="t", help="95%% interval over scenes")
    p.add_argument("--in_process", "--in-process", action="store_true",
                   help="run scripts in this process, sequentially (default with --smoke)")
    p.add_argument("--subprocess", action="store_true", help="with --smoke: run scripts as subprocesses like the full "
                                                             "experiment")
    p.add_argument("--dry_run", "--dry-run", action="store_true", help="print the plan and the commands, run nothing")
    p.add_argument("--report_only", "--report-only", action="store_true",
                   help="rewrite REPORT.md from the results JSON of --results_dir (after a change to the report text), "
                        "run nothing")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> dict:
    scale = "smoke" if args.smoke else args.scale
    cfg = dict(SCALES[scale], scale=scale)
    for key in ("resolution", "frames", "transition_frames", "style", "num_train", "num_test", "steps", "batch_size",
                "learning_rate", "lr_scheduler", "warmup", "seeds", "inference_steps", "num_samples", "device",
                "precision", "jobs", "threads"):
        value = getattr(args, key)
        if value is not None:
            cfg[key] = value
    if args.preset is not None:
        cfg.update(preset=args.preset, model_config=None)
    # per-step figures survive a change of --steps (the estimate scales with it), not a change of the step's size
    if any(v is not None for v in (args.resolution, args.frames, args.transition_frames, args.batch_size, args.preset)):
        cfg.update(est_step_s=None, est_step_jump_s=None, est_forward_s=None)  # measured figures no longer apply
    cfg["ci"] = args.ci
    cfg["in_process"] = bool(args.in_process or (args.smoke and not args.subprocess))
    if cfg["resolution"] % cfg["patch_size"]:
        raise SystemExit(f"--resolution must be divisible by the patch size {cfg['patch_size']}, "
                         f"got {cfg['resolution']}")
    return cfg


# ====================================================================================================================
# Running scripts (subprocess, or in-process for --smoke)
# ====================================================================================================================
# ====================================================================================================================
# Plan
# ====================================================================================================================
def data_commands(cfg: dict, work: Path) -> tuple[Path, Path, list, list]:
    render, crossfade = work / "data" / "render", work / "data" / "crossfade"
    make = [str(REPO / "training" / "make_synthetic_dataset.py"), "--output", str(render), "--num_train",
            str(cfg["num_train"]), "--num_validation", str(cfg["num_validation"]), "--num_test", str(cfg["num_test"]),
            "--num_frames", str(cfg["frames"]), "--resolution", str(cfg["resolution"]), "--transition_frames",
            str(cfg["transition_frames"]), "--style", cfg["style"], "--lossless", "--resume"]
    cache = [str(REPO / "training" / "cache_transitions.py"), "--data", str(crossfade), "--source", "crossfade",
             "--num_frames", str(cfg["transition_frames"]), "--lossless", "--overwrite"]
    return render, crossfade, make, cache


def training_runs(cfg: dict, work: Path, render: Path, crossfade: Path) -> list[dict]:
    runs = []
    total = 2 * cfg["frames"] + cfg["transition_frames"]
    model_config = None
    if cfg["model_config"]:
        model_config = work / "model_config.json"
    for row, mode, source, reverse, directions in ROWS:
        seeds = cfg["bidirectional_seeds"] if row == BIDIRECTIONAL else cfg["seeds"]
        for seed in seeds:
            out = work / "models" / f"{slug(row)}-s{seed}"
            window = 2 * cfg["frames"] + (0 if mode == "jump" else cfg["transition_frames"])
            argv = [str(REPO / "training" / "train.py"),
                    "--dataset_dir", str(crossfade if source == "crossfade" else render),
                    "--output_dir", str(out), "--model_preset", cfg["preset"], "--patch_size", str(cfg["patch_size"]),
                    "--max_frames", str(total), "--window_frames", str(window), "--camera_ray_type", "plucker",
                    "--mode", mode, "--reverse_prob", str(reverse), "--transition_source", "cached",
                    "--num_transition_frames", str(cfg["transition_frames"]), "--seed", str(seed),
                    "--train_batch_size", str(cfg["batch_size"]), "--max_train_steps", str(cfg["steps"]),
                    "--learning_rate", str(cfg["learning_rate"]), "--lr_scheduler", cfg["lr_scheduler"],
                    "--lr_warmup_steps", str(cfg["warmup"]), "--use_ema", "--ema_decay", str(cfg["ema_decay"]),
                    "--mixed_precision", "no" if cfg["precision"] == "fp32" else "bf16",
                    "--checkpointing_steps", str(cfg["checkpointing_steps"]), "--checkpoints_total_limit", "1",
                    "--report_to", "none", "--dataloader_num_workers", "0"]
            if model_config is not None:
                argv[argv.index("--patch_size"):argv.index("--patch_size")] = ["--model_config", str(model_config)]
            runs.append(dict(row=row, mode=mode, transition=source, reverse_prob=reverse, seed=seed, output=out,
                             argv=argv, directions=directions, window=window))
    return runs


def estimate_seconds(cfg: dict, runs: list[dict]) -> float | None:
    if cfg.get("est_step_s") is None:
        return None
    train = sum(cfg["steps"] * (cfg["est_step_jump_s"] if r["mode"] == "jump" else cfg["est_step_s"]) for r in runs)
    generations = cfg["num_samples"] + 1  # per scene: the samples of the mean-of-N and the swapped-exo one
    evals = (sum(len(r["directions"]) for r in runs) * cfg["num_test"] * generations * cfg["inference_steps"]
             * cfg["est_forward_s"])
    overhead = 15 * (len(runs) + sum(len(r["directions"]) for r in runs)) + 60  # process start-up, data
    return (train + evals) / max(1, cfg["jobs"]) + overhead


# ====================================================================================================================
# Report
# ====================================================================================================================
def _fmt(s: dict, digits: int, sign: str = "") -> str:
    if np.isnan(s["low"]):
        return f"{s['mean']:{sign}.{digits}f}"
    return f"{s['mean']:{sign}.{digits}f} [{s['low']:{sign}.{digits}f}, {s['high']:{sign}.{digits}f}]"


def _cell(summary: dict, metric: str, digits: int, sign: str = "") -> str:
    """A table cell: the metric's mean and interval, or "n/a" where the summary lacks it (results from before the
    metric existed; mean-of-N and exo-dependence of the baselines)."""
    return _fmt(summary[metric], digits, sign) if metric in summary else "n/a"


def compare_to_jump(table: dict, cfg: dict) -> list[dict]:
    """Paired (per-scene) PSNR / SSIM differences of every Exo2Ego row to `jump`."""
    out = []
    base = table["exo2ego"].get("jump")
    if base is None:
        return out
    for name, entry in table["exo2ego"].items():
        if name == "jump" or entry["kind"] != "model":
            continue
        d_psnr = paired_difference(entry["summary"], base["summary"], "psnr", method=cfg["ci"])
        d_ssim = paired_difference(entry["summary"], base["summary"], "ssim", method=cfg["ci"])
        out.append(dict(row=name, psnr_diff=d_psnr, ssim_diff=d_ssim,
                        beats_jump_psnr=bool(d_psnr["mean"] > 0), significant_psnr=bool(d_psnr["low"] > 0)))
    return out


def verdict(comparisons: list[dict], rows=("video", "video+pose")) -> str:
    lines = []
    for c in comparisons:
        if c["row"] not in rows:
            continue
        d, s = c["psnr_diff"], c["ssim_diff"]
        if np.isnan(d["low"]):
            strength = "(no interval: fewer than 2 scenes)"
        elif d["low"] > 0:
            strength = "and the 95% interval of the difference excludes zero"
        elif d["high"] < 0:
            strength = "and the 95% interval of the difference excludes zero (it is worse)"
        else:
            strength = "but the 95% interval of the difference includes zero, so the difference is not resolved"
        word = "beats" if d["mean"] > 0 else "does not beat"
        lines.append(f"- `{c['row']}` {word} `jump`: PSNR {d['mean']:+.2f} dB "
                     f"[{d['low']:+.2f}, {d['high']:+.2f}], SSIM {s['mean']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}] "
                     f"(paired over {d['n']} test scenes), {strength}.")
    ok = [c for c in comparisons if c["row"] in rows]
    if ok:
        holds = all(c["psnr_diff"]["mean"] > 0 for c in ok)
        resolved = all(c["psnr_diff"]["low"] > 0 for c in ok)
        head = ("The paper's ordering (`video` and `video+pose` beat `jump`) **holds** here" if holds and resolved else
                "The paper's ordering (`video` and `video+pose` beat `jump`) holds in the means but is **not "
                "resolved** by the intervals" if holds else
                "The paper's ordering (`video` and `video+pose` beat `jump`) **does not hold** here")
        lines.insert(0, head + " (PSNR, mean over test scenes of the per-scene score averaged over training seeds).")
    return "\n".join(lines)


def sanity_floor(table: dict) -> str:
    rows = table["exo2ego"]
    if "video+pose" not in rows:
        return ""
    vp = rows["video+pose"]["summary"]["psnr"]
    lines, failed = [], False
    for name in ("baseline: mean training ego frame", "baseline: copy last exo frame"):
        if name in rows:
            b = rows[name]["summary"]["psnr"]
            margin = vp["mean"] - b["mean"]
            clear = vp["low"] > b["high"] if not np.isnan(vp["low"]) else margin > 0
            what = ("clear margin: the intervals do not overlap" if clear else
                    "better, but NOT by a clear margin (the intervals overlap)" if margin > 0 else
                    "WORSE than this trivial baseline: the sanity floor is not met")
            lines.append(f"- `video+pose` vs {name[len('baseline: '):]}: {margin:+.2f} dB ({what}).")
            failed = failed or not clear
    if failed:
        lines += ["", FLOOR_NOTE]
    return "\n".join(lines)


# Why a generative model can sit below the mean-frame baseline on PSNR (stated in the report when the floor fails).
FLOOR_NOTE = (
    "Why a sampler can lose to the mean frame on PSNR: the mean training frame is close to the best *deterministic* "
    "prediction under squared error when the source says little about the target, while a diffusion model draws a "
    "*sample*. For a perfect sampler of p(target | source), the expected squared error of a sample is twice the "
    "error of the posterior mean (E|x - x'|^2 = 2 Var[x | source] for independent x, x' from the posterior), i.e. "
    "about 3 dB of PSNR below the best deterministic prediction. A sample beats the mean frame only once the source "
    "explains more than half of the target's variance. The models trained at this scale do not get that far (see "
    "the table); the scale knobs (`--steps`, `--preset`, `--scale gpu`) are the way up."
)


def plot_curves(curves: dict[str, list[float]], path: Path, title: str) -> str:
    """Per-frame PSNR curves to PNG: matplotlib if installed, else PIL. Returns the backend used."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, ys in curves.items():
            ax.plot(range(1, len(ys) + 1), ys, marker="o", label=name, linestyle="--" if "baseline" in name else "-")
        ax.set_xlabel("generated ego frame")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return "matplotlib"
    except ImportError:
        pass
    from PIL import Image, ImageDraw

    width, height, left, right, top, bottom = 900, 520, 70, 260, 40, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    values = [v for ys in curves.values() for v in ys if np.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    n = max((len(ys) for ys in curves.values()), default=1)
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (plot_w * (i / (n - 1)) if n > 1 else plot_w / 2)
        return x, top + plot_h * (1 - (v - lo) / (hi - lo))

    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="black")
    for k in range(6):
        v = lo + (hi - lo) * k / 5
        _, y = xy(0, v)
        draw.line([left - 4, y, left + plot_w, y], fill=(225, 225, 225))
        draw.text((5, y - 6), f"{v:.1f}", fill="black")
    for i in range(n):
        x, _ = xy(i, lo)
        draw.text((x - 3, top + plot_h + 6), str(i + 1), fill="black")
    draw.text((left + plot_w // 2 - 60, height - 20), "generated ego frame", fill="black")
    draw.text((5, 10), f"PSNR (dB) - {title}", fill="black")
    colors = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
              (127, 127, 127), (23, 190, 207)]
    for k, (name, ys) in enumerate(curves.items()):
        color = colors[k % len(colors)]
        points = [xy(i, v) for i, v in enumerate(ys)]
        if len(points) > 1:
            draw.line(points, fill=color, width=3 if "baseline" not in name else 1)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        ly = top + 18 * k
        draw.line([left + plot_w + 12, ly + 6, left + plot_w + 36, ly + 6], fill=color, width=3)
        draw.text((left + plot_w + 42, ly), name, fill="black")
    image.save(path)
    return "PIL"


def write_report(results: dict, path: Path, plot_name: str) -> None:
    cfg = results["config"]
    block = max(1, cfg["resolution"] // 8)  # `metrics.default_layout_block`
    samples = f"N = {cfg['num_samples']}" if "num_samples" in cfg else "N"
    lines = ["# Syn2Seq-Forcing on SynthEgoExo: results", "",
             f"Generated by `{results['command']}` on {results['machine']['platform']} "
             f"({results['machine']['cpu_count']} CPUs, device `{cfg['device']}`, {cfg['precision']}), "
             f"{results['finished']}, scale `{cfg['scale']}`, total {results['wall_seconds'] / 60:.1f} min.", ""]
    if cfg["scale"] == "smoke":
        lines += ["**Smoke run: microscopic models trained for a few steps. These numbers test the machinery and mean "
                  "nothing about the method.**", ""]
    lines += [f"Data: SynthEgoExo {cfg['resolution']}x{cfg['resolution']} ({cfg.get('style', 'textured')} style), "
              f"{cfg['frames']} exo + "
              f"{cfg['transition_frames']} transition + {cfg['frames']} ego frames, {cfg['num_train']} training takes, "
              f"{cfg['num_test']} held-out test takes. Model: DiT3D `{cfg['preset']}`"
              f"{' with ' + json.dumps(cfg['model_config']) if cfg['model_config'] else ''}, "
              f"patch {cfg['patch_size']}, "
              f"{results.get('num_parameters', 'n/a')} parameters, Plücker pose conditioning; {cfg['steps']} steps, "
              f"batch {cfg['batch_size']}, lr {cfg['learning_rate']} "
              f"({cfg.get('lr_scheduler', 'constant_with_warmup')}, "
              f"{cfg['warmup']} warm-up steps), EMA {cfg['ema_decay']}; training seeds "
              f"{cfg['seeds']} (both-directions model: {cfg['bidirectional_seeds']}); {cfg['inference_steps']} "
              f"sampling steps, full-sequence schedule, no guidance.", "",
              f"Scores: PSNR (dB) and SSIM over the generated target frames; mean over test scenes of each scene's "
              f"score averaged over training seeds, with the 95% "
              f"{'Student-t' if cfg['ci'] == 't' else 'percentile-bootstrap'} "
              f"interval over scenes in brackets. Per-seed means show the spread between training seeds.", "",
              "Scores that separate \"knows the scene\" from \"draws plausible noise\": *layout PSNR* is the PSNR "
              "of the single sample after averaging generated and true frames over non-overlapping blocks of "
              f"{block}x{block} pixels (frame side / 8), so geometry counts and texture phase does not; *mean-of-N "
              f"PSNR* scores the pixel-wise mean of {samples} samples per scene (a posterior-mean estimate; the first "
              "is the single sample); *exo-dependence* is the PSNR with the "
              "scene's own source clip minus the PSNR with the next test scene's source clip and source poses (own "
              "target poses, same seed): 0 for a model that ignores its input. n/a: not in the results (evaluated "
              "before these scores existed), or not applicable (the baselines are deterministic, and exo-dependence "
              "is measured for models only).", ""]
    for direction in ("exo2ego", "ego2exo"):
        rows = results["table"].get(direction, {})
        if not rows:
            continue
        lines += [f"## {'Exo2Ego' if direction == 'exo2ego' else 'Ego2Exo'}", "",
                  "| row | PSNR (dB) | SSIM | layout PSNR (dB) | mean-of-N PSNR (dB) | exo-dependence (dB) | "
                  "PSNR per seed | seeds | scenes |", "|---|---|---|---|---|---|---|---|---|"]
        for name, entry in rows.items():
            s = entry["summary"]
            lines.append(f"| {name} | {_fmt(s['psnr'], 2)} | {_fmt(s['ssim'], 3)} | {_cell(s, 'layout_psnr', 2)} | "
                         f"{_cell(s, 'mean_of_n_psnr', 2)} | {_cell(s, 'exo_dependence', 2, '+')} | "
                         f"{', '.join(f'{v:.2f}' for v in s['psnr_per_seed'])} | {s['num_seeds']} | "
                         f"{s['num_scenes']} |")
        lines.append("")
    lines += ["## Does the transition beat the jump?", "", verdict(results["comparisons"]) or "(no comparison)", ""]
    others = [c for c in results["comparisons"] if c["row"] not in ("video", "video+pose")]
    for c in others:
        d = c["psnr_diff"]
        lines.append(f"- `{c['row']}` vs `jump`: PSNR {d['mean']:+.2f} dB [{d['low']:+.2f}, {d['high']:+.2f}].")
    floor = sanity_floor(results["table"])
    if floor:
        lines += ["", "Sanity floor (the `video+pose` model against the trivial baselines, PSNR):", "", floor]
    lines += ["", f"![per-frame PSNR]({plot_name})", "",
              f"Per-frame PSNR over the generated ego frames (Exo2Ego; plot drawn with {results['plot_backend']}).", "",
              "## Commands", "", "```bash"]
    lines += [c for c in results["commands"]]
    lines += ["```", "", "Every number, seed and configuration is in `syn2seq_experiment.json`."]
    path.write_text("\n".join(lines) + "\n")


# ====================================================================================================================
# Main
# ====================================================================================================================
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.report_only:
        results = json.loads((args.results_dir / "syn2seq_experiment.json").read_text())
        write_report(results, args.results_dir / "REPORT.md", results["plot"])
        log(f"rewrote {args.results_dir / 'REPORT.md'} from {args.results_dir / 'syn2seq_experiment.json'}")
        return results
    cfg = build_config(args)
    started = time.perf_counter()
    work = args.work_dir or REPO / "runs" / ("syn2seq_experiment-smoke" if args.smoke else "syn2seq_experiment")
    results_dir = args.results_dir
    render, crossfade, make, cache = data_commands(cfg, work)
    runs = training_runs(cfg, work, render, crossfade)
    est = estimate_seconds(cfg, runs)
    command = "python benchmarks/syn2seq_experiment.py " + " ".join(sys.argv[1:] if argv is None else argv)
    log(f"scale {cfg['scale']}: {len(runs)} training runs x {cfg['steps']} steps, {cfg['num_test']} test scenes, "
        f"{cfg['jobs']} parallel jobs x {cfg['threads']} threads, work dir {work}")
    if est is not None:
        log(f"estimated wall time from the measured per-step figures: {est / 3600:.2f} h")
    all_commands = [" ".join(["python", *make]), f"cp -r {render} {crossfade}", " ".join(["python", *cache])]
    all_commands += [" ".join(["python", *r["argv"]]) for r in runs]
    if args.dry_run:
        print("\n".join(c.replace(str(REPO) + "/", "") for c in all_commands))
        return {"config": cfg, "commands": all_commands, "estimated_seconds": est}

    # 1. data ------------------------------------------------------------------------------------------------------
    work.mkdir(parents=True, exist_ok=True)
    if cfg["model_config"]:
        (work / "model_config.json").write_text(json.dumps(cfg["model_config"]))
    done_marker = work / "data" / "DONE.json"
    data_id = {k: cfg[k] for k in ("resolution", "frames", "transition_frames", "style", "num_train", "num_validation",
                                   "num_test")}
    # markers written before --style existed describe textured data
    if done_marker.is_file() and {"style": "textured", **json.loads(done_marker.read_text())} == data_id:
        log(f"data: kept {render} and {crossfade}")
    else:
        if done_marker.is_file():
            raise SystemExit(f"{work / 'data'} was made with {done_marker.read_text()}, not {data_id}: use another "
                             f"--work_dir or delete it")
        run_commands([("render dataset", make, work / "logs" / "data_render.log")], cfg)
        if crossfade.exists():
            shutil.rmtree(crossfade)
        shutil.copytree(render, crossfade)
        run_commands([("cache crossfade transitions", cache, work / "logs" / "data_crossfade.log")], cfg)
        done_marker.write_text(json.dumps(data_id))

    # 2. training --------------------------------------------------------------------------------------------------
    todo = []
    for r in runs:
        if (r["output"] / "model_index.json").is_file():
            log(f"train {r['output'].name}: kept (model exists)")
            continue
        argv = list(r["argv"])
        if any(r["output"].glob("checkpoint-*")):
            argv += ["--resume_from_checkpoint", "latest"]
        todo.append((f"train {r['output'].name}", argv, work / "logs" / f"train_{r['output'].name}.log"))
    run_commands(todo, cfg)  # train.py saves each pipeline with its Syn2Seq settings (mode, transition length)

    # 3. evaluation ------------------------------------------------------------------------------------------------
    evals = []
    for r in runs:
        for direction in r["directions"]:
            out = work / "eval" / f"{r['output'].name}-{direction}.json"
            argv = ["-m", "diffusers_syn2seq.cli", "evaluate", "--model", str(r["output"]), "--data", str(render),
                    "--split", "test", "--num_scenes", str(cfg["num_test"]), "--direction", direction,
                    "--steps", str(cfg["inference_steps"]), "--seed", "1000", "--device", cfg["device"],
                    "--dtype", cfg["precision"], "--ci", cfg["ci"], "--num_samples", str(cfg["num_samples"]),
                    "--quiet", "--output", str(out)]
            r.setdefault("eval_files", {})[direction] = out
            all_commands.append(" ".join(["python", *argv]))
            if out.is_file():
                log(f"evaluate {out.name}: kept")
            else:
                evals.append((f"evaluate {out.stem}", argv, work / "logs" / f"eval_{out.stem}.log"))
    for direction in ("exo2ego", "ego2exo"):
        out = work / "eval" / f"baselines-{direction}.json"
        argv = ["-m", "diffusers_syn2seq.cli", "evaluate", "--baselines_only", "--data", str(render), "--split", "test",
                "--num_scenes", str(cfg["num_test"]), "--direction", direction, "--ci", cfg["ci"], "--quiet",
                "--output", str(out)]
        all_commands.append(" ".join(["python", *argv]))
        if not out.is_file():
            evals.append((f"evaluate baselines-{direction}", argv, work / "logs" / f"eval_baselines-{direction}.log"))
    run_commands(evals, cfg)

    # 4. aggregate -------------------------------------------------------------------------------------------------
    table: dict = {"exo2ego": {}, "ego2exo": {}}
    for row, mode, source, reverse, directions in ROWS:
        for direction in directions:
            per_seed = [json.loads(r["eval_files"][direction].read_text())["per_seed"][0]
                        for r in runs if r["row"] == row]
            name = row if not (row == BIDIRECTIONAL and direction == "ego2exo") else row
            table[direction][name] = {"kind": "model", "mode": mode, "transition": source, "reverse_prob": reverse,
                                      "seeds": [r["seed"] for r in runs if r["row"] == row],
                                      "summary": summarize(per_seed, method=cfg["ci"]), "per_seed": per_seed}
    for direction, (mean_name, copy_name) in {"exo2ego": ("mean training ego frame", "copy last exo frame"),
                                              "ego2exo": ("mean training exo frame", "copy first ego frame")}.items():
        b = json.loads((work / "eval" / f"baselines-{direction}.json").read_text())["baselines"]
        for key, name in (("mean_frame", mean_name), ("copy_source", copy_name)):
            table[direction][f"baseline: {name}"] = {"kind": "baseline", "summary": b[key]["summary"],
                                                     "per_seed": b[key]["per_seed"]}
    comparisons = compare_to_jump(table, cfg)
    summary = json.loads((runs[0]["output"] / "training_summary.json").read_text())
    all_commands = [c.replace(str(REPO) + "/", "") for c in all_commands]
    results_dir.mkdir(parents=True, exist_ok=True)
    plot_path = results_dir / "syn2seq_per_frame_psnr.png"
    curves = {name: e["summary"]["per_frame_psnr"] for name, e in table["exo2ego"].items()}
    backend = plot_curves(curves, plot_path, f"Exo2Ego, {cfg['num_test']} test scenes")
    results = {
        "command": command, "config": {k: v for k, v in cfg.items()}, "work_dir": _relative(work),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "wall_seconds": time.perf_counter() - started,
        "estimated_seconds": est, "num_parameters": summary.get("num_parameters"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "runs": [{k: (_relative(v) if isinstance(v, Path) else v) for k, v in r.items() if k != "eval_files"} | {
                 "command": " ".join(["python", *r["argv"]]).replace(str(REPO) + "/", ""),
                 "training_summary": json.loads((r["output"] / "training_summary.json").read_text())} for r in runs],
        "table": table, "comparisons": comparisons, "commands": all_commands, "plot": plot_path.name,
        "plot_backend": backend, "ci_method": cfg["ci"],
    }
    json_path = results_dir / "syn2seq_experiment.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(json_path)
    write_report(results, results_dir / "REPORT.md", plot_path.name)
    log(f"wrote {json_path}, {results_dir / 'REPORT.md'}, {plot_path} in {results['wall_seconds'] / 60:.1f} min")
    print(verdict(comparisons))
    return results


if __name__ == "__main__":
    main()
