# SPDX-License-Identifier: Apache-2.0
"""Import the command-line scripts under `training/` and `scripts/` (not packages) as modules for tests."""

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, module_name: str | None = None) -> ModuleType:
    """Load `REPO / relative_path` (e.g. "training/train.py") as a fresh module."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(module_name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
