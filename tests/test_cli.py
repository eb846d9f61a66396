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
"""The `syn2seq` command line: help, the demo on a tiny configuration, argument errors."""

import subprocess
import sys

import numpy as np
import pytest

from diffusers_syn2seq.cli import main
from diffusers_syn2seq.data.video_io import read_video


def test_help_lists_demo():
    result = subprocess.run([sys.executable, "-m", "diffusers_syn2seq.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "demo" in result.stdout


def test_demo_tiny_writes_outputs_and_checks_parity(tmp_path, capsys, dfot_fixtures_dir, monkeypatch):
    monkeypatch.setenv("SYN2SEQ_SHARED_DIR", str(dfot_fixtures_dir.parents[1]))
    code = main(["demo", "--output_dir", str(tmp_path), "--resolution", "16", "--num_frames", "3",
                 "--num_transition_frames", "1", "--steps", "2"])
    assert code == 0
    out = capsys.readouterr().out
    for name in ("dit3d_discrete", "dit3d_external_cond", "dit3d_continuous"):
        line = next(l for l in out.splitlines() if name in l)
        assert float(line.rsplit(" ", 1)[-1]) < 1e-4
    ego = read_video(tmp_path / "ego.mp4")
    assert ego.shape == (3, 16, 16, 3) and ego.dtype == np.uint8
    assert read_video(tmp_path / "exo.mp4").shape == (3, 16, 16, 3)
    assert (tmp_path / "side_by_side.png").stat().st_size > 0


def test_demo_rejects_bad_resolution(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--resolution", "18"])
    assert "--resolution must be divisible by 4, got 18" in capsys.readouterr().err
