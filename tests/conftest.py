# SPDX-License-Identifier: Apache-2.0
"""Shared test set-up: offline hub, deterministic torch, and the location of the DFoT reference fixtures."""

import os
from pathlib import Path

# Nothing may be fetched from a hub during tests; set before diffusers/transformers are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# The copy shipped with the repository; SYN2SEQ_SHARED_DIR points the tests at another one (the project's `shared/`).
IN_REPO_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "dfot_reference"
DFOT_FIXTURES = (Path(os.environ["SYN2SEQ_SHARED_DIR"]) / "fixtures" / "dfot_reference"
                 if os.environ.get("SYN2SEQ_SHARED_DIR") else IN_REPO_FIXTURES)


@pytest.fixture(scope="session")
def dfot_fixtures_dir() -> Path:
    """Folder of the official DFoT reference tensors; the parity tests must run in CI, so it is required."""
    if not DFOT_FIXTURES.is_dir():
        raise FileNotFoundError(f"DFoT reference fixtures not found at {DFOT_FIXTURES} (tests/fixtures/dfot_reference "
                                "is part of the repository; SYN2SEQ_SHARED_DIR overrides it).")
    return DFOT_FIXTURES


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


# Where the tools write by default, relative to the working directory (train.py's --output_dir, the demo's, the
# README's datasets): a test must pass its own tmp_path, or a run from the repository root leaves these behind.
DEFAULT_OUTPUT_FOLDERS = ("syn2seq-output", "outputs", "data", "runs")


@pytest.fixture(autouse=True, scope="session")
def _no_output_left_in_the_repository():
    before = {name for name in DEFAULT_OUTPUT_FOLDERS if (REPO_ROOT / name).exists()}
    yield
    left = sorted({name for name in DEFAULT_OUTPUT_FOLDERS if (REPO_ROOT / name).exists()} - before)
    assert not left, f"the tests left {left} in {REPO_ROOT}: pass an output folder under tmp_path"
