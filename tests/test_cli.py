# SPDX-License-Identifier: Apache-2.0
"""The `syn2seq` command line: help, the demo on a tiny configuration, argument errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffusers_syn2seq import bundled_model_path
from diffusers_syn2seq.cli import main
from diffusers_syn2seq.data import load_poses_file, render_synthetic_clip
from diffusers_syn2seq.data.video_io import read_video, write_video


def test_help_lists_demo():
    result = subprocess.run([sys.executable, "-m", "diffusers_syn2seq.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "demo" in result.stdout


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


def _tiny_trained_folder(root, settings: dict | None):
    """The tiny pipeline of `tiny_inputs`, or with `settings` the same folder as saved before the Syn2Seq settings were
    pipeline configuration (no settings in model_index.json, a syn2seq_settings.json sidecar)."""
    import shutil

    folder = root / "demo_model"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(root / "model", folder)
    if settings is not None:  # a folder saved before the settings were pipeline configuration
        index = json.loads((folder / "model_index.json").read_text())
        for key in ("mode", "num_transition_frames", "reversal"):
            index.pop(key)
        (folder / "model_index.json").write_text(json.dumps(index))
        (folder / "syn2seq_settings.json").write_text(json.dumps(settings))
    return folder


def test_demo_tiny_writes_outputs(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    # a folder made before the settings were pipeline configuration: its sidecar is still read
    model = _tiny_trained_folder(root, {"mode": "video+pose", "num_transition_frames": 2, "num_frames": 3,
                                        "resolution": 16, "reverse_prob": 0.0})
    code = main(["demo", "--model", str(model), "--output_dir", str(tmp_path), "--steps", "2", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "(video+pose, 2 transition frames, 2 steps, exo2ego)" in out
    assert "trivial baseline, copy the exo frame next to the transition" in out
    ego = read_video(tmp_path / "ego.mp4")
    assert ego.shape == (3, 16, 16, 3) and ego.dtype == np.uint8
    assert read_video(tmp_path / "exo.mp4").shape == (3, 16, 16, 3)
    assert read_video(tmp_path / "ego_true.mp4").shape == (3, 16, 16, 3)
    from PIL import Image

    assert Image.open(tmp_path / "side_by_side.png").size[1] == 3 * 16 * 2  # three strips at 2x


def test_demo_defaults_to_the_bundled_model(tmp_path, capsys):
    assert main(["demo", "--output_dir", str(tmp_path), "--steps", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"model {bundled_model_path()} (video+pose, 4 transition frames, 2 steps, exo2ego)" in out
    assert read_video(tmp_path / "ego.mp4").shape == (4, 32, 32, 3)
    assert read_video(tmp_path / "ego_true.mp4").shape == (4, 32, 32, 3)


def test_demo_ego2exo_warns_for_an_exo2ego_model(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    model = _tiny_trained_folder(root, {"mode": "jump", "num_frames": 2, "reverse_prob": 0.0})
    assert main(["demo", "--model", str(model), "--output_dir", str(tmp_path), "--steps", "1", "--direction",
                 "ego2exo", "--num_frames", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trained on Exo2Ego only" in out and "(jump, 0 transition frames, 1 steps, ego2exo)" in out
    assert read_video(tmp_path / "exo.mp4").shape == (2, 16, 16, 3)  # the generated target is the exo view here


def test_demo_errors(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    model = _tiny_trained_folder(root, None)  # default settings: video+pose, 4 transition frames; 4 frames -> 12 > 8
    assert main(["demo", "--model", str(model), "--output_dir", str(tmp_path), "--steps", "1", "--num_frames", "4",
                 "--quiet"]) == 2
    assert "exceed the model's max_frames 8" in capsys.readouterr().err
    assert main(["demo", "--model", str(model), "--num_frames", "0"]) == 2
    assert "--num_frames: expected a positive frame count, got 0" in capsys.readouterr().err
    assert main(["demo", "--model", str(tmp_path / "nowhere")]) == 2
    assert "expected a Syn2Seq pipeline folder" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_generate_writes_the_ego_video(tiny_inputs, tmp_path, capsys):
    root, clip = tiny_inputs
    assert _generate(root, root / "poses.json", tmp_path / "ego.mp4", "--num_transition_frames", "2") == 0
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


def test_generate_with_the_bundled_model(tiny_inputs, tmp_path, capsys):
    root, clip = tiny_inputs  # 16x16 exo frames: resized to the bundled model's 32x32
    code = main(["generate", "--exo", str(root / "exo.mp4"), "--poses", str(root / "poses.json"), "--out",
                 str(tmp_path / "o.mp4"), "--steps", "2", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "resizing the exo frames from 16x16 to the model resolution 32x32" in out
    assert f"model {bundled_model_path()}, mode video+pose" in out
    assert read_video(tmp_path / "o.mp4").shape == (3, 32, 32, 3)


def test_a_missing_bundled_model_is_a_clear_error(tiny_inputs, tmp_path, capsys, monkeypatch):
    import diffusers_syn2seq.bundled as bundled

    monkeypatch.setattr(bundled, "BUNDLED_MODEL_DIRNAME", "no_such_folder")
    root, _ = tiny_inputs
    code = main(["generate", "--exo", str(root / "exo.mp4"), "--poses", str(root / "poses.json"), "--out",
                 str(tmp_path / "o.mp4")])
    assert code == 2
    assert "no trained model is bundled" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_evaluate_help_and_errors(tiny_inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--data", "--direction", "--baselines", "--ci", "--output", "--device", "--dtype"):
        assert flag in out
    assert main(["evaluate", "--data", str(tmp_path / "no-dataset"), "--baselines"]) == 2
    assert "no-dataset" in capsys.readouterr().err
