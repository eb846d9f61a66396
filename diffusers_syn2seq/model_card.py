# SPDX-License-Identifier: Apache-2.0
"""Model cards of training runs: `model_cards/template.md` filled from the run (`save_model_card`).

The YAML header carries `library_name: diffusers`, the licence, `pipeline_tag: video-to-video`, the base model
(`base_model` and `base_model_relation` for a Hub id, which is all the Hub accepts there; `syn2seq_base_model` for the
bundled model or a local folder) and the tags `diffusers`, `diffusers-syn2seq`, `exo2ego` (plus `lora` for LoRA runs),
added like the diffusers training scripts do (`diffusers.utils.hub_utils.populate_model_card`). The usage example
runs as written: it loads the base by the name users load it with (a LoRA on a bare transformer folder or an official
checkpoint builds the pipeline around it, with the run's scheduler and Syn2Seq settings) and samples a SynthEgoExo clip
like the training data (`tests/test_card_usage.py` executes it).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from diffusers.utils.hub_utils import populate_model_card
from huggingface_hub import ModelCard, ModelCardData

from .bundled import BUNDLED_BASE_DIRNAME, BUNDLED_MODEL_DIRNAME
from .safe_io import atomic_write_text

__all__ = ["DEFAULT_TEMPLATE_PATH", "BASE_TAGS", "USAGES", "metrics_table", "model_card_tags", "portable_path",
           "save_model_card", "scheduler_expression", "training_command"]

DEFAULT_TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "model_cards" / "template.md"
# The pipeline folders shipped in the package, recognised as a base by their path: folder -> the function that finds
# it in any installation (`bundled.bundled_model_path()`, `bundled.bundled_base_path()`) and how a card names it.
BUNDLED_FOLDERS = {Path(__file__).resolve().parent / BUNDLED_MODEL_DIRNAME: ("bundled_model_path", "the bundled model"),
                   Path(__file__).resolve().parent / BUNDLED_BASE_DIRNAME: ("bundled_base_path",
                                                                            "the bundled pretrained base")}
BASE_TAGS = ["diffusers", "diffusers-syn2seq", "exo2ego", "video-generation", "diffusion-forcing"]
# The Hub's task of a model that turns a video into another video (the exo clip into the ego clip).
PIPELINE_TAG = "video-to-video"
# How a card's usage example loads the run: its own pipeline folder, a LoRA on a Syn2Seq pipeline, a LoRA on a bare
# transformer folder or official DFoT checkpoint (the pipeline is built around it), a LoRA on a SkyReels-V2 / Wan
# checkpoint (`Syn2SeqPipeline.from_foundation_lora`).
USAGES = ("pipeline", "lora", "transformer_lora", "foundation_lora")


def _launcher_command_line() -> list[str] | None:
    """The `accelerate launch ...` command line that started this process (an ancestor's, on Linux), or None."""
    pid = os.getppid()
    for _ in range(4):  # accelerate -> (torchrun agent ->) this process
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        names = [Path(a).name for a in argv[:3]]
        if "launch" in argv and ("accelerate" in names or any(a.endswith("accelerate") for a in argv[:3])):
            return argv[argv.index("launch"):]
        ppid = [line.split()[1] for line in status.splitlines() if line.startswith("PPid:")]
        if not ppid or ppid[0] in ("0", "1"):
            return None
        pid = int(ppid[0])
    return None


def _accelerate_flags_from_environment() -> list[str]:
    """The accelerate launch flags recoverable from the environment it sets (when its command line is not)."""
    flags = []
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true"):
        flags.append("--cpu")
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        flags += ["--mixed_precision", os.environ["ACCELERATE_MIXED_PRECISION"]]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        flags += ["--num_processes", os.environ["WORLD_SIZE"]]
    return flags


def bundled_in_command(function: str) -> str:
    """How a command on a card names a bundled folder: the call that finds it in any installation."""
    return f"\"$(python -c 'import diffusers_syn2seq as s; print(s.{function}())')\""


def portable_path(value: str) -> str:
    """A path as a card shows it: a bundled folder as the call that finds it, a path inside the working directory
    relative to it, any other absolute path as `path/to/<name>` (the trainer's file system is neither the reader's nor
    theirs to see); relative paths and Hub ids as they are."""
    if not os.path.isabs(value):
        return value
    path = Path(value).resolve()
    if path in BUNDLED_FOLDERS:
        return bundled_in_command(BUNDLED_FOLDERS[path][0])
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return f"path/to/{path.name}"


def _portable_argument(argument: str) -> str:
    """An argument of a training command as its card shows it, shell-quoted (`portable_path`)."""
    flag, equals, value = argument.partition("=") if argument.startswith("--") else ("", "", argument)
    shown = portable_path(value)
    if shown == value:
        return shlex.quote(argument)
    if Path(value).resolve() in BUNDLED_FOLDERS:  # a shell substitution: quoted as it is
        return f"{shlex.quote(flag + equals) if flag else ''}{shown}"
    return shlex.quote(flag + equals + shown)


def training_command(script: str, argv: Sequence[str]) -> str:
    """The command that started a training run, for its model card: `accelerate launch <its own flags> script ...`
    under accelerate (read from the launcher's command line, else rebuilt from the environment accelerate sets),
    `python script ...` otherwise; absolute paths are shown portably (`_portable_argument`)."""
    arguments = " ".join(_portable_argument(str(a)) for a in argv)
    if "ACCELERATE_MIXED_PRECISION" not in os.environ and "LOCAL_RANK" not in os.environ:
        return f"python {script} {arguments}".strip()
    launcher = _launcher_command_line()
    if launcher is not None:
        # keep accelerate's own flags, and name the script the way the card's reader runs it
        cut = next((i for i, a in enumerate(launcher) if a.endswith(".py")), len(launcher))
        return f"{shlex.join(['accelerate', *launcher[:cut], script])} {arguments}".strip()
    return f"{shlex.join(['accelerate', 'launch', *_accelerate_flags_from_environment(), script])} {arguments}".strip()


def base_model_names(base_model: str | os.PathLike | None) -> tuple[str | None, str | None, str | None]:
    """`(shown, code, hub_id)` of a run's base model: how the card names it, the Python expression that loads it in
    the usage example, and its Hub id (the only kind of name the Hub accepts as `base_model` in the front matter).

    - a folder bundled in this package: "the bundled model", `bundled_model_path()` (the pretrained base:
      `bundled_base_path()`), no Hub id;
    - a Hub id: the id itself, quoted, and as the Hub id;
    - another local folder or an official checkpoint file: its name only (an absolute path says nothing to the
      card's reader and leaks the trainer's file system), loaded from `"path/to/<name>"`, no Hub id.
    """
    if not base_model:
        return None, None, None
    if os.path.isdir(str(base_model)):
        folder = Path(str(base_model)).resolve()
        if folder in BUNDLED_FOLDERS:
            function, name = BUNDLED_FOLDERS[folder]
            return f"{name} (`diffusers_syn2seq.{function}()`)", f"{function}()", None
        return f"local folder `{folder.name}`", f'"path/to/{folder.name}"', None
    if os.path.isfile(str(base_model)):  # a file is never a Hub id
        name = Path(str(base_model)).name
        return f"local checkpoint file `{name}`", f'"path/to/{name}"', None
    return str(base_model), f'"{base_model}"', str(base_model)


def _name_or_path_code(name_or_path: str | os.PathLike) -> str:
    """The string literal that names a file, folder or Hub repo in a usage example: `"path/to/<name>"` for what exists
    on the trainer's machine (`base_model_names`), the Hub id itself otherwise."""
    local = os.path.exists(str(name_or_path))
    return json.dumps(f"path/to/{Path(str(name_or_path)).resolve().name}" if local else str(name_or_path))


def scheduler_expression(scheduler: Any) -> str:
    """The Python expression that rebuilds `scheduler` in a usage example: its class called with the settings that
    differ from the class defaults (`DiffusionForcingScheduler(noise_schedule="cosine_simple_diffusion")`)."""
    defaults = type(scheduler)().config
    changed = [f"{key}={json.dumps(value) if isinstance(value, str) else repr(value)}"
               for key, value in scheduler.config.items() if not key.startswith("_") and defaults.get(key) != value]
    return f"{type(scheduler).__name__}({', '.join(changed)})"


def model_card_tags(training_mode: str) -> list[str]:
    """Tags of a run's card: `BASE_TAGS`, plus `lora` for LoRA runs."""
    return BASE_TAGS + (["lora"] if training_mode == "lora" else [])


def metrics_table(metrics: Mapping[str, float] | Sequence[Mapping[str, Any]] | None) -> str:
    """Markdown table of validation metrics: `{name: value}` (one row) or a list of `{"step": s, name: value}`."""
    if not metrics:
        return "No validation metrics were recorded."
    rows = [metrics] if isinstance(metrics, Mapping) else list(metrics)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.4f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_model_card(
    output_dir: str | os.PathLike,
    run: Mapping[str, Any],
    template_path: str | os.PathLike | None = None,
) -> ModelCard:
    """Write `output_dir/README.md` from the template and the run description.

    Args:
        output_dir: folder of the training output (pipeline or LoRA weights).
        run: values of the template: `training_mode` (`"full"` / `"lora"`, required), `base_model`, `repo_id`,
            `license` (default `"apache-2.0"`), `syn2seq_mode`, `segment_lengths`, `transition_source`, `dataset`,
            `metrics` (dict or list of dicts, rendered by `metrics_table`), `samples` (paths relative to `output_dir`),
            `command` or `commands` (every segment of a resumed run), `usage` (one of `USAGES`; default from
            `training_mode`), the usage example's clip `example_frames`, `example_resolution`, `example_style` and
            `posed` (a pose-conditioned model); for `usage="transformer_lora"` also `scheduler_code`
            (`scheduler_expression` of the run's scheduler), `reversal` and `dfot_config` (the settings file of an
            official checkpoint base); `vae_name_or_path` and `vae_subfolder` (a VAE the run loaded by itself,
            passed to the base in the example), ... (missing values render as "n/a").
        template_path: Jinja template (default `model_cards/template.md` of this repository).

    Returns:
        the `huggingface_hub.ModelCard` written.
    """
    template = Path(template_path) if template_path is not None else DEFAULT_TEMPLATE_PATH
    if not template.is_file():
        raise FileNotFoundError(
            f"model card template not found at {str(template)!r}; pass `template_path` (the repository's "
            "model_cards/template.md)."
        )
    mode = run.get("training_mode")
    if mode not in ("full", "lora"):
        raise ValueError(f"run['training_mode'] must be 'full' or 'lora', got {mode!r}.")
    values = {key: value for key, value in run.items() if key not in ("metrics", "license", "base_model")}
    values.setdefault("model_name", run.get("repo_id") or Path(output_dir).resolve().name)
    values.setdefault("model_description", "Exo-to-ego (and ego-to-exo) video generation by sequence completion.")
    values["metrics_table"] = metrics_table(run.get("metrics"))
    shown, code, hub_id = base_model_names(run.get("base_model"))
    bundled = {f"{function}()" for function, _ in BUNDLED_FOLDERS.values()}
    values.update(base_model=shown, base_model_code=code, base_is_bundled=code in bundled,
                  base_model_function=code[:-2] if code in bundled else None)
    if not run.get("repo_id"):  # not uploaded: the usage example loads the output folder
        values["repo_id"] = f"path/to/{Path(output_dir).resolve().name}"
    values.setdefault("usage", "lora" if mode == "lora" else "pipeline")
    if values["usage"] not in USAGES:
        raise ValueError(f"run['usage'] must be one of {list(USAGES)}, got {values['usage']!r}.")
    if values["usage"] == "transformer_lora" and not (code and run.get("scheduler_code")):
        raise ValueError("run['usage'] 'transformer_lora' builds the pipeline around its base: expected "
                         f"run['base_model'] and run['scheduler_code'], got {run.get('base_model')!r} and "
                         f"{run.get('scheduler_code')!r}.")
    values["scheduler_class"] = (run.get("scheduler_code") or "").split("(")[0] or None
    values["dfot_config_code"] = _name_or_path_code(run["dfot_config"]) if run.get("dfot_config") else None
    vae, vae_subfolder = run.get("vae_name_or_path"), run.get("vae_subfolder")
    values["vae_code"] = None if not vae else (
        f"load_vae({_name_or_path_code(vae)}" + (f", subfolder={json.dumps(vae_subfolder)})" if vae_subfolder else ")"))
    commands = run.get("commands") or ([run["command"]] if run.get("command") else [])
    values["command"] = "\n".join(commands) if commands else None  # a resumed run: every segment's command
    extra = {}
    if shown and not hub_id:  # the Hub's `base_model` takes Hub ids only; the bundled model / a folder go here
        extra["syn2seq_base_model"] = f"diffusers_syn2seq.{code}" if values["base_is_bundled"] \
            else shown.replace("`", "")
    card_data = ModelCardData(
        license=run.get("license", "apache-2.0"),
        library_name="diffusers",
        base_model=hub_id,
        base_model_relation=("adapter" if mode == "lora" else "finetune") if hub_id else None,
        pipeline_tag=PIPELINE_TAG,
        **extra,
    )
    for key in (
        "repo_id", "rank", "lora_alpha", "lora_layers", "transformer_class", "num_parameters",
        "trainable_parameters", "space", "prediction_type", "noise_schedule", "syn2seq_mode", "segment_lengths",
        "transition_source", "task", "window_frames", "reverse_prob", "noise_level_sampling", "loss_weighting",
        "dataset", "max_train_steps", "batch_size", "learning_rate", "adam_betas", "weight_decay", "lr_scheduler",
        "lr_warmup_steps", "mixed_precision", "ema", "command", "num_transition_frames",
    ):
        if values.get(key) is None:
            values[key] = "n/a"
    values.setdefault("samples", [])
    values["license"] = run.get("license", "apache-2.0")
    card = ModelCard.from_template(card_data, template_path=str(template), **values)
    card = populate_model_card(card, tags=model_card_tags(mode))
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(output_dir) / "README.md", str(card))  # (card.save writes in place)
    return card
