# SPDX-License-Identifier: Apache-2.0
"""The interactive demo: its logic without a browser (requests, progress, what the page shows), then the Gradio page
launched on localhost and driven with `gradio_client` (a generation round trip, a bad upload's message)."""

import json
import os
import socket

import numpy as np
import pytest
from PIL import Image

from diffusers_syn2seq.app import check_app_settings, present, scene_request, upload_request, user_message
from diffusers_syn2seq.data import render_synthetic_clip
from diffusers_syn2seq.data.video_io import read_video, write_video
from diffusers_syn2seq.evaluation import load_pipeline

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine


@pytest.fixture(scope="module")
def bundled():
    pipe, folder = load_pipeline(None)
    pipe.set_progress_bar_config(disable=True)
    return pipe, folder


@pytest.fixture(scope="module")
def upload(tmp_path_factory):
    """An exo clip of a held-out scene at 32x32 and its poses file: 4 exo poses, 3 wanted ego poses."""
    root = tmp_path_factory.mktemp("upload")
    clip = render_synthetic_clip(2_000_001, num_frames=4, resolution=32, num_transition_frames=4, style="flat_uniform")
    write_video(root / "exo.mp4", clip["exo"], fps=8, lossless=True)
    (root / "poses.json").write_text(json.dumps({"exo_poses": clip["exo_poses"].tolist(),
                                                 "ego_poses": clip["ego_poses"][:3].tolist()}))
    (root / "short.json").write_text(json.dumps({"exo_poses": clip["exo_poses"][:2].tolist(),
                                                 "ego_poses": clip["ego_poses"].tolist()}))
    (root / "not_a_video.mp4").write_bytes(b"no video here" * 20)
    return root


@pytest.mark.parametrize("values, message", [
    ((0, 1.0, "fractional", 0, "model default", "exo2ego"), "steps: expected an integer in [1, 100], got 0"),
    ((2.5, 1.0, "fractional", 0, "model default", "exo2ego"), "steps: expected an integer in [1, 100], got 2.5"),
    ((2, 0.5, "fractional", 0, "model default", "exo2ego"), "guidance scale: expected a finite number >= 1"),
    ((2, 2.0, "temporal", 0, "model default", "exo2ego"), "history guidance: expected one of ['vanilla', "
                                                          "'fractional'], got 'temporal'"),
    ((2, 1.0, "fractional", -1, "model default", "exo2ego"), "seed: expected an integer in [0, 2**63), got -1"),
    ((2, 1.0, "fractional", 0, "teleport", "exo2ego"), "mode: expected one of ['model default', 'jump', 'video', "
                                                       "'video+pose'], got 'teleport'"),
    ((2, 1.0, "fractional", 0, "jump", "up"), "direction: expected one of ['exo2ego', 'ego2exo'], got 'up'"),
])
def test_settings_are_checked_with_the_widget_name(values, message):
    with pytest.raises(ValueError) as error:
        check_app_settings(*values)
    assert message in str(error.value)


def test_guidance_is_off_at_scale_one_and_on_above():
    assert check_app_settings(2, 1.0, "fractional", 0, "jump", "exo2ego") == {}
    assert check_app_settings(2, 1.5, "vanilla", 0, "jump", "exo2ego") == {"history_guidance": "vanilla",
                                                                           "guidance_scale": 1.5}


def test_scene_request_reports_progress_and_scores_the_truth(bundled, tmp_path):
    pipe, folder = bundled
    reported = []
    shown, notes = scene_request(pipe, folder, 3.0, "model default", "exo2ego", 3, 1.0, "fractional", 0,
                                 progress=lambda fraction, desc: reported.append((fraction, desc)))
    assert [f for f, _ in reported] == sorted(f for f, _ in reported) and reported[-1] == (1.0, "denoising")
    assert len(reported) == pipe.num_timesteps >= 3
    assert shown.generated.shape == shown.truth.shape == (4, 32, 32, 3)
    assert shown.psnr is not None and shown.baseline_psnr is not None and np.isfinite(shown.psnr)
    assert "Held-out SynthEgoExo test scene 3 (seed 2000003, flat_uniform)" in notes[-1]
    source, generated, truth, strip, text = present(shown, notes, tmp_path)
    for path in (source, generated, truth):  # enlarged 4x so the browser shows 128-px frames; 4:2:0 H.264 plays
        assert read_video(path).shape == (4, 128, 128, 3)
    assert Image.open(strip).size[1] == 3 * 128 + 2 * 4
    assert text.startswith(f"**PSNR of the generated ego frames: {shown.psnr:.2f} dB**")
    # the same scene, seed and steps give the same frames (what a user re-running a request expects)
    again, _ = scene_request(pipe, folder, 3, "model default", "exo2ego", 3, 1.0, "fractional", 0)
    np.testing.assert_array_equal(again.generated, shown.generated)


def test_scene_request_warns_for_a_direction_the_model_never_saw(bundled):
    pipe, folder = bundled
    shown, notes = scene_request(pipe, folder, 0, "jump", "ego2exo", 1, 1.0, "fractional", 0)
    assert "trained on Exo2Ego only" in notes[0] and "jump, 0 transition frames, 1 steps, ego2exo" in notes[-1]
    assert (shown.source_view, shown.target_view) == ("ego", "exo")
    with pytest.raises(ValueError, match=r"scene: expected the index of a held-out test scene in \[0, "):
        scene_request(pipe, folder, -1, "model default", "exo2ego", 1, 1.0, "fractional", 0)


def test_upload_request_generates_one_frame_per_ego_pose(bundled, upload, tmp_path):
    pipe, folder = bundled
    shown, notes = upload_request(pipe, folder, str(upload / "exo.mp4"), str(upload / "poses.json"),
                                  "model default", "exo2ego", 2, 1.0, "fractional", 0)
    assert shown.generated.shape == (3, 32, 32, 3) and shown.truth is None and shown.psnr is None
    assert "4 exo frames -> 3 ego frames" in notes[0] and "no PSNR" in notes[0]
    source, generated, truth, strip, text = present(shown, notes, tmp_path)
    assert truth is None and read_video(generated).shape == (3, 128, 128, 3)
    assert Image.open(strip).size[1] == 2 * 128 + 4  # input and generated rows only


@pytest.mark.parametrize("exo, poses, direction, message", [
    ("exo.mp4", "short.json", "exo2ego", "expected 4 exo poses"),
    ("not_a_video.mp4", "poses.json", "exo2ego", "exo clip: could not read video"),
    (None, "poses.json", "exo2ego", "exo clip: expected a video file, got nothing"),
    ("exo.mp4", None, "exo2ego", "poses file: expected a .json, .npz, .npy or .csv file, got nothing"),
    ("exo.mp4", "poses.json", "ego2exo", "direction: an uploaded clip is an exo clip, expected 'exo2ego'"),
])
def test_bad_uploads_name_what_is_wrong(bundled, upload, exo, poses, direction, message):
    pipe, folder = bundled
    with pytest.raises(ValueError) as error:
        upload_request(pipe, folder, exo and str(upload / exo), poses and str(upload / poses), "model default",
                       direction, 1, 1.0, "fractional", 0)
    assert message in str(error.value)


def test_user_message_hides_the_server_upload_folder():
    error = ValueError("poses file '/tmp/gradio/abc123/bad.json': expected a JSON object")
    assert user_message(error, ["/tmp/gradio/abc123/bad.json", 3]) == "poses file 'bad.json': expected a JSON object"


@pytest.fixture(scope="module")
def served_app():
    """The page over the bundled model, served on a free localhost port for the module's tests."""
    pytest.importorskip("gradio")
    from gradio_client import Client

    from diffusers_syn2seq.app import build_app

    page = build_app()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        page.close()


def test_app_generation_round_trip_on_localhost(served_app):
    source, generated, truth, strip, text = served_app.predict(
        0, "model default", "exo2ego", 2, 1.0, "fractional", 0, api_name="/generate_scene")
    videos = [read_video(v["video"] if isinstance(v, dict) else v) for v in (source, generated, truth)]
    assert [v.shape for v in videos] == [(4, 128, 128, 3)] * 3
    assert Image.open(strip).size == (150 + 4 * 132, 3 * 128 + 2 * 4)
    assert text.startswith("**PSNR of the generated ego frames: ") and "test scene 0 (seed 2000000" in text


def test_app_bad_upload_shows_a_clear_message(served_app, upload):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as error:
        served_app.predict(handle_file(str(upload / "exo.mp4")), handle_file(str(upload / "short.json")),
                           "model default", "exo2ego", 2, 1.0, "fractional", 0, api_name="/generate_upload")
    assert "poses file 'short.json'" in str(error.value) and "expected 4 exo poses" in str(error.value)
    assert "/tmp/gradio" not in str(error.value)


def test_screenshot_script_writes_a_picture_of_the_page(tmp_path):
    pytest.importorskip("gradio")
    from script_loading import load_script

    script = load_script("scripts/screenshot_app.py")
    with pytest.raises(FileNotFoundError, match="--chromium: expected a Chromium binary"):
        script.find_browser("no-such-browser-binary")
    try:
        script.find_browser(None)
    except FileNotFoundError:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    out = tmp_path / "page.png"
    assert script.main(["--output", str(out), "--steps", "1", "--width", "900", "--height", "900"]) == 0
    picture = np.asarray(Image.open(out).convert("RGB"))
    assert picture.shape == (900, 900, 3)
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 50  # the rendered page, not a blank window


def test_space_entry_point_builds_the_page_with_its_example(monkeypatch):
    gr = pytest.importorskip("gradio")
    from script_loading import load_script

    import diffusers_syn2seq.app as app_module

    monkeypatch.setattr(app_module, "DEFAULT_STEPS", 1)  # the example's steps, kept short here
    space = load_script("app.py", "space_app")
    assert isinstance(space.demo, gr.Blocks)
    shown = [c.value for c in space.demo.blocks.values() if isinstance(c, gr.Markdown)]
    assert any(isinstance(v, str) and v.startswith("Example (held-out scene 0, 1 steps). **PSNR") for v in shown)
