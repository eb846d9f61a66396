# SPDX-License-Identifier: Apache-2.0
"""Trained pipeline folders: the model bundled inside the package, and the `syn2seq_settings.json` a folder carries
(`mode`, `num_transition_frames`, written by `benchmarks/syn2seq_experiment.py`)."""

import json
import os
from pathlib import Path

BUNDLED_MODEL_DIRNAME = "bundled_model"
SETTINGS_FILENAME = "syn2seq_settings.json"


def bundled_model_path() -> Path:
    """Folder of the trained pipeline shipped inside the package (`diffusers_syn2seq/bundled_model`), for
    `Syn2SeqPipeline.from_pretrained(bundled_model_path())`: offline, safetensors weights, model card `README.md`,
    `syn2seq_settings.json`. It is the best `video+pose` run of `benchmarks/syn2seq_experiment.py` (32x32 SynthEgoExo,
    4 exo + 4 transition + 4 ego frames), copied by `scripts/bundle_model.py`.

    Raises:
        FileNotFoundError: the folder is missing (an install that dropped the package data).
    """
    folder = Path(__file__).resolve().parent / BUNDLED_MODEL_DIRNAME
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(
            f"no trained model is bundled with this installation of diffusers-syn2seq (expected a pipeline folder at "
            f"{folder}); reinstall the package, or pass a trained pipeline folder with --model PIPELINE_FOLDER "
            "(`python benchmarks/syn2seq_experiment.py` trains them)."
        )
    return folder


def read_settings(model: str | os.PathLike) -> dict:
    """`syn2seq_settings.json` of a pipeline folder (empty dict if absent)."""
    path = Path(model) / SETTINGS_FILENAME
    return json.loads(path.read_text()) if path.is_file() else {}
