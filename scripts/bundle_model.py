# SPDX-License-Identifier: Apache-2.0
"""Copy a model trained by `benchmarks/syn2seq_experiment.py` into the package as its bundled model.

    python scripts/bundle_model.py                       # the best Exo2Ego run of the experiment's results
    python scripts/bundle_model.py --model runs/syn2seq_experiment/models/video_pose-s0

Without `--model` the run with the highest mean Exo2Ego test PSNR among the `video+pose` rows of
`benchmarks/results/syn2seq_experiment.json` is taken (ties: the first). Only the pipeline files travel
(`model_index.json` with the Syn2Seq settings, the component folders with their safetensors and configs,
`training_summary.json`); the model card `README.md` is the training card plus the run's test scores. The folder is
assembled next to the destination, loaded back with `Syn2SeqPipeline.from_pretrained` and size-checked before it
replaces `diffusers_syn2seq/bundled_model`, so a failure leaves the previous bundle untouched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diffusers_syn2seq.bundled import BUNDLED_MODEL_DIRNAME, TRAINING_SUMMARY_FILENAME  # noqa: E402

MAX_BYTES = 20 * 1024 * 1024
# the Syn2Seq settings travel in model_index.json (pipeline configuration)
PIPELINE_FILES = ("model_index.json", TRAINING_SUMMARY_FILENAME)
COMPONENT_SUFFIXES = (".json", ".safetensors")


def resolve(path: str | Path) -> Path:
    """Paths recorded in the results are relative to the repository root (or absolute)."""
    path = Path(path)
    return path if path.is_absolute() else REPO / path


def select_run(results: dict, rows: tuple[str, ...] = ("video+pose", "video+pose (both directions)")) -> dict:
    """The run (one training seed of one row) with the best mean Exo2Ego PSNR over the test scenes."""
    best = None
    for row in rows:
        entry = results["table"]["exo2ego"].get(row)
        if entry is None:
            continue
        for seed, scores in zip(entry["seeds"], entry["per_seed"]):
            psnr = sum(scores["psnr"]) / len(scores["psnr"])
            if best is None or psnr > best["psnr"]:
                best = dict(row=row, seed=seed, psnr=psnr)
    if best is None:
        raise ValueError(f"--results: none of the rows {rows} is in the Exo2Ego table")
    run = next(r for r in results["runs"] if r["row"] == best["row"] and r["seed"] == best["seed"])
    return dict(best, output=run["output"])


def scores_section(results: dict, row: str, seed: int) -> str:
    """Markdown with the run's test scores (and the row's and the baselines' for context)."""
    cfg = results["config"]
    lines = [
        "## Benchmark (`benchmarks/syn2seq_experiment.py`)",
        "",
        f"This model is the `{row}` run with training seed {seed} of the Syn2Seq experiment on SynthEgoExo "
        f"({cfg['resolution']}x{cfg['resolution']}, {cfg['frames']} exo + {cfg['transition_frames']} transition + "
        f"{cfg['frames']} ego frames). Scores on the {cfg['num_test']} held-out test scenes, {cfg['inference_steps']} "
        "denoising steps; mean and 95% interval over scenes. The bundled run was chosen as the best Exo2Ego run by "
        "test PSNR, so its own score is optimistic; the row's score (mean over training seeds) is the unbiased one.",
        "",
        "| | direction | PSNR (dB) | SSIM |",
        "|---|---|---|---|",
    ]
    for direction in ("exo2ego", "ego2exo"):
        entry = results["table"][direction].get(row)
        if entry is None:
            continue
        index = entry["seeds"].index(seed)
        own = entry["per_seed"][index]
        psnr, ssim = (sum(own[m]) / len(own[m]) for m in ("psnr", "ssim"))
        lines.append(f"| this model | {direction} | {psnr:.2f} | {ssim:.3f} |")
        s = entry["summary"]
        lines.append(f"| row `{row}` ({s['num_seeds']} seeds) | {direction} | {s['psnr']['mean']:.2f} "
                     f"[{s['psnr']['low']:.2f}, {s['psnr']['high']:.2f}] | {s['ssim']['mean']:.3f} |")
        for name, b in results["table"][direction].items():
            if b["kind"] == "baseline":
                lines.append(f"| {name} | {direction} | {b['summary']['psnr']['mean']:.2f} | "
                             f"{b['summary']['ssim']['mean']:.3f} |")
    lines += ["", "Full table, plot and commands: `benchmarks/results/REPORT.md` in the diffusers-syn2seq repository.",
              "", "## Loading the bundled copy", "", "```python",
              "from diffusers_syn2seq import Syn2SeqPipeline, bundled_model_path",
              "", "pipe = Syn2SeqPipeline.from_pretrained(bundled_model_path())", "```", "",
              "or `syn2seq demo` / `syn2seq generate --exo exo.mp4 --poses poses.json --out ego.mp4`.", ""]
    return "\n".join(lines)


def assemble(model: Path, staging: Path, extra_card: str) -> None:
    index = json.loads((model / "model_index.json").read_text())
    staging.mkdir(parents=True)
    for name in PIPELINE_FILES:
        if (model / name).is_file():
            shutil.copy2(model / name, staging / name)
    for component, spec in index.items():
        if component.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        (staging / component).mkdir()
        for file in (model / component).iterdir():
            if file.suffix in COMPONENT_SUFFIXES:
                shutil.copy2(file, staging / component / file.name)
    card = (model / "README.md").read_text() if (model / "README.md").is_file() else "# Syn2Seq pipeline\n"
    card = card.replace(str(REPO) + "/", "")  # the training command's paths, relative to the repository
    (staging / "README.md").write_text(card.rstrip() + "\n\n" + extra_card)


def check(staging: Path) -> int:
    """Load the assembled folder back (offline, safetensors only) and return its size in bytes."""
    from diffusers_syn2seq import Syn2SeqPipeline

    Syn2SeqPipeline.from_pretrained(str(staging), use_safetensors=True)
    size = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file())
    if size > MAX_BYTES:
        raise ValueError(f"bundled model: at most {MAX_BYTES} bytes allowed, the folder has {size}")
    if any(staging.rglob("*.bin")) or any(staging.rglob("*.ckpt")) or any(staging.rglob("*.pt")):
        raise ValueError("bundled model: only safetensors weights may be bundled")
    return size


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "syn2seq_experiment.json")
    parser.add_argument("--model", type=Path, default=None, help="trained pipeline folder (default: best run)")
    parser.add_argument("--output", type=Path, default=REPO / "diffusers_syn2seq" / BUNDLED_MODEL_DIRNAME)
    args = parser.parse_args(argv)

    if not args.results.is_file():
        raise SystemExit(f"--results: {args.results} does not exist (run benchmarks/syn2seq_experiment.py first)")
    results = json.loads(args.results.read_text())
    if args.model is None:
        chosen = select_run(results)
        model = resolve(chosen["output"])
        print(f"best Exo2Ego run: {chosen['row']} seed {chosen['seed']} ({chosen['psnr']:.2f} dB) at {model}")
    else:
        model = args.model
        run = next((r for r in results["runs"] if resolve(r["output"]).resolve() == model.resolve()), None)
        if run is None:
            raise SystemExit(f"--model: {model} is not one of the runs recorded in {args.results}")
        chosen = dict(row=run["row"], seed=run["seed"])
    if not (model / "model_index.json").is_file():
        raise SystemExit(f"--model: expected a trained pipeline folder with model_index.json, got {model}")

    staging = args.output.with_name(args.output.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        assemble(model, staging, scores_section(results, chosen["row"], chosen["seed"]))
        size = check(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if args.output.exists():
        shutil.rmtree(args.output)
    staging.rename(args.output)
    print(f"bundled {model} -> {args.output} ({size / 1e6:.2f} MB)")
    return args.output


if __name__ == "__main__":
    main()
