# SPDX-License-Identifier: Apache-2.0
"""The two-stage Syn2Seq experiment (issue 22): with a video prior pretrained on continuous camera motion, does the
transition beat the jump?

Stage 1 (pretraining) is `training/configs/synthetic_cpu_pretrain.yaml` on the continuous-camera corpus
(`make_synthetic_dataset.py --continuous`); this script runs it when `--base` holds no pipeline yet. Stage 2 fine-tunes
that base on SynthEgoExo pairs, next to from-scratch controls with the same data, steps and optimiser:

    python benchmarks/two_stage_experiment.py --work_dir runs/two_stage            # N = 100, ~2.5 h on 2 cores
    python benchmarks/two_stage_experiment.py --work_dir runs/two_stage --num_train 100 2000
    python benchmarks/two_stage_experiment.py --smoke                              # microscopic, in-process (tests)
    python benchmarks/two_stage_experiment.py --dry_run                            # every command, run nothing

Rows, for every N of `--num_train` and every training seed: `jump`, `video`, `video+pose` (rendered transition) and
`video+pose (crossfade)`, each from scratch and from the pretrained base, plus a LoRA fine-tune of `video+pose` from
the base at the smallest N. Nothing is chosen on test: the fine-tuning learning rate of the pretrained rows is
searched on the validation split (`--search_lrs`, rows `jump` and `video+pose`, first seed, smallest N; the rate with
the higher mean validation PSNR of the two wins), the from-scratch rows keep the bundled recipe's rate (chosen on
validation by `recipe_search.py`). Every model is then scored once on the test split with `syn2seq evaluate`, with
the columns of `syn2seq_experiment.py` (PSNR, SSIM, layout PSNR, mean-of-N, exo-dependence, both baselines).

Every step is resumable: a finished dataset, model or evaluation file is kept; an interrupted run resumes from its
latest checkpoint. Outputs: `benchmarks/results/two_stage_experiment.json` (every number, seed and command),
`benchmarks/results/TWO_STAGE_REPORT.md` (tables, the four predictions and their verdicts computed from the numbers)
and `benchmarks/results/two_stage_psnr_vs_n.png`.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from jobs import log, run_commands  # noqa: E402
from syn2seq_experiment import _cell, _fmt, slug  # noqa: E402

from diffusers_syn2seq.metrics import paired_difference, summarize  # noqa: E402

# (row name, mode, cached transition of the data copy it trains on)
ROWS = [("jump", "jump", "render"), ("video", "video", "render"), ("video+pose", "video+pose", "render"),
        ("video+pose (crossfade)", "video+pose", "crossfade")]
LORA_ROW = "video+pose (LoRA)"
SEARCH_ROWS = ("jump", "video+pose")
SCALES: dict[str, dict] = {
    # the bundled model's architecture and recipe (benchmarks/results/LONG_RUNS.md) at fine-tuning length
    "cpu-small": dict(resolution=32, frames=4, transition_frames=4, num_validation=16, num_test=32,
                      style="flat_uniform", num_train=[100], batch_size=4, steps=1000, scratch_lr=1e-3,
                      search_lrs=[1e-3, 3e-4], lora_lr=1e-3, lora_rank=16, warmup=200, ema_decay=0.999,
                      seeds=[0, 1], inference_steps=25, num_samples=2, precision="bf16", jobs=2, threads=1,
                      checkpointing_steps=500, continuous_clips=4000, pretrain_steps=6000,
                      pretrain_config="training/configs/synthetic_cpu_pretrain.yaml",
                      model_config="training/configs/dit_4x128.json", patch_size=4),
    # smoke: 4 pretraining steps, since a DiT's zero-initialised adaLN gates stay 0 for 2 steps, and a LoRA on a base
    # with closed gates gets no gradient
    "smoke": dict(resolution=16, frames=2, transition_frames=2, num_validation=2, num_test=3, style="flat_uniform",
                  num_train=[4],
                  batch_size=2, steps=2, scratch_lr=1e-3, search_lrs=[1e-3, 3e-4], lora_lr=1e-3, lora_rank=4,
                  warmup=0, ema_decay=0.9, seeds=[0, 1], inference_steps=2, num_samples=2, precision="fp32", jobs=1,
                  threads=1, checkpointing_steps=1000, continuous_clips=4, pretrain_steps=4,
                  pretrain_config="training/configs/synthetic_cpu_pretrain.yaml", model_config=None, patch_size=4),
}
SMOKE_MODEL = dict(num_layers=1, num_attention_heads=1, attention_head_dim=16, noise_embedding_dim=16)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="microscopic scale, in-process (seconds; tests)")
    p.add_argument("--work_dir", type=Path, default=None, help="data, models, logs (default: runs/two_stage[-smoke])")
    p.add_argument("--results_dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--base", type=Path, default=None,
                   help="pretrained pipeline folder (default: WORK_DIR/base; pretrained here when it holds none)")
    p.add_argument("--num_train", type=int, nargs="+", help="training pairs N (default: 100; --smoke: 4)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds of every row")
    p.add_argument("--steps", type=int, help="fine-tuning steps of every row")
    p.add_argument("--pretrain_steps", type=int, help="pretraining steps when the base is made here")
    p.add_argument("--search_lrs", type=float, nargs="+", help="fine-tuning rates tried on validation")
    p.add_argument("--jobs", type=int, help="processes in parallel")
    p.add_argument("--dry_run", action="store_true", help="print every command, run nothing")
    p.add_argument("--report_only", action="store_true", help="rewrite the report from the results JSON")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> dict:
    cfg = dict(SCALES["smoke" if args.smoke else "cpu-small"], scale="smoke" if args.smoke else "cpu-small")
    for key in ("num_train", "seeds", "steps", "pretrain_steps", "search_lrs", "jobs"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    cfg.update(num_train=sorted(set(cfg["num_train"])), device="cpu", in_process=args.smoke, ci="t")
    return cfg


# ====================================================================================================================
# Plan
# ====================================================================================================================
def data_commands(cfg: dict, work: Path) -> tuple[list[tuple[str, list[str], Path]], dict[int, dict[str, Path]]]:
    """Commands that make the continuous corpus and, per N, the pairs (render and crossfade copies)."""
    common = ["--num_frames", str(cfg["frames"]), "--resolution", str(cfg["resolution"]), "--transition_frames",
              str(cfg["transition_frames"]), "--style", cfg["style"], "--lossless", "--resume"]
    make = str(REPO / "training" / "make_synthetic_dataset.py")
    commands = [("continuous corpus", [make, "--continuous", "--output", str(work / "data" / "continuous"),
                                       "--num_train", str(cfg["continuous_clips"]), "--num_validation",
                                       str(cfg["num_validation"]), "--num_test", "0", *common],
                 work / "logs" / "data_continuous.log")]
    folders = {}
    for n in cfg["num_train"]:
        render, crossfade = work / "data" / f"n{n}" / "render", work / "data" / f"n{n}" / "crossfade"
        folders[n] = {"render": render, "crossfade": crossfade}
        commands.append((f"pairs n{n}", [make, "--output", str(render), "--num_train", str(n), "--num_validation",
                                         str(cfg["num_validation"]), "--num_test", str(cfg["num_test"]), *common],
                         work / "logs" / f"data_n{n}.log"))
    return commands, folders


def crossfade_command(cfg: dict, crossfade: Path) -> list[str]:
    return [str(REPO / "training" / "cache_transitions.py"), "--data", str(crossfade), "--source", "crossfade",
            "--num_frames", str(cfg["transition_frames"]), "--lossless", "--overwrite"]


def pretrain_command(cfg: dict, work: Path, base: Path) -> list[str]:
    argv = [str(REPO / "training" / "train.py"), "--config", str(REPO / cfg["pretrain_config"]), "--dataset_dir",
            str(work / "data" / "continuous"), "--output_dir", str(base), "--max_train_steps",
            str(cfg["pretrain_steps"])]
    if cfg["scale"] == "smoke":
        argv += ["--model_preset", "dit-tiny", "--model_config", str(work / "model_config.json"), "--max_frames",
                 str(2 * cfg["frames"] + cfg["transition_frames"]), "--window_frames",
                 str(2 * cfg["frames"] + cfg["transition_frames"]), "--num_transition_frames",
                 str(cfg["transition_frames"]), "--train_batch_size", str(cfg["batch_size"]), "--mixed_precision",
                 "no", "--checkpointing_steps", "1000"]
    return argv


def finetune_run(cfg: dict, work: Path, base: Path, data: dict[str, Path], n: int, init: str, row: str, mode: str,
                 source: str, seed: int, lr: float) -> dict:
    """One fine-tuning (or from-scratch) run: its name, output folder and train.py argv."""
    name = f"n{n}-{init}-{slug(row)}-lr{lr:g}-s{seed}"
    out = work / "models" / name
    total = 2 * cfg["frames"] + cfg["transition_frames"]
    window = 2 * cfg["frames"] + (0 if mode == "jump" else cfg["transition_frames"])
    argv = [str(REPO / "training" / "train.py"), "--dataset_dir", str(data[source]), "--output_dir", str(out),
            "--window_frames", str(window), "--mode", mode, "--reverse_prob", "0.0", "--transition_source", "cached",
            "--num_transition_frames", str(cfg["transition_frames"]), "--seed", str(seed), "--train_batch_size",
            str(cfg["batch_size"]), "--max_train_steps", str(cfg["steps"]), "--learning_rate", str(lr),
            "--lr_scheduler", "cosine", "--lr_warmup_steps", str(cfg["warmup"]), "--use_ema", "--ema_decay",
            str(cfg["ema_decay"]), "--mixed_precision", "no" if cfg["precision"] == "fp32" else "bf16",
            "--checkpointing_steps", str(cfg["checkpointing_steps"]), "--checkpoints_total_limit", "1",
            "--report_to", "none", "--dataloader_num_workers", "0", "--task", "syn2seq"]
    if init == "scratch":  # the base's architecture, built fresh
        argv += ["--model_preset", "dit-tiny" if cfg["scale"] == "smoke" else "dit-s", "--model_config",
                 str(work / "model_config.json") if cfg["scale"] == "smoke" else str(REPO / cfg["model_config"]),
                 "--patch_size", str(cfg["patch_size"]), "--max_frames", str(total), "--camera_ray_type", "plucker"]
    else:
        argv += ["--pretrained_model_name_or_path", str(base)]
    if init == "lora":  # train.py keeps no EMA of LoRA weights
        del argv[argv.index("--use_ema"):argv.index("--ema_decay") + 2]
        argv += ["--train_mode", "lora", "--rank", str(cfg["lora_rank"])]
    return dict(name=name, n=n, init=init, row=row, mode=mode, transition=source, seed=seed, learning_rate=lr,
                output=out, argv=argv)


def search_runs(cfg: dict, work: Path, base: Path, folders: dict) -> list[dict]:
    n = cfg["num_train"][0]
    return [finetune_run(cfg, work, base, folders[n], n, "pretrained", row, mode, source, cfg["seeds"][0], lr)
            for lr in cfg["search_lrs"] for row, mode, source in ROWS if row in SEARCH_ROWS]


def main_runs(cfg: dict, work: Path, base: Path, folders: dict, pretrained_lr: float) -> list[dict]:
    runs = []
    for n in cfg["num_train"]:
        for init, lr in (("scratch", cfg["scratch_lr"]), ("pretrained", pretrained_lr)):
            for row, mode, source in ROWS:
                runs += [finetune_run(cfg, work, base, folders[n], n, init, row, mode, source, seed, lr)
                         for seed in cfg["seeds"]]
    n = cfg["num_train"][0]
    runs += [finetune_run(cfg, work, base, folders[n], n, "lora", LORA_ROW, "video+pose", "render", seed,
                          cfg["lora_lr"]) for seed in cfg["seeds"]]
    return runs


def evaluate_argv(cfg: dict, models: list[Path], data: Path, split: str, out: Path, full: bool) -> list[str]:
    """`syn2seq evaluate` of one row (its seeds' models) on a split; `full` adds mean-of-N and exo-dependence."""
    argv = ["-m", "diffusers_syn2seq.cli", "evaluate", "--data", str(data), "--split", split, "--direction",
            "exo2ego", "--steps", str(cfg["inference_steps"]), "--seed", "1000", "--device", "cpu", "--dtype", "fp32",
            "--ci", cfg["ci"], "--quiet", "--threads", str(cfg["threads"]), "--output", str(out)]
    for model in models:
        argv += ["--model", str(model)]
    return argv + (["--num_samples", str(cfg["num_samples"])] if full else ["--num_samples", "1",
                                                                            "--no_exo_dependence"])


# ====================================================================================================================
# Execution
# ====================================================================================================================
def model_folder(r: dict) -> Path:
    """The pipeline folder a run is scored from: its output, or for a LoRA run the base with the LoRA fused in."""
    return r["output"] / "fused" if r["init"] == "lora" else r["output"]


def fuse_lora(base: Path, lora: Path, out: Path) -> None:
    """Save `base` with the LoRA of `lora` fused into its weights, so `syn2seq evaluate` scores it like any model."""
    from diffusers_syn2seq import Syn2SeqPipeline

    pipe = Syn2SeqPipeline.from_pretrained(base)
    pipe.load_lora_weights(lora)
    pipe.fuse_lora()
    pipe.unload_lora_weights()  # keeps the fused weights, drops the adapter layers
    pipe.save_pretrained(out)


def train_all(runs: list[dict], cfg: dict, work: Path, base: Path) -> None:
    todo = []
    for r in runs:
        if (model_folder(r) / "model_index.json").is_file():
            continue
        argv = list(r["argv"])
        if any(r["output"].glob("checkpoint-*")):
            argv += ["--resume_from_checkpoint", "latest"]
        todo.append((f"train {r['name']}", argv, work / "logs" / f"train_{r['name']}.log"))
    run_commands(todo, cfg)
    for r in runs:
        if r["init"] == "lora" and not (model_folder(r) / "model_index.json").is_file():
            fuse_lora(base, r["output"], model_folder(r))


def evaluate_all(items: list[tuple[str, list[str], Path]], cfg: dict) -> None:
    """Run the evaluations whose output file (the argv's `--output`) does not exist yet."""
    todo = [(name, argv, log_path) for name, argv, log_path in items
            if not Path(argv[argv.index("--output") + 1]).is_file()]
    run_commands(todo, cfg)


def choose_lr(cfg: dict, work: Path, runs: list[dict], folders: dict) -> tuple[float, dict]:
    """The pretrained rows' fine-tuning rate: the highest mean validation PSNR over SEARCH_ROWS."""
    items, files = [], {}
    for r in runs:
        out = work / "eval" / f"validation-{r['name']}.json"
        files[r["name"]] = out
        items.append((f"validate {r['name']}", evaluate_argv(cfg, [model_folder(r)], folders[r["n"]]["render"],
                                                             "validation", out, full=False),
                      work / "logs" / f"validate_{r['name']}.log"))
    evaluate_all(items, cfg)
    scores = {}
    for lr in cfg["search_lrs"]:
        psnr = [float(np.mean(json.loads(files[r["name"]].read_text())["per_seed"][0]["psnr"]))
                for r in runs if r["learning_rate"] == lr]
        scores[f"{lr:g}"] = {"mean_validation_psnr": float(np.mean(psnr)), "per_row": psnr}
    best = max(cfg["search_lrs"], key=lambda lr: scores[f"{lr:g}"]["mean_validation_psnr"])
    return best, scores


def row_key(r: dict) -> str:
    return f"{r['init']} · {r['row']}"


def aggregate(cfg: dict, work: Path, runs: list[dict], folders: dict) -> dict:
    """Test-split tables per N: one evaluation file per row (all its seeds), plus the baselines."""
    tables, items, row_files = {}, [], {}
    for n in cfg["num_train"]:
        for key in dict.fromkeys(row_key(r) for r in runs if r["n"] == n):
            members = [r for r in runs if r["n"] == n and row_key(r) == key]
            out = work / "eval" / f"test-n{n}-{slug(key.replace(' · ', '-'))}.json"
            row_files[(n, key)] = (out, members)
            items.append((f"test n{n} {key}", evaluate_argv(cfg, [model_folder(m) for m in members],
                                                            folders[n]["render"], "test", out, full=True),
                          work / "logs" / f"test_{out.stem}.log"))
        out = work / "eval" / f"test-n{n}-baselines.json"
        items.append((f"test n{n} baselines", ["-m", "diffusers_syn2seq.cli", "evaluate", "--baselines_only", "--data",
                                               str(folders[n]["render"]), "--split", "test", "--direction", "exo2ego",
                                               "--ci", cfg["ci"], "--quiet", "--output", str(out)],
                      work / "logs" / f"test_{out.stem}.log"))
    evaluate_all(items, cfg)
    for (n, key), (out, members) in row_files.items():
        per_seed = json.loads(out.read_text())["per_seed"]
        tables.setdefault(str(n), {})[key] = {
            "kind": "model", "init": members[0]["init"], "row": members[0]["row"],
            "seeds": [m["seed"] for m in members], "learning_rate": members[0]["learning_rate"],
            "summary": summarize(per_seed, method=cfg["ci"]), "per_seed": per_seed}
    for n in cfg["num_train"]:
        b = json.loads((work / "eval" / f"test-n{n}-baselines.json").read_text())["baselines"]
        for key, name in (("mean_frame", "baseline: mean training ego frame"),
                          ("copy_source", "baseline: copy last exo frame")):
            tables[str(n)][name] = {"kind": "baseline", "summary": b[key]["summary"], "per_seed": b[key]["per_seed"]}
    return tables


def bundle_verdict(candidates: dict[str, dict], bundled: dict) -> dict:
    """Item 6 of issue 22: the candidate (row -> validation summary) with the highest validation PSNR against the
    bundled model's summary on the same scenes, as a paired difference; `beats_bundled` only when its interval lies
    above 0."""
    best = max(candidates, key=lambda row: candidates[row]["psnr"]["mean"])
    difference = paired_difference(candidates[best], bundled, "psnr", method="t")
    return {"best": best, "best_psnr": candidates[best]["psnr"]["mean"], "bundled_psnr": bundled["psnr"]["mean"],
            "difference": difference, "beats_bundled": bool(difference["low"] > 0),
            "candidates": {row: s["psnr"]["mean"] for row, s in candidates.items()}}


def compare_with_bundled(cfg: dict, work: Path, runs: list[dict], folders: dict) -> dict | None:
    """The pretrained fine-tunes at the largest N (first seed) and the bundled model, scored on the validation split
    of that N's pairs: would the best of them replace the bundled model? None at smoke scale (another resolution)."""
    if cfg["scale"] == "smoke":
        return None
    from diffusers_syn2seq import bundled_model_path

    n = max(cfg["num_train"])
    members = {r["row"]: model_folder(r) for r in runs
               if r["n"] == n and r["init"] == "pretrained" and r["seed"] == cfg["seeds"][0]}
    members["bundled model"] = Path(bundled_model_path())
    items, files = [], {}
    for row, folder in members.items():
        files[row] = work / "eval" / f"validation-n{n}-bundle-candidate-{slug(row)}.json"
        items.append((f"validate {row} (bundle)", evaluate_argv(cfg, [folder], folders[n]["render"], "validation",
                                                                files[row], full=False),
                      work / "logs" / f"validate_{files[row].stem}.log"))
    evaluate_all(items, cfg)
    summaries = {row: summarize(json.loads(f.read_text())["per_seed"], method=cfg["ci"]) for row, f in files.items()}
    bundled = summaries.pop("bundled model")
    return {"n": n, "seed": cfg["seeds"][0], "split": "validation", **bundle_verdict(summaries, bundled)}


# ====================================================================================================================
# Predictions, verdicts, report
# ====================================================================================================================
PREDICTIONS = [
    ("P1", "With the pretrained prior, `video` and `video+pose` score at least as well as `jump`."),
    ("P2", "The advantage of the transition over the jump is larger at N = 100 than at N = 2000."),
    ("P3", "Pretraining helps every mode at N = 100."),
    ("P4", "`video` alone gets most of `video+pose`'s gain over `jump` (the paper's second claim)."),
]


def _diff(table: dict, a: str, b: str, metric: str = "psnr") -> dict | None:
    if a not in table or b not in table:
        return None
    return paired_difference(table[a]["summary"], table[b]["summary"], metric, method="t")


def _interval(d: dict) -> str:
    return f"{d['mean']:+.2f} dB [{d['low']:+.2f}, {d['high']:+.2f}]"


def _sign_word(d: dict) -> str:
    return ("better, interval above 0" if d["low"] > 0 else "worse, interval below 0" if d["high"] < 0
            else "interval includes 0")


def verdicts(tables: dict) -> list[dict]:
    """Each prediction's verdict from the paired (per-scene) test PSNR differences."""
    small, large = min(tables, key=int), max(tables, key=int)
    t = tables[small]
    out = []
    # P1: "at least as well": refuted only when the interval lies below zero
    diffs = {row: _diff(t, f"pretrained · {row}", "pretrained · jump") for row in ("video", "video+pose")}
    held = all(d["high"] >= 0 for d in diffs.values())
    out.append(dict(id="P1", holds=held, evidence={k: v for k, v in diffs.items()}, text=(
        ("holds" if held else "does not hold") + f" at N = {small}: " + "; ".join(
            f"`{row}` minus `jump` {_interval(d)} ({_sign_word(d)})" for row, d in diffs.items()))))
    # P2: needs two N
    if small == large:
        out.append(dict(id="P2", holds=None, evidence={}, text=f"not tested: only N = {small} was run."))
    else:
        adv = {n: _diff(tables[n], "pretrained · video+pose", "pretrained · jump") for n in (small, large)}
        gap = adv[small]["mean"] - adv[large]["mean"]
        out.append(dict(id="P2", holds=bool(gap > 0), evidence=adv, text=(
            f"{'holds in the means' if gap > 0 else 'does not hold'}: `video+pose` minus `jump` (pretrained) is "
            f"{_interval(adv[small])} at N = {small} and {_interval(adv[large])} at N = {large} (independent "
            "intervals; the two N share test scenes but not models).")))
    # P3: pretrained minus scratch, per mode
    diffs = {row: _diff(t, f"pretrained · {row}", f"scratch · {row}") for row, _, _ in ROWS}
    held = all(d["low"] > 0 for d in diffs.values())
    out.append(dict(id="P3", holds=held, evidence=diffs, text=(
        ("holds" if held else "does not hold") + f" at N = {small} (every interval must lie above 0): " + "; ".join(
            f"`{row}` {_interval(d)} ({_sign_word(d)})" for row, d in diffs.items()))))
    # P4: video's gain over jump against video+pose's
    g_video, g_pose = diffs_p4 = (_diff(t, "pretrained · video", "pretrained · jump"),
                                  _diff(t, "pretrained · video+pose", "pretrained · jump"))
    rest = _diff(t, "pretrained · video+pose", "pretrained · video")
    if g_pose["mean"] <= 0:
        text = (f"not testable as stated: `video+pose` has no gain over `jump` to share ({_interval(g_pose)}); "
                f"`video+pose` minus `video` is {_interval(rest)}.")
        held = None
    else:
        share = g_video["mean"] / g_pose["mean"]
        held = bool(share >= 0.5)
        text = (f"{'holds' if held else 'does not hold'} in the means: `video` gets {share:.0%} of `video+pose`'s "
                f"gain ({_interval(g_video)} of {_interval(g_pose)}); `video+pose` minus `video` is "
                f"{_interval(rest)}.")
    out.append(dict(id="P4", holds=held, evidence={"video": diffs_p4[0], "video+pose": diffs_p4[1], "rest": rest},
                    text=text))
    return out


def plot_psnr_vs_n(tables: dict, path: Path) -> None:
    """PSNR (mean and 95% interval over test scenes) against N per row, pretrained solid and scratch dashed (PIL)."""
    from PIL import Image, ImageDraw

    names = [k for k in next(iter(tables.values())) if not k.startswith("baseline")]
    ns = sorted(int(n) for n in tables)
    points = {k: [(n, tables[str(n)][k]["summary"]["psnr"]) for n in ns if k in tables[str(n)]] for k in names}
    lows = [p["low"] for pts in points.values() for _, p in pts]
    highs = [p["high"] for pts in points.values() for _, p in pts]
    lo, hi = min(lows) - 0.3, max(highs) + 0.3
    width, height, left, right, top, bottom = 960, 520, 70, 300, 40, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    plot_w, plot_h = width - left - right, height - top - bottom
    logs = [np.log10(n) for n in ns]
    span = (logs[-1] - logs[0]) or 1.0

    def xy(n: int, v: float, k: int) -> tuple[float, float]:
        x = left + 40 + (plot_w - 80) * ((np.log10(n) - logs[0]) / span if len(ns) > 1 else 0.5) + 6 * (k - 4)
        return x, top + plot_h * (1 - (v - lo) / (hi - lo))

    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="black")
    for i in range(6):
        v = lo + (hi - lo) * i / 5
        y = top + plot_h * (1 - i / 5)
        draw.line([left - 4, y, left + plot_w, y], fill=(225, 225, 225))
        draw.text((8, y - 6), f"{v:.1f}", fill="black")
    for n in ns:
        x, _ = xy(n, lo, 4)
        draw.text((x - 12, top + plot_h + 8), f"N={n}", fill="black")
    draw.text((left + plot_w // 2 - 110, height - 22), "training pairs N (log scale)", fill="black")
    draw.text((8, 12), "test PSNR (dB), mean and 95% interval over scenes", fill="black")
    colors = {"jump": (31, 119, 180), "video": (255, 127, 14), "video+pose": (44, 160, 44),
              "video+pose (crossfade)": (214, 39, 40), LORA_ROW: (148, 103, 189)}
    for k, name in enumerate(names):
        init, row = name.split(" · ")
        color = colors.get(row, (0, 0, 0))
        pts = [(xy(n, p["mean"], k), xy(n, p["low"], k)[1], xy(n, p["high"], k)[1]) for n, p in points[name]]
        for (x, y), ylo, yhi in pts:
            draw.line([x, ylo, x, yhi], fill=color, width=1)
            if init == "scratch":
                draw.rectangle([x - 4, y - 4, x + 4, y + 4], outline=color, width=2)
            else:
                draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
        for (a, _, _), (b, _, _) in zip(pts, pts[1:]):
            draw.line([a, b], fill=color, width=3 if init != "scratch" else 1)
        ly = top + 18 * k
        draw.line([left + plot_w + 12, ly + 6, left + plot_w + 36, ly + 6], fill=color,
                  width=3 if init != "scratch" else 1)
        draw.text((left + plot_w + 42, ly), f"{name} ({'square' if init == 'scratch' else 'dot'})", fill="black")
    image.save(path)


def write_report(results: dict, path: Path) -> None:
    cfg = results["config"]
    lines = ["# The two-stage setting: pretrained prior, then Syn2Seq fine-tuning (issue 22)", "",
             f"Generated by `{results['command']}` on {results['machine']['platform']} "
             f"({results['machine']['cpu_count']} CPUs, {cfg['precision']} training, fp32 sampling), "
             f"{results['finished']}, {results['wall_seconds'] / 60:.1f} min in its last invocation (datasets, "
             "models and evaluations that earlier invocations finished are reused)"
             f"{' (plus the pretraining below)' if results.get('base_made_elsewhere') else ''}.", ""]
    if cfg["scale"] == "smoke":
        lines += ["**Smoke run: microscopic models trained for a few steps. These numbers test the machinery and mean "
                  "nothing about the method.**", ""]
    lines += ["## Predictions (written before any fine-tuning ran)", ""]
    lines += [f"- **{pid}.** {text}" for pid, text in PREDICTIONS]
    lines += ["", "## Verdicts (computed from the test numbers below)", ""]
    lines += [f"- **{v['id']}** {v['text']}" for v in results["verdicts"]]
    lines += ["", "All differences are paired over the same test scenes and sampling seeds (per-scene PSNR averaged "
              "over the training seeds first), with 95% Student-t intervals.", "",
              "## Setting", "",
              f"- Base: `{results['base']}`, {results['base_summary'].get('global_step', 'n/a')} pretraining steps on "
              f"{cfg['continuous_clips']} continuous-camera clips ({results['base_summary'].get('task', 'n/a')} task); "
              f"its last validation: {json.dumps(results['base_summary'].get('last_validation', {}))}.",
              f"- Pairs: SynthEgoExo {cfg['resolution']}x{cfg['resolution']}, {cfg['style']}, {cfg['frames']} exo + "
              f"{cfg['transition_frames']} transition + {cfg['frames']} ego frames; N = "
              f"{', '.join(str(n) for n in cfg['num_train'])} training pairs, {cfg['num_validation']} validation and "
              f"{cfg['num_test']} test scenes (seed ranges disjoint from each other and from the corpus).",
              f"- Fine-tuning: {cfg['steps']} steps for every row, batch {cfg['batch_size']}, cosine schedule with "
              f"{cfg['warmup']} warm-up steps, EMA {cfg['ema_decay']}, seeds {cfg['seeds']}; from scratch at lr "
              f"{cfg['scratch_lr']:g} (the bundled recipe), pretrained at lr {results['pretrained_lr']:g} (searched "
              f"on validation, below), LoRA rank {cfg['lora_rank']} at lr {cfg['lora_lr']:g}.",
              f"- Sampling: {cfg['inference_steps']} steps, full-sequence schedule, scene i seeded 1000 + i; mean-of-N "
              f"with N = {cfg['num_samples']}.", "",
              "Learning-rate search (validation split, pretrained rows "
              f"{', '.join(f'`{r}`' for r in SEARCH_ROWS)}, seed {cfg['seeds'][0]}):", "",
              "| lr | mean validation PSNR (dB) | per row |", "|---|---|---|"]
    for lr, s in results["search"].items():
        lines.append(f"| {lr} | {s['mean_validation_psnr']:.2f} | "
                     f"{', '.join(f'{v:.2f}' for v in s['per_row'])} |")
    for n, rows in results["tables"].items():
        lines += ["", f"## Test split, N = {n}", "",
                  "| row | PSNR (dB) | SSIM | layout PSNR (dB) | mean-of-N PSNR (dB) | exo-dependence (dB) | "
                  "PSNR per seed |", "|---|---|---|---|---|---|---|"]
        for name, e in rows.items():
            s = e["summary"]
            lines.append(f"| {name} | {_fmt(s['psnr'], 2)} | {_fmt(s['ssim'], 3)} | {_cell(s, 'layout_psnr', 2)} | "
                         f"{_cell(s, 'mean_of_n_psnr', 2)} | {_cell(s, 'exo_dependence', 2, '+')} | "
                         f"{', '.join(f'{v:.2f}' for v in s['psnr_per_seed'])} |")
    bundle = results.get("bundle")
    if bundle:
        lines += ["", f"## Against the bundled model (validation split, N = {bundle['n']}, seed {bundle['seed']})", "",
                  "| model | validation PSNR (dB) |", "|---|---|"]
        lines += [f"| pretrained · {row} | {psnr:.2f} |" for row, psnr in bundle["candidates"].items()]
        lines += [f"| bundled model | {bundle['bundled_psnr']:.2f} |", "",
                  f"The best fine-tune (`{bundle['best']}`) minus the bundled model: {_interval(bundle['difference'])} "
                  f"({_sign_word(bundle['difference'])}); "
                  + ("it would replace the bundled model." if bundle["beats_bundled"]
                     else "the bundled model stays.")]
    lines += ["", f"![PSNR against N]({results['plot']})", "",
              "Test PSNR against N per row: dots pretrained, squares from scratch, bars the 95% interval over scenes.",
              "", "## Commands", "", "```bash", *results["commands"], "```", "",
              "Every number, seed and configuration is in `two_stage_experiment.json`."]
    path.write_text("\n".join(lines) + "\n")


# ====================================================================================================================
# Main
# ====================================================================================================================
def _argv_text(argv: list[str]) -> str:
    return " ".join(["python", *argv]).replace(str(REPO) + "/", "")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    results_dir = args.results_dir
    if args.report_only:
        results = json.loads((results_dir / "two_stage_experiment.json").read_text())
        write_report(results, results_dir / "TWO_STAGE_REPORT.md")
        return results
    cfg = build_config(args)
    started = time.perf_counter()
    work = args.work_dir or REPO / "runs" / ("two_stage-smoke" if args.smoke else "two_stage")
    base = args.base or work / "base"
    data, folders = data_commands(cfg, work)
    search = search_runs(cfg, work, base, folders)
    commands = [_argv_text(a) for _, a, _ in data]
    commands += [f"cp -r {f['render']} {f['crossfade']}\n" + _argv_text(crossfade_command(cfg, f['crossfade']))
                 for f in folders.values()]
    commands.append(_argv_text(pretrain_command(cfg, work, base)))
    commands += [_argv_text(r["argv"]) for r in search]
    if args.dry_run:
        print("\n".join(commands))
        print("# then the main rows at the chosen rate, e.g.")
        print("\n".join(_argv_text(r["argv"]) for r in main_runs(cfg, work, base, folders, cfg["search_lrs"][0])))
        return {"config": cfg, "commands": commands}
    work.mkdir(parents=True, exist_ok=True)
    if cfg["scale"] == "smoke":
        (work / "model_config.json").write_text(json.dumps(SMOKE_MODEL))

    # 1. data and the base -------------------------------------------------------------------------------------------
    todo = [(name, a, log_path) for name, a, log_path in data
            if not (Path(a[a.index("--output") + 1]) / "metadata.parquet").is_file()]
    run_commands(todo, cfg)
    for f in folders.values():
        if not (f["crossfade"] / "CROSSFADE_DONE").is_file():
            shutil.rmtree(f["crossfade"], ignore_errors=True)
            shutil.copytree(f["render"], f["crossfade"])
            run_commands([("crossfade", crossfade_command(cfg, f["crossfade"]), work / "logs" / "crossfade.log")], cfg)
            (f["crossfade"] / "CROSSFADE_DONE").write_text("done\n")
    base_made_elsewhere = (base / "model_index.json").is_file() and args.base is not None
    if not (base / "model_index.json").is_file():
        pre = pretrain_command(cfg, work, base)
        if any(base.glob("checkpoint-*")):
            pre += ["--resume_from_checkpoint", "latest"]
        run_commands([("pretrain base", pre, work / "logs" / "pretrain.log")], cfg)

    # 2. learning-rate search on validation, then every row -----------------------------------------------------------
    train_all(search, cfg, work, base)
    lr, search_scores = choose_lr(cfg, work, search, folders)
    log(f"pretrained rows fine-tune at lr {lr:g} (validation: {json.dumps(search_scores)})")
    runs = main_runs(cfg, work, base, folders, lr)
    train_all(runs, cfg, work, base)
    commands += [f"# validation of the search runs, then the main rows at lr {lr:g} (pretrained)"]
    commands += [_argv_text(r["argv"]) for r in runs if r["name"] not in {s["name"] for s in search}]

    # 3. test split, once ---------------------------------------------------------------------------------------------
    tables = aggregate(cfg, work, runs, folders)
    bundle = compare_with_bundled(cfg, work, runs, folders)
    base_summary = json.loads((base / "training_summary.json").read_text())
    validations = base_summary.get("validation") or base_summary.get("validation_history") or []
    results_dir.mkdir(parents=True, exist_ok=True)
    plot = results_dir / "two_stage_psnr_vs_n.png"
    plot_psnr_vs_n(tables, plot)
    results = {
        "command": "python benchmarks/two_stage_experiment.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": cfg, "base": str(base).replace(str(REPO) + "/", ""), "base_made_elsewhere": base_made_elsewhere,
        "base_summary": {"global_step": base_summary.get("global_step"), "task": base_summary.get("task"),
                         "last_validation": validations[-1] if validations else {}},
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "wall_seconds": time.perf_counter() - started,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "search": search_scores, "pretrained_lr": lr,
        "runs": [{k: (str(v) if isinstance(v, Path) else v) for k, v in r.items() if k != "argv"}
                 | {"command": _argv_text(r["argv"])} for r in runs],
        "tables": tables, "verdicts": verdicts(tables), "bundle": bundle, "commands": commands, "plot": plot.name,
    }
    json_path = results_dir / "two_stage_experiment.json"
    json_path.write_text(json.dumps(results, indent=1, default=str))
    write_report(results, results_dir / "TWO_STAGE_REPORT.md")
    log(f"wrote {json_path} and {results_dir / 'TWO_STAGE_REPORT.md'}")
    for v in results["verdicts"]:
        print(f"{v['id']}: {v['text']}")
    return results


if __name__ == "__main__":
    main()
