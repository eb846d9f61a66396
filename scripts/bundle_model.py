# SPDX-License-Identifier: Apache-2.0
"""Copy a model trained by `benchmarks/syn2seq_experiment.py` into the package as its bundled model.

    python scripts/bundle_model.py                       # the best Exo2Ego run of the experiment's results
    python scripts/bundle_model.py --model runs/syn2seq_experiment/models/video_pose-s0
    python scripts/bundle_model.py --model runs/bundle/model --evaluation runs/bundle/test.json
    python scripts/bundle_model.py --pretrained_base runs/two_stage/base    # the pretrained base (bundled_base)

Without `--model` the run with the highest mean Exo2Ego test PSNR among the `video+pose` rows of
`benchmarks/results/syn2seq_experiment.json` is taken (ties: the first). With `--evaluation`, any trained pipeline
folder is bundled and its card gets the test scores of that `syn2seq evaluate --output` report (which must have
scored that folder, with `--baselines`). Only the pipeline files travel
(`model_index.json` with the Syn2Seq settings, the component folders with their safetensors and configs,
`training_summary.json`); the model card `README.md` is the training card plus the run's test scores. The folder is
assembled next to the destination, loaded back with `Syn2SeqPipeline.from_pretrained` and size-checked before it
replaces `diffusers_syn2seq/bundled_model`, so a failure leaves the previous bundle untouched.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diffusers_syn2seq.bundled import (  # noqa: E402
    BUNDLED_BASE_DIRNAME,
    BUNDLED_MODEL_DIRNAME,
    TRAINING_SUMMARY_FILENAME,
)

MAX_BYTES = 20 * 1024 * 1024  # every bundled folder together
PACKAGE = REPO / "diffusers_syn2seq"
# the Syn2Seq settings travel in model_index.json (pipeline configuration)
PIPELINE_FILES = ("model_index.json", TRAINING_SUMMARY_FILENAME)
COMPONENT_SUFFIXES = (".json", ".safetensors")
# the model card's closing section, after whichever scores the card gets
LOADING_SECTION = ["", "## Loading the bundled copy", "", "```python",
                   "from diffusers_syn2seq import Syn2SeqPipeline, bundled_model_path",
                   "", "pipe = Syn2SeqPipeline.from_pretrained(bundled_model_path())", "```", "",
                   "or `syn2seq demo` / `syn2seq generate --exo exo.mp4 --poses poses.json --out ego.mp4`.", ""]
BASE_TITLE = "Pretrained base: a continuous-camera prior on SynthEgoExo rooms (DiT 4x128, 32x32, 12 frames)"
# the pretrained base's closing section: how to load it and fine-tune from it
BASE_SECTION = ["", "## Loading the bundled copy, and fine-tuning from it", "",
                "This is a stage-1 prior: it continues a single-camera clip along given poses and was never trained "
                "on exo/ego pairs. Fine-tune it on pairs (full or LoRA) with `training/train.py`:", "", "```bash",
                "python training/train.py --pretrained_model_name_or_path \\",
                "    \"$(python -c 'import diffusers_syn2seq as s; print(s.bundled_base_path())')\" \\",
                "    --dataset_dir data/synthetic --output_dir runs/from-base --mode video+pose --reverse_prob 0 \\",
                "    --max_train_steps 1000 --learning_rate 1e-3 --lr_scheduler cosine --lr_warmup_steps 200 --use_ema",
                "```", "", "```python", "from diffusers_syn2seq import Syn2SeqPipeline, bundled_base_path", "",
                "pipe = Syn2SeqPipeline.from_pretrained(bundled_base_path())", "```", "",
                "The comparison of fine-tunes from this base with from-scratch training is "
                "`benchmarks/results/TWO_STAGE_REPORT.md` in the diffusers-syn2seq repository.", ""]


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
              *LOADING_SECTION]
    return "\n".join(lines)


def _cell(s: dict, digits: int, sign: str = "") -> str:
    return f"{s['mean']:{sign}.{digits}f} [{s['low']:{sign}.{digits}f}, {s['high']:{sign}.{digits}f}]"


def evaluation_section(report: dict, model: Path) -> str:
    """Markdown with the test scores of a `syn2seq evaluate --baselines --output` report that scored `model`."""
    scored = [Path(m).resolve() for m in report.get("models", [])]
    if scored != [model.resolve()] or "baselines" not in report:
        has = "with" if "baselines" in report else "without"
        raise ValueError(f"--evaluation: expected a `syn2seq evaluate --baselines` report of exactly {model}, got "
                         f"a report of {report.get('models')} {has} baselines")
    s, n = report["summary"], report["summary"]["num_scenes"]
    lines = [
        "## Test scores (`syn2seq evaluate`)",
        "",
        f"{n} held-out `{report['split']}` scenes of `{report['data']}`, {report['direction']}, {report['steps']} "
        f"denoising steps, scene i sampled with seed {report['seed']} + i; mean and 95% interval over scenes "
        f"({report['ci_method']}). PSNR / SSIM are single samples; mean-of-{report['num_samples']} PSNR scores the "
        "average of the samples; layout PSNR compares block means; exo-dependence is the PSNR with the scene's own "
        "exo clip minus with another scene's.",
        "",
        "| | PSNR (dB) | SSIM | layout PSNR (dB) | mean-of-N PSNR (dB) | exo-dependence (dB) |",
        "|---|---|---|---|---|---|",
        f"| this model | {_cell(s['psnr'], 2)} | {_cell(s['ssim'], 3)} | {_cell(s['layout_psnr'], 2)} | "
        f"{_cell(s['mean_of_n_psnr'], 2) if 'mean_of_n_psnr' in s else 'n/a'} | "
        f"{_cell(s['exo_dependence'], 2, '+') if 'exo_dependence' in s else 'n/a'} |",
    ]
    for name, baseline in report["baselines"].items():
        b = baseline["summary"]
        lines.append(f"| baseline `{name}` | {_cell(b['psnr'], 2)} | {_cell(b['ssim'], 3)} | "
                     f"{_cell(b['layout_psnr'], 2)} | n/a | n/a |")
    lines += ["", "Paired per-scene differences, this model minus the baseline:", "",
              "| baseline | PSNR (dB) | SSIM | layout PSNR (dB) |", "|---|---|---|---|"]
    for name, d in report.get("row_minus_baseline", {}).items():
        lines.append(f"| `{name}` | {_cell(d['psnr'], 2, '+')} | {_cell(d['ssim'], 3, '+')} | "
                     f"{_cell(d['layout_psnr'], 2, '+')} |")
    lines += LOADING_SECTION
    return "\n".join(lines)


def training_command(card: str) -> str | None:
    """The first `python training/train.py ...` line of a model card (train.py writes the exact command there)."""
    return next((line for line in card.splitlines() if line.startswith("python training/train.py ")), None)


def _base_of(command: str) -> str | None:
    """The `--pretrained_model_name_or_path` of a training command, or None when it trained from scratch."""
    argv, flag = shlex.split(command), "--pretrained_model_name_or_path"
    return argv[argv.index(flag) + 1] if flag in argv else None


def base_chain(card: str, max_stages: int = 16) -> list[tuple[str, str]]:
    """The (folder, training command) of every local base a model was fine-tuned from, first stage first: the model's
    base, that base's base and so on, followed through the cards train.py writes, up to a model trained from
    scratch. Stops (returning what it found) at a base that is not a local folder with such a card."""
    chain: list[tuple[str, str]] = []
    command = training_command(card)
    while command is not None and (name := _base_of(command)) is not None:
        if len(chain) == max_stages or any(name == seen for seen, _ in chain):
            raise ValueError(f"model card: the chain of base models is cyclic or longer than {max_stages}: {name}")
        base = Path(name) if Path(name).is_absolute() else REPO / name
        command = training_command((base / "README.md").read_text()) if (base / "README.md").is_file() else None
        if command is None:
            break
        chain.append((name, command.replace(str(REPO) + "/", "")))
    return chain[::-1]


def base_model_section(card: str) -> str:
    """For a model fine-tuned from local pipeline folders with cards (a multi-stage recipe), a section with every
    earlier stage's exact training command, so that the bundled card holds the whole recipe; "" otherwise."""
    chain = base_chain(card)
    if not chain:
        return ""
    stages = len(chain) + 1
    lines = ["## Earlier stages of the recipe", "",
             f"This model is stage {stages} of {stages}: fine-tuned from `{chain[-1][0]}`. The earlier stages, "
             "first to last, each continuing the previous one's output:", ""]
    first_base = _base_of(chain[0][1])  # None when the chain reached a model trained from scratch
    for number, (name, command) in enumerate(chain, start=1):
        origin = f"from stage {number - 1}" if number > 1 else (
            "from scratch" if first_base is None else f"from `{first_base}`, whose card is not at hand")
        lines += [f"### Stage {number}: `{name}` ({origin})", "", "```bash", command, "```", ""]
    return "\n".join(lines)


def portable_card(card: str, staging: Path, title: str | None = None) -> str:
    """The card as the bundle shows it: absolute paths in backticks as `path/to/<name>`, no links to validation
    pictures that stay in the training run's folder, and `title` as its heading when given."""
    card = re.sub(r"`(/[^`\s]+)`", lambda m: f"`path/to/{Path(m.group(1)).name}`", card)
    lines, dropped = [], 0
    for line in card.splitlines():
        link = re.fullmatch(r"!\[validation sample \d+\]\((.+)\)", line.strip())
        if link and not (staging / link.group(1)).is_file():
            dropped += 1
            continue
        if title and line.startswith("# "):
            line, title = f"# {title}", None
        lines.append(line)
    if dropped:
        index = next(i for i, line in enumerate(lines) if line.startswith("Columns: source | generated"))
        lines[index] = f"{dropped} validation sample pictures stay in the training run's folder; they are not bundled."
    return "\n".join(lines) + "\n"


def assemble(model: Path, staging: Path, extra_card: str, title: str | None = None) -> None:
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
            if file.suffix == ".json":  # without `_name_or_path`: where the trainer's base lived on its machine
                config = {k: v for k, v in json.loads(file.read_text()).items() if k != "_name_or_path"}
                (staging / component / file.name).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            elif file.suffix in COMPONENT_SUFFIXES:
                shutil.copy2(file, staging / component / file.name)
    card = (model / "README.md").read_text() if (model / "README.md").is_file() else "# Syn2Seq pipeline\n"
    card = portable_card(card.replace(str(REPO) + "/", ""), staging, title)  # paths relative to the repository
    base = base_model_section(card)
    (staging / "README.md").write_text(card.rstrip() + "\n\n" + (base + "\n" if base else "") + extra_card)


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def check(staging: Path, output: Path) -> int:
    """Load the assembled folder back (offline, safetensors only) and return its size in bytes; the bundled folders
    other than the one it replaces count towards the package's MAX_BYTES."""
    from diffusers_syn2seq import Syn2SeqPipeline

    Syn2SeqPipeline.from_pretrained(str(staging), use_safetensors=True)
    size = _size(staging)
    others = sum(_size(PACKAGE / name) for name in (BUNDLED_MODEL_DIRNAME, BUNDLED_BASE_DIRNAME)
                 if (PACKAGE / name).resolve() != output.resolve() and (PACKAGE / name).is_dir())
    if size + others > MAX_BYTES:
        raise ValueError(f"bundled folders: at most {MAX_BYTES} bytes allowed together, this folder has {size} and "
                         f"the other bundled folders {others}")
    if any(staging.rglob("*.bin")) or any(staging.rglob("*.ckpt")) or any(staging.rglob("*.pt")):
        raise ValueError("bundled model: only safetensors weights may be bundled")
    return size


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "syn2seq_experiment.json")
    parser.add_argument("--model", type=Path, default=None, help="trained pipeline folder (default: best run)")
    parser.add_argument("--evaluation", type=Path, default=None,
                        help="`syn2seq evaluate --baselines --output` report of --model: bundle any trained folder")
    parser.add_argument("--pretrained_base", type=Path, default=None,
                        help="a pretraining run (train.py --task pretrain) to ship as the pretrained base")
    parser.add_argument("--output", type=Path, default=None,
                        help="destination (default: diffusers_syn2seq/bundled_model; with --pretrained_base "
                             "diffusers_syn2seq/bundled_base)")
    args = parser.parse_args(argv)
    if args.pretrained_base is not None:
        summary = args.pretrained_base / TRAINING_SUMMARY_FILENAME
        task = json.loads(summary.read_text()).get("task") if summary.is_file() else None
        if task != "pretrain":
            raise SystemExit(f"--pretrained_base: expected a pretraining run (training_summary.json task "
                             f"'pretrain'), got task {task!r} in {args.pretrained_base}")
        return install(args.pretrained_base, args.output or PACKAGE / BUNDLED_BASE_DIRNAME, "\n".join(BASE_SECTION),
                       title=BASE_TITLE)
    args.output = args.output or PACKAGE / BUNDLED_MODEL_DIRNAME

    if args.evaluation is not None:
        if args.model is None or not args.evaluation.is_file():
            raise SystemExit(f"--evaluation needs --model and an existing report file, got --model {args.model}, "
                             f"--evaluation {args.evaluation}")
        extra = evaluation_section(_read_json(args.evaluation, "--evaluation"), args.model)
        return install(args.model, args.output, extra)
    if not args.results.is_file():
        raise SystemExit(f"--results: {args.results} does not exist (run benchmarks/syn2seq_experiment.py first)")
    results = _read_json(args.results, "--results")
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
    return install(model, args.output, scores_section(results, chosen["row"], chosen["seed"]))


def _read_json(path: Path, flag: str) -> dict:
    """The JSON object in `path`, or a one-line exit naming `flag` (not a JSONDecodeError traceback)."""
    try:
        report = json.loads(path.read_text())
    except (ValueError, OSError) as error:
        raise SystemExit(f"{flag}: expected a JSON report, got {path}, which does not parse: {error}") from None
    if not isinstance(report, dict):
        raise SystemExit(f"{flag}: expected a JSON object, got a {type(report).__name__} in {path}")
    return report


def install(model: Path, output: Path, extra_card: str, title: str | None = None) -> Path:
    """Assemble `model` next to `output`, check it, then replace `output` (the previous bundle survives failures)."""
    if not (model / "model_index.json").is_file():
        raise SystemExit(f"--model: expected a trained pipeline folder with model_index.json, got {model}")

    staging = output.with_name(output.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        assemble(model, staging, extra_card, title)
        size = check(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if output.exists():
        shutil.rmtree(output)
    staging.rename(output)
    print(f"bundled {model} -> {output} ({size / 1e6:.2f} MB)")
    return output


if __name__ == "__main__":
    main()
