# Copyright 2026 The diffusers-syn2seq Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Trained pipeline folders: the model bundled inside the package, and the `syn2seq_settings.json` a folder carries
(`mode`, `num_transition_frames`, written by `benchmarks/syn2seq_experiment.py`)."""

import json
import os
from pathlib import Path

BUNDLED_MODEL_DIRNAME = "bundled_model"
SETTINGS_FILENAME = "syn2seq_settings.json"


def bundled_model_path() -> Path:
    """Folder of the trained pipeline shipped inside the package (`diffusers_syn2seq/bundled_model`).

    Raises:
        FileNotFoundError: no model is bundled yet (it is produced by `benchmarks/syn2seq_experiment.py`, issue 7).
    """
    folder = Path(__file__).resolve().parent / BUNDLED_MODEL_DIRNAME
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(
            f"no trained model is bundled with diffusers-syn2seq yet (expected a pipeline folder at {folder}). "
            "Train one with `python benchmarks/syn2seq_experiment.py` and pass it with --model PIPELINE_FOLDER."
        )
    return folder


def read_settings(model: str | os.PathLike) -> dict:
    """`syn2seq_settings.json` of a pipeline folder (empty dict if absent)."""
    path = Path(model) / SETTINGS_FILENAME
    return json.loads(path.read_text()) if path.is_file() else {}
