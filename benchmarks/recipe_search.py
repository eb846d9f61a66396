# SPDX-License-Identifier: Apache-2.0
"""Search for a training recipe a CPU can teach: short runs at equal wall-clock, scored on the validation split.

    python benchmarks/recipe_search.py --dry_run                 # the plan and every command
    python benchmarks/recipe_search.py                           # every variant, 10 min each, 2 jobs x 1 thread
    python benchmarks/recipe_search.py --only base loss=min_snr --minutes 12
    python benchmarks/recipe_search.py --report_only             # rewrite the table from the saved results

The search varies one factor at a time around a base recipe (`BASE`: the `cpu-small` scale of
`syn2seq_experiment.py`, `video+pose` with rendered transitions, Exo2Ego) and trains every variant for the same
wall-clock time (`train.py --max_train_minutes`, so a slower configuration does fewer steps: equal compute, not equal
steps). Each model is scored on the **validation** split only (`syn2seq evaluate --split validation`, scene i
sampled with seed 1000 + i, the same scenes and seeds for every variant) together with the trivial baselines; the
test split is left for the final numbers. Variants (`VARIANTS`): loss weighting, noise-level sampling, tokenisation
(patch size), width / depth, learning rate, batch size, EMA decay, and the SynthEgoExo scene style when the renderer
offers one.

Everything is resumable: a rendered dataset, a trained model (`model_index.json`) or an evaluation file is kept, so
a re-run only does what is missing. Outputs: `benchmarks/results/recipe_search.json` (every number, config and
command) and `benchmarks/results/RECIPE_SEARCH.md` (the table: steps done, training wall-clock, single-sample PSNR /
SSIM and every other metric `syn2seq evaluate` reports, with the paired difference to `base` and its 95% interval).
Timings are only comparable when nothing else runs on the machine: run it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from jobs import log, run_commands  # noqa: E402

from diffusers_syn2seq.metrics import paired_difference  # noqa: E402

DATA = dict(resolution=32, frames=4, transition_frames=4, num_train=400, num_validation=16, num_test=32)
MODEL = dict(num_layers=4, num_attention_heads=2, attention_head_dim=64)  # DiT 4 x 128, 1.3M parameters at patch 4
BASE = {  # train.py flags of the base recipe (the experiment's cpu-small video+pose row)
    "--model_preset": "dit-s", "--patch_size": "4", "--camera_ray_type": "plucker", "--mode": "video+pose",
    "--reverse_prob": "0.0", "--transition_source": "cached", "--train_batch_size": "4", "--learning_rate": "3e-4",
    "--lr_scheduler": "constant_with_warmup", "--lr_warmup_steps": "100", "--use_ema": None, "--ema_decay": "0.999",
    "--loss_weighting": "sigmoid", "--noise_level_sampling": "iid", "--mixed_precision": "no", "--seed": "0",
}
# name -> (train.py flag changes against BASE, model-config changes, scene style)
VARIANTS: dict[str, tuple[dict, dict, str | None]] = {
    "base": ({}, {}, None),
    "loss=min_snr": ({"--loss_weighting": "min_snr"}, {}, None),
    "loss=fused_min_snr": ({"--loss_weighting": "fused_min_snr"}, {}, None),
    "loss=uniform": ({"--loss_weighting": "uniform"}, {}, None),
    "levels=uniform_future": ({"--noise_level_sampling": "uniform_future", "--num_context_frames": "4"}, {}, None),
    "levels=inference_matched": ({"--noise_level_sampling": "inference_matched"}, {}, None),
    "patch=2": ({"--patch_size": "2"}, {}, None),
    "wider=6x192": ({}, {"num_layers": 6, "num_attention_heads": 3}, None),
    "lr=1e-3": ({"--learning_rate": "1e-3"}, {}, None),
    "lr=1e-4": ({"--learning_rate": "1e-4"}, {}, None),
    "batch=8": ({"--train_batch_size": "8"}, {}, None),
    "ema=0.99": ({"--ema_decay": "0.99"}, {}, None),
    "style=flat": ({}, {}, "flat"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=None, help=f"variants to run (default: all of {list(VARIANTS)})")
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock training minutes per run")
    p.add_argument("--jobs", type=int, default=2, help="parallel training / evaluation processes")
    p.add_argument("--threads", type=int, default=1, help="OMP / torch threads per process")
    p.add_argument("--steps", type=int, default=25, help="denoising steps of the evaluation")
    p.add_argument("--num_samples", type=int, default=None,
                   help="samples per scene for the mean-of-N PSNR (passed to `syn2seq evaluate` when it has the flag)")
    p.add_argument("--work_dir", type=Path, default=REPO / "runs" / "recipe_search")
    p.add_argument("--results_dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--dry_run", action="store_true", help="print the plan and the commands, run nothing")
    p.add_argument("--report_only", action="store_true", help="rewrite the table from the saved results JSON")
    args = p.parse_args(argv)
    unknown = sorted(set(args.only or []) - set(VARIANTS))
    if unknown:
        p.error(f"--only: unknown variants {unknown}; expected names from {list(VARIANTS)}")
    if not args.minutes > 0 or args.jobs < 1 or args.threads < 1 or args.steps < 1:
        p.error("--minutes must be > 0 and --jobs, --threads, --steps >= 1")
    if args.num_samples is not None and args.num_samples < 1:  # else it fails only after every training run
        p.error(f"--num_samples: expected an integer >= 1, got {args.num_samples}")
    saved = args.results_dir / "recipe_search.json"
    if args.report_only and not saved.is_file():
        p.error(f"--report_only: expected the saved results {saved}, which does not exist (run the search first, or "
                "pass --results_dir)")
    return args


def style_available(style: str) -> bool:
    """True when the SynthEgoExo renderer offers scene style `style`."""
    import inspect

    from diffusers_syn2seq.data.synthetic import render_synthetic_clip

    return "style" in inspect.signature(render_synthetic_clip).parameters or style == "textured"


def data_command(work: Path, style: str) -> tuple[Path, list[str]]:
    folder = work / "data" / style
    argv = [str(REPO / "training" / "make_synthetic_dataset.py"), "--output", str(folder), "--num_train",
            str(DATA["num_train"]), "--num_validation", str(DATA["num_validation"]), "--num_test",
            str(DATA["num_test"]), "--num_frames", str(DATA["frames"]), "--resolution", str(DATA["resolution"]),
            "--transition_frames", str(DATA["transition_frames"]), "--lossless", "--resume"]
    if style != "textured":
        argv += ["--style", style]
    return folder, argv


def plan(args: argparse.Namespace) -> list[dict]:
    """One dict per variant: its output folder, data style, model config file and train.py command."""
    runs = []
    total = 2 * DATA["frames"] + DATA["transition_frames"]
    for name in args.only or list(VARIANTS):
        flags, model_changes, style = VARIANTS[name]
        style = style or "textured"
        if not style_available(style):
            log(f"skip {name}: the renderer has no scene style {style!r}")
            continue
        folder = args.work_dir / "models" / name.replace("=", "-")
        config_path = args.work_dir / "configs" / f"{name.replace('=', '-')}.json"
        train = {**BASE, **flags}
        argv = [str(REPO / "training" / "train.py"), "--dataset_dir", str(args.work_dir / "data" / style),
                "--output_dir", str(folder), "--model_config", str(config_path), "--max_frames", str(total),
                "--window_frames", str(total), "--num_transition_frames", str(DATA["transition_frames"]),
                "--max_train_steps", "1000000", "--max_train_minutes", f"{args.minutes:g}",
                "--checkpointing_steps", "1000000", "--report_to", "none", "--dataloader_num_workers", "0"]
        for flag, value in train.items():
            argv += [flag] if value is None else [flag, value]
        runs.append(dict(name=name, style=style, output=folder, config=config_path,
                         model_config={**MODEL, **model_changes}, argv=argv))
    return runs


def evaluation_command(args: argparse.Namespace, run: dict) -> tuple[Path, list[str]]:
    out = args.work_dir / "eval" / f"{run['output'].name}.json"
    argv = ["-m", "diffusers_syn2seq.cli", "evaluate", "--model", str(run["output"]), "--data",
            str(args.work_dir / "data" / run["style"]), "--split", "validation", "--direction", "exo2ego",
            "--steps", str(args.steps), "--seed", "1000", "--baselines", "--quiet", "--output", str(out)]
    if args.num_samples is not None:
        argv += ["--num_samples", str(args.num_samples)]
    return out, argv


def collect(args: argparse.Namespace, runs: list[dict]) -> dict:
    """The results of the finished runs: training facts, validation scores, paired differences to `base`."""
    rows = {}
    for run in runs:
        out, _ = evaluation_command(args, run)
        report = json.loads(out.read_text())
        summary = json.loads((run["output"] / "training_summary.json").read_text())
        rows[run["name"]] = {
            "style": run["style"], "model_config": run["model_config"],
            "command": " ".join(["python", *run["argv"]]).replace(str(REPO) + "/", ""),
            "steps": summary["global_step"], "train_seconds": summary.get("train_seconds"),
            "num_parameters": summary["num_parameters"], "summary": report["summary"],
            "baselines": {name: b["summary"] for name, b in report.get("baselines", {}).items()},
        }
    if "base" in rows:
        for name, row in rows.items():
            if name != "base" and row["style"] == rows["base"]["style"]:
                row["vs_base_psnr"] = paired_difference(row["summary"], rows["base"]["summary"])
    return {"data": DATA, "model": MODEL, "base": BASE, "minutes": args.minutes, "jobs": args.jobs,
            "threads": args.threads, "eval_steps": args.steps, "rows": rows}


def _cell(stats: dict | None, digits: int = 2) -> str:
    if not stats or "mean" not in stats:
        return "n/a"
    return f"{stats['mean']:.{digits}f} [{stats['low']:.{digits}f}, {stats['high']:.{digits}f}]"


def write_table(results: dict, path: Path) -> None:
    metrics = sorted({key for row in results["rows"].values() for key, value in row["summary"].items()
                      if isinstance(value, dict) and "mean" in value})
    header = ["variant", "style", "steps", "train min", *metrics, "PSNR vs base"]
    lines = [
        "# Recipe search (validation split)",
        "",
        f"Each variant trained {results['minutes']:g} min wall-clock ({results['jobs']} jobs x {results['threads']} "
        f"thread), evaluated on {results['data']['num_validation']} validation scenes with {results['eval_steps']} "
        "steps; mean [95% interval] over scenes. Generated by `benchmarks/recipe_search.py`.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, row in results["rows"].items():
        cells = [name, row["style"], str(row["steps"]), f"{(row['train_seconds'] or 0) / 60:.1f}"]
        cells += [_cell(row["summary"].get(metric), 3 if "ssim" in metric else 2) for metric in metrics]
        cells.append(_cell(row.get("vs_base_psnr")))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Baselines (per style):", ""]
    for style in sorted({row["style"] for row in results["rows"].values()}):
        row = next(r for r in results["rows"].values() if r["style"] == style)
        for name, stats in row["baselines"].items():
            lines.append(f"- {style}, {name}: PSNR {_cell(stats.get('psnr'))}, SSIM {_cell(stats.get('ssim'), 3)}, "
                         f"layout PSNR {_cell(stats.get('layout_psnr'))}")
    lines += ["", "Commands:", ""] + [f"- `{row['command']}`" for row in results["rows"].values()]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    json_path, table_path = args.results_dir / "recipe_search.json", args.results_dir / "RECIPE_SEARCH.md"
    if args.report_only:
        results = json.loads(json_path.read_text())
        write_table(results, table_path)
        return results
    runs = plan(args)
    cfg = {"jobs": args.jobs, "threads": args.threads, "device": "cpu", "in_process": False}
    if args.dry_run:
        for style in sorted({r["style"] for r in runs}):
            print(" ".join(["python", *data_command(args.work_dir, style)[1]]))
        for run in runs:
            print(" ".join(["python", *run["argv"]]))
            print(" ".join(["python", *evaluation_command(args, run)[1]]))
        return {"runs": runs}
    started = time.perf_counter()
    # 1. data, 2. training (equal wall-clock), 3. evaluation on the validation split; each kept when already done
    data = [(f"render {style}", argv, args.work_dir / "logs" / f"data_{style}.log")
            for style, argv in (data_command(args.work_dir, s) for s in sorted({r["style"] for r in runs}))
            if not (args.work_dir / "data" / style / "metadata.parquet").is_file()]
    run_commands(data, {**cfg, "jobs": 1})
    todo = []
    for run in runs:
        run["config"].parent.mkdir(parents=True, exist_ok=True)
        run["config"].write_text(json.dumps(run["model_config"]))
        if not (run["output"] / "model_index.json").is_file():
            log_path = args.work_dir / "logs" / f"train_{run['output'].name}.log"
            todo.append((f"train {run['name']}", run["argv"], log_path))
    run_commands(todo, cfg)
    evals = [(f"evaluate {run['name']}", argv, args.work_dir / "logs" / f"eval_{run['output'].name}.log")
             for run in runs for out, argv in [evaluation_command(args, run)] if not out.is_file()]
    run_commands(evals, cfg)
    results = collect(args, runs)
    results["seconds"] = time.perf_counter() - started
    args.results_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1))
    write_table(results, table_path)
    log(f"wrote {json_path} and {table_path}")
    return results


if __name__ == "__main__":
    main()
