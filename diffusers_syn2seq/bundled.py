# SPDX-License-Identifier: Apache-2.0
"""Trained pipeline folders: the model and the pretrained base bundled inside the package, and what a folder records
about its training.

The Syn2Seq settings (`mode`, `num_transition_frames`, `reversal`) are `Syn2SeqPipeline` configuration in
`model_index.json`; folders saved before that carry them in a `syn2seq_settings.json` sidecar, still read.
"""

import json
import os
from pathlib import Path

BUNDLED_MODEL_DIRNAME = "bundled_model"
BUNDLED_BASE_DIRNAME = "bundled_base"
# Sidecar of folders made before the Syn2Seq settings were pipeline configuration (read, never written).
SETTINGS_FILENAME = "syn2seq_settings.json"
PIPELINE_SETTINGS = ("mode", "num_transition_frames", "reversal")
TRAINING_SUMMARY_FILENAME = "training_summary.json"


def bundled_model_path() -> Path:
    """Folder of the trained pipeline shipped inside the package (`diffusers_syn2seq/bundled_model`), for
    `Syn2SeqPipeline.from_pretrained(bundled_model_path())`: offline, safetensors weights, model card `README.md`,
    Syn2Seq settings in `model_index.json`. It is a 1.3M-parameter DiT trained on SynthEgoExo `flat_uniform` rooms
    (32x32, 4 exo + 4 transition + 4 ego frames, Exo2Ego) in four stages, `training/configs/synthetic_cpu_recipe.yaml`
    then `..._stage2.yaml` to `..._stage4.yaml`, copied by `scripts/bundle_model.py` with every stage's command and its
    test scores in the model card.

    Raises:
        FileNotFoundError: the folder is missing (an install that dropped the package data).
    """
    return _bundled_folder(BUNDLED_MODEL_DIRNAME, "trained model", "pass a trained pipeline folder with --model "
                           "PIPELINE_FOLDER (`python benchmarks/syn2seq_experiment.py` trains them)")


def bundled_base_path() -> Path:
    """Folder of the pretrained base shipped inside the package (`diffusers_syn2seq/bundled_base`): the bundled model's
    architecture (a 1.3M-parameter DiT, 32x32, 12 frames, Plücker poses) pretrained with DFoT's own task on
    continuous-camera SynthEgoExo clips (`training/configs/synthetic_cpu_pretrain.yaml`), the stage-1 prior of the
    two-stage setting (`benchmarks/results/TWO_STAGE_REPORT.md`). It is the documented starting point of full and
    LoRA fine-tunes: `train.py --pretrained_model_name_or_path "$(python -c 'import diffusers_syn2seq as s;
    print(s.bundled_base_path())')"`. It loads with `Syn2SeqPipeline.from_pretrained` and continues a single-camera
    clip along given poses; it was never trained on exo/ego pairs.

    Raises:
        FileNotFoundError: the folder is missing (an install that dropped the package data).
    """
    return _bundled_folder(BUNDLED_BASE_DIRNAME, "pretrained base", "make one with `python training/train.py "
                           "--config training/configs/synthetic_cpu_pretrain.yaml` (see "
                           "benchmarks/results/TWO_STAGE_REPORT.md)")


def _bundled_folder(dirname: str, what: str, remedy: str) -> Path:
    """The pipeline folder `dirname` inside the package, or FileNotFoundError naming `what` is missing and `remedy`."""
    folder = Path(__file__).resolve().parent / dirname
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"no {what} is bundled with this installation of diffusers-syn2seq (expected a "
                                f"pipeline folder at {folder}); reinstall the package, or {remedy}.")
    return folder


def legacy_settings(folder: str | os.PathLike) -> dict:
    """Syn2Seq settings of a pipeline folder saved before they were pipeline configuration: the `mode`,
    `num_transition_frames` and `reversal` of its `syn2seq_settings.json` sidecar that its `model_index.json` lacks
    (empty for current folders, whose `model_index.json` holds them)."""
    folder = Path(folder)
    sidecar, index = folder / SETTINGS_FILENAME, folder / "model_index.json"
    if not sidecar.is_file():
        return {}
    config = json.loads(index.read_text()) if index.is_file() else {}
    settings = json.loads(sidecar.read_text())
    return {key: settings[key] for key in PIPELINE_SETTINGS if key in settings and key not in config}


def dataset_scene_style(table) -> str | None:
    """The SynthEgoExo scene style shared by every take of a dataset table (rows of `metadata.parquet`; a synthetic take
    without a style is `"textured"`, the only style before the option existed), None when the table holds real
    footage or several styles. `train.py` records it in `training_summary.json` as `scene_style`."""
    rows = list(table)
    if not rows or any(row.get("source") != "synthetic" for row in rows):
        return None
    styles = {row.get("style") or "textured" for row in rows}
    return styles.pop() if len(styles) == 1 else None


def trained_scene_style(folder: str | os.PathLike) -> str | None:
    """SynthEgoExo scene style the folder's model was trained on (`training_summary.json`: `scene_style`, or the
    experiment's `style`), `"textured"` for a synthetic model trained before styles existed, None when unknown."""
    path = Path(folder) / TRAINING_SUMMARY_FILENAME
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    if summary.get("scene_style"):
        return summary["scene_style"]
    experiment = summary.get("experiment") or {}
    return experiment.get("style") or ("textured" if experiment else None)


def trained_reverse_prob(folder: str | os.PathLike) -> float | None:
    """Probability of the Ego2Exo reversal the folder's model was trained with (`training_summary.json`, or the
    legacy sidecar), None when the folder does not record it."""
    for name in (TRAINING_SUMMARY_FILENAME, SETTINGS_FILENAME):
        path = Path(folder) / name
        if path.is_file():
            value = json.loads(path.read_text()).get("reverse_prob")
            if value is not None:
                return float(value)
    return None
