# SPDX-License-Identifier: Apache-2.0
"""Model cards of training runs: `model_cards/template.md` filled from the run (`save_model_card`).

The YAML header carries `library_name: diffusers`, the licence, `base_model` and the tags `diffusers`,
`diffusers-syn2seq`, `exo2ego` (plus `lora` for LoRA runs), added like the diffusers training scripts do
(`diffusers.utils.hub_utils.populate_model_card`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from diffusers.utils.hub_utils import populate_model_card
from huggingface_hub import ModelCard, ModelCardData

__all__ = ["DEFAULT_TEMPLATE_PATH", "BASE_TAGS", "metrics_table", "model_card_tags", "save_model_card"]

DEFAULT_TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "model_cards" / "template.md"
BASE_TAGS = ["diffusers", "diffusers-syn2seq", "exo2ego", "video-generation", "diffusion-forcing"]


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
            `command`, ... (missing values render as "n/a").
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
    base_model = run.get("base_model")
    card_data = ModelCardData(
        license=run.get("license", "apache-2.0"),
        library_name="diffusers",
        base_model=base_model if base_model and not os.path.isdir(str(base_model)) else None,
        pipeline_tag="image-to-video",
    )
    for key in (
        "base_model", "repo_id", "rank", "lora_alpha", "lora_layers", "transformer_class", "num_parameters",
        "trainable_parameters", "space", "prediction_type", "noise_schedule", "syn2seq_mode", "segment_lengths",
        "transition_source", "window_frames", "reverse_prob", "noise_level_sampling", "loss_weighting", "dataset",
        "max_train_steps", "batch_size", "learning_rate", "adam_betas", "weight_decay", "lr_scheduler",
        "lr_warmup_steps", "mixed_precision", "ema", "command", "num_transition_frames",
    ):
        if values.get(key) is None:
            values[key] = base_model if key == "base_model" else "n/a"
    values.setdefault("samples", [])
    values["license"] = run.get("license", "apache-2.0")
    card = ModelCard.from_template(card_data, template_path=str(template), **values)
    card = populate_model_card(card, tags=model_card_tags(mode))
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    card.save(Path(output_dir) / "README.md")
    return card
