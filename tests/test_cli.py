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

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffusers_syn2seq import bundled_model_path
from diffusers_syn2seq.cli import load_poses_file, main
from diffusers_syn2seq.data import render_synthetic_clip
from diffusers_syn2seq.data.video_io import read_video, write_video


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


# ------------------------------------------------------------------------------------------- generate / evaluate


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory):
    """A tiny pose-conditioned pipeline saved to disk, an exo MP4 and its poses file, all written here."""
    from diffusers_syn2seq.models import DFoTTransformer3DModel
    from diffusers_syn2seq.pipelines import Syn2SeqPipeline
    from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

    root = tmp_path_factory.mktemp("generate")
    torch.manual_seed(0)
    transformer = DFoTTransformer3DModel(in_channels=3, sample_size=16, max_frames=8, patch_size=4, num_layers=1,
                                         num_attention_heads=1, attention_head_dim=16, noise_embedding_dim=16,
                                         camera_ray_type="plucker")
    Syn2SeqPipeline(transformer=transformer, scheduler=DiffusionForcingScheduler()).save_pretrained(root / "model")
    clip = render_synthetic_clip(2_000_000, num_frames=3, resolution=16, num_transition_frames=2)
    write_video(root / "exo.mp4", clip["exo"], fps=10, lossless=True)
    (root / "poses.json").write_text(json.dumps({"exo_poses": clip["exo_poses"].tolist(),
                                                 "ego_poses": clip["ego_poses"].tolist()}))
    return root, clip


def _generate(root, poses, out, *extra):
    return main(["generate", "--exo", str(root / "exo.mp4"), "--poses", str(poses), "--out", str(out),
                 "--model", str(root / "model"), "--steps", "2", "--quiet", *extra])


def test_generate_writes_the_ego_video(tiny_inputs, tmp_path, capsys):
    root, clip = tiny_inputs
    assert _generate(root, root / "poses.json", tmp_path / "ego.mp4", "--num-transition-frames", "2") == 0
    ego = read_video(tmp_path / "ego.mp4")
    assert ego.shape == (3, 16, 16, 3) and ego.dtype == np.uint8
    assert "wrote 3 ego frames" in capsys.readouterr().out


def test_poses_file_formats_agree(tiny_inputs, tmp_path):
    _, clip = tiny_inputs
    exo, ego = clip["exo_poses"], clip["ego_poses"][:2]
    np.savez(tmp_path / "p.npz", exo_poses=exo, ego_poses=ego)
    np.save(tmp_path / "p.npy", np.concatenate([exo, ego]))
    lines = ["view," + ",".join(f"v{i}" for i in range(16))]
    lines += ["exo," + ",".join(repr(float(v)) for v in row) for row in exo]
    lines += ["ego," + ",".join(repr(float(v)) for v in row) for row in ego]
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n")
    for name in ("p.npz", "p.npy", "p.csv"):
        got_exo, got_ego = load_poses_file(tmp_path / name, num_exo_frames=3)
        np.testing.assert_allclose(got_exo, exo)
        np.testing.assert_allclose(got_ego, ego)
    with pytest.raises(ValueError, match="unsupported extension '.txt'"):
        (tmp_path / "p.txt").write_text("x")
        load_poses_file(tmp_path / "p.txt", 3)


def test_generate_missing_exo_file(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    code = main(["generate", "--exo", str(tmp_path / "nope.mp4"), "--poses", str(root / "poses.json"), "--out",
                 str(tmp_path / "o.mp4"), "--model", str(root / "model")])
    assert code == 2
    err = capsys.readouterr().err
    assert "nope.mp4" in err and "does not exist" in err


def test_generate_missing_poses_file(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    assert _generate(root, tmp_path / "missing.json", tmp_path / "o.mp4") == 2
    err = capsys.readouterr().err
    assert "missing.json" in err and "does not exist" in err


def test_generate_unreadable_video(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    code = main(["generate", "--exo", str(bad), "--poses", str(root / "poses.json"), "--out", str(tmp_path / "o.mp4"),
                 "--model", str(root / "model")])
    assert code == 2
    err = capsys.readouterr().err
    assert "could not read video" in err and "broken.mp4" in err
    assert not (tmp_path / "o.mp4").exists()


def test_generate_poses_of_the_wrong_length(tiny_inputs, tmp_path, capsys):
    root, clip = tiny_inputs
    poses = tmp_path / "short.json"
    poses.write_text(json.dumps({"exo_poses": clip["exo_poses"][:2].tolist(), "ego_poses": clip["ego_poses"].tolist()}))
    assert _generate(root, poses, tmp_path / "o.mp4") == 2
    err = capsys.readouterr().err
    assert "short.json" in err and "expected 3 exo poses" in err and "received 2" in err
    bad_shape = tmp_path / "shape.json"
    bad_shape.write_text(json.dumps({"exo_poses": clip["exo_poses"].tolist(), "ego_poses": [[0.0] * 12]}))
    assert _generate(root, bad_shape, tmp_path / "o.mp4") == 2
    assert "ego_poses must have shape (N, 16), got (1, 12)" in capsys.readouterr().err


def test_generate_without_a_bundled_model_says_so(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    try:
        bundled_model_path()
    except FileNotFoundError:
        pass
    else:
        pytest.skip("a model is bundled")
    code = main(["generate", "--exo", str(root / "exo.mp4"), "--poses", str(root / "poses.json"), "--out",
                 str(tmp_path / "o.mp4")])
    assert code == 2
    assert "no trained model is bundled" in capsys.readouterr().err


def test_evaluate_help_and_errors(tiny_inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--data", "--direction", "--baselines", "--ci", "--output", "--device", "--dtype"):
        assert flag in out
    assert main(["evaluate", "--data", str(tmp_path / "no-dataset"), "--baselines"]) == 2
    assert "no-dataset" in capsys.readouterr().err
