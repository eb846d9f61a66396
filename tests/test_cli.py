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

    picture = Image.open(tmp_path / "side_by_side.png")  # three strips of 3 frames enlarged 8x to 128 px, 4 px gaps
    assert picture.size == (150 + 3 * (128 + 4), 3 * 128 + 2 * 4)
    strip = np.asarray(picture.convert("RGB"))
    true_first = render_synthetic_clip(2_000_000, num_frames=3, resolution=16, num_transition_frames=2)["ego"][0]
    np.testing.assert_array_equal(strip[2 * 132 : 2 * 132 + 128, 150 : 150 + 128], true_first.repeat(8, 0).repeat(8, 1))
    animation = Image.open(tmp_path / "side_by_side.gif")
    assert animation.n_frames == 3 and animation.info["loop"] == 0 and animation.size[1] >= 128


def test_demo_defaults_to_the_bundled_model(tmp_path, capsys):
    assert main(["demo", "--output_dir", str(tmp_path), "--steps", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"model {bundled_model_path()} (video+pose, 4 transition frames, 2 steps, exo2ego)" in out
    assert read_video(tmp_path / "ego.mp4").shape == (4, 32, 32, 3)
    assert read_video(tmp_path / "ego_true.mp4").shape == (4, 32, 32, 3)


def test_demo_renders_the_scene_style_the_model_was_trained_on(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    model = _tiny_trained_folder(root, None)
    (model / "training_summary.json").write_text(json.dumps({"scene_style": "flat", "reverse_prob": 0.0}))
    argv = ["demo", "--model", str(model), "--steps", "1", "--num_frames", "2", "--quiet"]
    assert main([*argv, "--output_dir", str(tmp_path / "a")]) == 0
    assert "(seed 2000000, flat)" in capsys.readouterr().out
    written = read_video(tmp_path / "a" / "ego_true.mp4").astype(int)  # H.264: close to the render, not equal
    distance = {style: np.abs(written - render_synthetic_clip(2_000_000, num_frames=2, resolution=16,
                                                              num_transition_frames=4, style=style)["ego"]).mean()
                for style in ("flat", "textured")}
    assert distance["flat"] < 5 < distance["textured"], distance
    assert main([*argv, "--output_dir", str(tmp_path / "b"), "--style", "textured"]) == 0  # explicit override
    assert "(seed 2000000, textured)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:  # argparse's choices, one line and exit status 2
        main([*argv, "--output_dir", str(tmp_path / "c"), "--style", "pastel"])
    assert exit_.value.code == 2
    assert "argument --style: invalid choice: 'pastel'" in capsys.readouterr().err


def test_demo_ego2exo_warns_for_an_exo2ego_model(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    model = _tiny_trained_folder(root, {"mode": "jump", "num_frames": 2, "reverse_prob": 0.0})
    assert main(["demo", "--model", str(model), "--output_dir", str(tmp_path), "--steps", "1", "--direction",
                 "ego2exo", "--num_frames", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trained on Exo2Ego only" in out and "(jump, 0 transition frames, 1 steps, ego2exo)" in out
    assert read_video(tmp_path / "exo.mp4").shape == (2, 16, 16, 3)  # the generated target is the exo view here


def test_demo_longer_than_the_window_slides_as_generate_does(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    model = _tiny_trained_folder(root, None)  # default settings: video+pose, 4 transition frames; 4 frames -> 12 > 8
    assert main(["demo", "--model", str(model), "--output_dir", str(tmp_path), "--steps", "1", "--num_frames", "4",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert ("4 source + 8 generated model frames exceed the model's window of 8: sampled with a sliding window "
            "(2 windows, each keeping 4 frames of history") in out
    assert read_video(tmp_path / "ego.mp4").shape == (4, 16, 16, 3)
    # generate follows the same rule and says the same
    clip = render_synthetic_clip(2_000_000, num_frames=4, resolution=16, num_transition_frames=4)
    write_video(tmp_path / "exo4.mp4", clip["exo"], fps=10, lossless=True)
    (tmp_path / "poses4.json").write_text(json.dumps({"exo_poses": clip["exo_poses"].tolist(),
                                                      "ego_poses": clip["ego_poses"].tolist()}))
    assert main(["generate", "--exo", str(tmp_path / "exo4.mp4"), "--poses", str(tmp_path / "poses4.json"), "--out",
                 str(tmp_path / "gen.mp4"), "--model", str(model), "--steps", "1", "--quiet"]) == 0
    assert "4 source + 8 generated model frames exceed the model's window of 8" in capsys.readouterr().out
    assert read_video(tmp_path / "gen.mp4").shape == (4, 16, 16, 3)


def test_demo_errors(tiny_inputs, tmp_path, capsys):
    root, _ = tiny_inputs
    model = _tiny_trained_folder(root, None)
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


@pytest.mark.parametrize("name", ["ego.png", "ego.GIF", "ego"])
def test_generate_refuses_an_output_name_of_another_format(tiny_inputs, tmp_path, capsys, name):
    root, _ = tiny_inputs
    assert _generate(root, root / "poses.json", tmp_path / name) == 2
    assert (f"--out: expected a video file name ending in .mp4, .m4v, .mov (an MP4 video is written), got "
            f"'{tmp_path / name}'") in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


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
    for flag in ("--model", "--data", "--direction", "--baselines", "--ci", "--output", "--device", "--dtype",
                 "--num_samples", "--layout_block", "--no_exo_dependence"):
        assert flag in out
    for text in ("layout PSNR", "mean-of-N PSNR", "exo-dependence", "(i+1) mod n"):
        assert text in " ".join(out.split())
    assert main(["evaluate", "--data", str(tmp_path / "no-dataset"), "--baselines"]) == 2
    assert "no-dataset" in capsys.readouterr().err


def test_evaluate_rejects_bad_sample_counts_and_blocks(tiny_inputs, eval_dataset, capsys):
    root, _ = tiny_inputs
    base = ["evaluate", "--data", str(eval_dataset), "--split", "test", "--model", str(root / "model")]
    assert main(base + ["--num_samples", "0"]) == 2
    assert "--num_samples: expected an integer >= 1 (1 disables mean-of-N), got 0" in capsys.readouterr().err
    assert main(base + ["--layout_block", "0"]) == 2
    assert "--layout_block: expected a block side >= 1 pixel, got 0" in capsys.readouterr().err


# ------------------------------------------------------------------------- evaluate: layout, mean-of-N, exo-dependence
@pytest.fixture(scope="module")
def eval_dataset(tmp_path_factory):
    """3 test takes (and 2 training takes for the mean-frame baseline) at 16x16: 3 exo + 2 transition + 3 ego frames."""
    from script_loading import load_script

    root = tmp_path_factory.mktemp("eval_data") / "synth"
    load_script("training/make_synthetic_dataset.py").main([
        "--output", str(root), "--num_train", "2", "--num_validation", "0", "--num_test", "3", "--num_frames", "3",
        "--resolution", "16", "--transition_frames", "2", "--lossless"])
    return root


def _evaluate_json(tmp_path, name, *argv):
    out = tmp_path / f"{name}.json"
    assert main(["evaluate", "--split", "test", "--steps", "2", "--seed", "5", "--quiet", "--output", str(out),
                 *map(str, argv)]) == 0
    return json.loads(out.read_text())


def test_evaluate_prints_and_writes_the_new_scores(eval_dataset, tmp_path, capsys):
    from diffusers_syn2seq.evaluation import (
        generate_scene,
        load_eval_scenes,
        load_pipeline,
        sample_seed,
        with_source_of,
    )
    from diffusers_syn2seq.metrics import layout_psnr, mean_ci, psnr

    model = tmp_path / "model"
    _random_pipeline(camera_ray_type="plucker").save_pretrained(model)
    report = _evaluate_json(tmp_path, "full", "--model", model, "--data", eval_dataset, "--num_samples", 2,
                            "--baselines")
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("row: "))
    for text in ("PSNR ", "SSIM ", "layout PSNR ", "mean-of-2 PSNR ", "exo-dependence ", "over 3 scenes",
                 "(layout blocks 2 px)"):  # default block: 16 // 8
        assert text in row
    assert "baseline copy_source: PSNR" in out and "layout PSNR" in out.split("baseline copy_source:")[1]
    assert "mean-of-N and exo-dependence do not apply" in out
    assert (report["num_samples"], report["layout_block"], report["exo_dependence"]) == (2, None, True)
    result = report["per_seed"][0]
    assert (result["num_samples"], result["layout_block"]) == (2, 2)
    for key in ("psnr", "ssim", "layout_psnr", "mean_of_n_psnr", "exo_dependence"):
        assert len(result[key]) == 3 and report["summary"][key] == mean_ci(result[key])
    assert result["exo_donor_ids"] == result["scene_ids"][1:] + result["scene_ids"][:1]  # scene i <- scene i + 1
    for name, baseline in report["baselines"].items():
        assert len(baseline["summary"]["layout_psnr_per_scene"]) == 3
        for metric in ("psnr", "ssim", "layout_psnr"):  # paired per-scene difference row - baseline
            per_scene = np.subtract(report["summary"][f"{metric}_per_scene"],
                                    baseline["summary"][f"{metric}_per_scene"])
            assert report["row_minus_baseline"][name][metric] == mean_ci(per_scene)
        assert f"row - {name} (paired): PSNR " in out
        assert "mean_of_n_psnr" not in baseline["summary"] and "exo_dependence" not in baseline["summary"]
        assert baseline["not_applicable"] == ["mean_of_n_psnr", "exo_dependence"]

    # every number recomputed by hand from the generations: scene 0 samples with seed 5
    pipe, _ = load_pipeline(str(model))
    pipe.set_progress_bar_config(disable=True)
    scenes = load_eval_scenes(eval_dataset, "test")
    # sample k of the mean-of-N comes from its own generator (one batched call, `num_videos_per_prompt`)
    first, truth = generate_scene(pipe, scenes[0], steps=2, generator=torch.Generator().manual_seed(5))
    second, _ = generate_scene(pipe, scenes[0], steps=2, generator=torch.Generator().manual_seed(sample_seed(5, 1)))
    swapped, _ = generate_scene(pipe, with_source_of(scenes[0], scenes[1]), steps=2, seed=5)
    assert result["psnr"][0] == np.mean(psnr(first, truth).tolist())
    assert result["layout_psnr"][0] == np.mean(layout_psnr(first, truth, 2).tolist())
    assert result["mean_of_n_psnr"][0] == np.mean(psnr((first.double() + second.double()) / 2, truth).tolist())
    assert result["exo_dependence"][0] == np.mean((psnr(first, truth) - psnr(swapped, truth)).tolist())
    assert result["exo_dependence"][0] != 0.0  # this random model does read its source

    # --num_samples 1 --no_exo_dependence: the single-sample scores do not move, the other two are not computed
    cheap = _evaluate_json(tmp_path, "cheap", "--model", model, "--data", eval_dataset, "--num_samples", 1,
                           "--no_exo_dependence", "--layout_block", 4)["per_seed"][0]
    assert cheap["psnr"] == result["psnr"] and cheap["per_frame_psnr"] == result["per_frame_psnr"]
    assert "mean_of_n_psnr" not in cheap and "exo_dependence" not in cheap and cheap["layout_block"] == 4
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("row: "))
    assert "layout PSNR" in row and "mean-of" not in row and "exo-dependence" not in row


def _random_pipeline(blind: bool = False, camera_ray_type: str | None = None):
    """A tiny real pipeline whose zero-initialised parts (AdaLN-Zero modulations, output projection: an untrained model
    predicts 0 whatever its input) get random weights. `blind`: every attention output projection is zero, so no token
    sees another and each target frame depends only on its own noise and noise level, never on the source clip
    (without pose conditioning: the target rays are relative to the first source camera)."""
    from diffusers_syn2seq.models import DFoTTransformer3DModel
    from diffusers_syn2seq.pipelines import Syn2SeqPipeline
    from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

    torch.manual_seed(0)
    transformer = DFoTTransformer3DModel(in_channels=3, sample_size=16, max_frames=8, patch_size=4, num_layers=2,
                                         num_attention_heads=1, attention_head_dim=16, noise_embedding_dim=16,
                                         camera_ray_type=camera_ray_type)
    with torch.no_grad():
        for norm in [transformer.norm_out] + [n for b in transformer.transformer_blocks for n in (b.norm1, b.norm2)]:
            norm.linear.weight.normal_(0, 0.2)
        transformer.proj_out.weight.normal_(0, 0.2)
        if blind:
            for block in transformer.transformer_blocks:
                block.attn.to_out[0].weight.zero_()
    return Syn2SeqPipeline(transformer=transformer, scheduler=DiffusionForcingScheduler())


@pytest.mark.parametrize("blind", [True, False])
def test_exo_dependence_is_exactly_zero_for_a_pipeline_that_ignores_its_source(eval_dataset, blind):
    from diffusers_syn2seq.evaluation import evaluate_pipeline, load_eval_scenes

    scenes = load_eval_scenes(eval_dataset, "test")
    assert not np.array_equal(scenes[0]["exo"], scenes[1]["exo"])  # the swapped source really is another clip
    result = evaluate_pipeline(_random_pipeline(blind), scenes, mode="video", steps=2, seed=3,
                               progress=False, num_samples=2, exo_dependence=True)
    if blind:
        assert result["exo_dependence"] == [0.0, 0.0, 0.0]
    else:  # the same model with its attention: the source changes the output
        assert all(value != 0.0 for value in result["exo_dependence"])
    assert all(np.isfinite(result[key]).all() for key in ("psnr", "layout_psnr", "mean_of_n_psnr"))
    assert result["mean_of_n_psnr"] != result["psnr"]  # not a constant output: the two samples differ


def test_picture_labels_keep_their_spaces():
    from diffusers_syn2seq.evaluation import label_font

    font = label_font()
    assert font.getlength("ego generated") - font.getlength("egogenerated") >= 3  # a visible space, in pixels


def test_history_guidance_flags(tiny_inputs, eval_dataset, tmp_path, capsys):
    root, _ = tiny_inputs
    model = tmp_path / "model"
    _random_pipeline(camera_ray_type="plucker").save_pretrained(model)
    plain = _evaluate_json(tmp_path, "plain", "--model", model, "--data", eval_dataset, "--num_samples", 1,
                           "--no_exo_dependence")
    guided = _evaluate_json(tmp_path, "guided", "--model", model, "--data", eval_dataset, "--num_samples", 1,
                            "--no_exo_dependence", "--history_guidance", "vanilla", "--guidance_scale", 3)
    assert (plain["sampling"], guided["sampling"]) == ({}, {"history_guidance": "vanilla", "guidance_scale": 3.0})
    assert guided["per_seed"][0]["psnr"] != plain["per_seed"][0]["psnr"]  # the guidance reaches the pipeline
    for extra, message in ((["--guidance_scale", "2"], "--guidance_scale: 2.0 needs --history_guidance"),
                           (["--history_guidance", "vanilla", "--guidance_scale", "0.5"],
                            "--guidance_scale: expected a finite number >= 1, got 0.5"),
                           (["--history_guidance", "vanilla", "--guidance_scale", "nan"],
                            "--guidance_scale: expected a finite number >= 1, got nan")):
        assert _generate(root, root / "poses.json", tmp_path / "x.mp4", *extra) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_evaluate_ego2exo_baselines_need_one_reversal(eval_dataset, tmp_path, capsys):
    """Models with different Ego2Exo sequence orders may stand for different target frames: no shared baselines."""
    folders = []
    for reversal in ("full", "segments"):
        pipe = _random_pipeline()
        pipe.register_to_config(reversal=reversal)
        pipe.save_pretrained(tmp_path / reversal)
        folders.append(tmp_path / reversal)
    assert main(["evaluate", "--data", str(eval_dataset), "--split", "test", "--num_scenes", "2", "--steps", "1",
                 "--quiet", "--baselines", "--direction", "ego2exo", "--model", str(folders[0]),
                 "--model", str(folders[1])]) == 2
    assert ("--baselines with --direction ego2exo: the --model folders have different `reversal` settings (full, "
            "segments)") in capsys.readouterr().err
