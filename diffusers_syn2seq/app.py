# SPDX-License-Identifier: Apache-2.0
"""The interactive demo (`syn2seq app`, and the repository's `app.py` as a Hugging Face Space): a Gradio page.

Pick a held-out SynthEgoExo scene (rendered as `syn2seq demo` does) or upload an exo clip with its poses file
(`data.poses_file`), choose mode, direction, steps, history guidance and seed, and see exo | generated | true side by
side as videos and as an enlarged frame strip, with the PSNR when the truth is known. The work is done by `showcase`;
this module only turns widget values into its arguments (`scene_request`, `upload_request`, checked like the command
line's flags) and its results into files the page shows (`present`). `build_app` needs Gradio (`pip install
diffusers-syn2seq[app]`); everything else runs without it, so the logic is tested without a browser.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .cli_support import BAD_INPUT_ERRORS
from .data.choices import DIRECTIONS, MODES

MAX_STEPS = 100
DEFAULT_STEPS = 25
HISTORY_GUIDANCE = ("vanilla", "fractional")
VIDEO_FPS = 8.0
Progress = Callable[[float, str], None]  # (fraction done, description)


def check_app_settings(steps, guidance_scale, history_guidance, seed, mode, direction) -> dict:
    """The sampling settings of one request, checked (errors name the widget, the expected and the received value);
    returns the pipeline arguments of history guidance (none at scale 1)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, float)) or steps != int(steps) or not \
            1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps: expected an integer in [1, {MAX_STEPS}], got {steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, float)) or seed != int(seed) or not 0 <= seed < 2**63:
        raise ValueError(f"seed: expected an integer in [0, 2**63), got {seed!r}")
    if not isinstance(guidance_scale, (int, float)) or not (math.isfinite(guidance_scale) and guidance_scale >= 1):
        raise ValueError(f"guidance scale: expected a finite number >= 1 (1 disables history guidance), got "
                         f"{guidance_scale!r}")
    if history_guidance not in HISTORY_GUIDANCE:
        raise ValueError(f"history guidance: expected one of {list(HISTORY_GUIDANCE)}, got {history_guidance!r}")
    if mode not in (*MODES, "model default"):
        raise ValueError(f"mode: expected one of {['model default', *MODES]}, got {mode!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {list(DIRECTIONS)}, got {direction!r}")
    if guidance_scale == 1:
        return {}
    return {"history_guidance": history_guidance, "guidance_scale": float(guidance_scale)}


def _progress_callback(progress: Progress | None) -> dict:
    """The pipeline argument that reports each denoising iteration to `progress` (nothing without one)."""
    if progress is None:
        return {}

    def report(pipe, i, t, callback_kwargs):
        progress((i + 1) / max(1, pipe.num_timesteps), "denoising")
        return callback_kwargs

    return {"callback_on_step_end": report}


def scene_request(pipe, folder, scene, mode, direction, steps, guidance_scale, history_guidance, seed,
                  progress: Progress | None = None):
    """`(showcase, notes)` of held-out test scene `scene`: rendered in the style the model was trained on, as long as
    one window holds (`showcase.demo_num_frames`), generated and scored against its truth."""
    from .bundled import trained_scene_style
    from .evaluation import pixel_frame_size
    from .showcase import demo_num_frames, held_out_scene, pipeline_note, showcase_scene, syn2seq_settings

    sampling = check_app_settings(steps, guidance_scale, history_guidance, seed, mode, direction)
    if isinstance(scene, float) and scene == int(scene):
        scene = int(scene)  # number widgets send floats
    mode, num_transition = syn2seq_settings(pipe, None if mode == "model default" else mode)
    num_frames = demo_num_frames(None, pipe.transformer.config.max_frames, num_transition,
                                 pipe.vae_scale_factor_temporal)
    style = trained_scene_style(folder) or "textured"
    clip, seed_of_scene = held_out_scene(scene, num_frames, pixel_frame_size(pipe), num_transition, style,
                                         name="scene")
    shown = showcase_scene(pipe, clip, mode, direction, num_transition, int(steps), int(seed),
                           {**sampling, **_progress_callback(progress)})
    notes = pipeline_note(pipe, folder, direction) + [
        f"Held-out SynthEgoExo test scene {scene} (seed {seed_of_scene}, {style}), {mode}, {num_transition} "
        f"transition frames, {int(steps)} steps, {direction}."]
    return shown, notes


def upload_request(pipe, folder, exo_path, poses_path, mode, direction, steps, guidance_scale, history_guidance,
                   seed, progress: Progress | None = None):
    """`(showcase, notes)` of a user's exo clip and poses file (Exo2Ego only; there is no truth to score)."""
    from .data.poses_file import load_poses_file
    from .showcase import read_source_clip, showcase_upload, syn2seq_settings, window_note

    sampling = check_app_settings(steps, guidance_scale, history_guidance, seed, mode, direction)
    if direction != "exo2ego":
        raise ValueError(f"direction: an uploaded clip is an exo clip, expected 'exo2ego', got {direction!r}")
    if not exo_path:
        raise ValueError("exo clip: expected a video file, got nothing (upload an MP4)")
    if not poses_path:
        raise ValueError("poses file: expected a .json, .npz, .npy or .csv file, got nothing")
    exo = read_source_clip(exo_path, "exo clip")
    exo_poses, ego_poses = load_poses_file(poses_path, num_exo_frames=len(exo))
    mode, num_transition = syn2seq_settings(pipe, None if mode == "model default" else mode)
    t = pipe.vae_scale_factor_temporal
    note = window_note(pipe.transformer.config.max_frames, 1 + (len(exo) - 1) // t,
                       num_transition // t + len(ego_poses) // t)
    shown = showcase_upload(pipe, exo, exo_poses, ego_poses, mode, num_transition, int(steps), int(seed),
                            {**sampling, **_progress_callback(progress)})
    notes = [f"Your clip: {len(exo)} exo frames -> {len(ego_poses)} ego frames, {mode}, {num_transition} transition "
             f"frames, {int(steps)} steps; no true ego clip, so no PSNR."] + ([note] if note else [])
    return shown, notes


def present(shown, notes: list[str], out_dir: str | os.PathLike) -> tuple[str, str, str | None, str, str]:
    """Write what the page shows into `out_dir`: the three clips as browser-playable MP4s enlarged like the pictures
    (H.264 4:2:0), the side-by-side strip PNG; returns `(source, generated, truth or None, strip, markdown)`."""
    from .data.video_io import write_video
    from .showcase import display_scale, enlarge, write_pictures

    out_dir = Path(out_dir)
    scale = display_scale(shown.source.shape[1])
    paths = []
    for name, clip in (("source", shown.source), ("generated", shown.generated), ("truth", shown.truth)):
        if clip is None:
            paths.append(None)
            continue
        path = out_dir / f"{name}.mp4"
        write_video(path, enlarge(clip, scale), fps=VIDEO_FPS, chroma="420")
        paths.append(str(path))
    write_pictures(shown, out_dir / "side_by_side.png")
    lines = list(notes)
    if shown.psnr is not None:
        lines.insert(0, f"**PSNR of the generated {shown.target_view} frames: {shown.psnr:.2f} dB** (trivial "
                        f"baseline, copy the {shown.source_view} frame next to the transition: "
                        f"{shown.baseline_psnr:.2f} dB)")
    return (*paths, str(out_dir / "side_by_side.png"), "\n\n".join(lines))


def build_app(model: str | os.PathLike | None = None, device: str = "cpu", dtype: str = "fp32",
              example_steps: int = 0):
    """The Gradio page (`gradio.Blocks`) over the pipeline folder `model` (None: the bundled model), loaded once.
    With `example_steps` > 0 the page opens showing held-out scene 0 generated with that many steps (computed once,
    here), so a visitor sees what the model does before choosing anything. API names for `gradio_client`:
    `/generate_scene` and `/generate_upload`."""
    try:
        import gradio as gr
    except ImportError:
        raise ImportError("the app needs Gradio: pip install 'diffusers-syn2seq[app]'") from None
    from .data import SPLIT_SEED_RANGES
    from .evaluation import load_pipeline

    pipe, folder = load_pipeline(model, device, dtype)
    pipe.set_progress_bar_config(disable=True)
    first, last = SPLIT_SEED_RANGES["test"]
    shown = [None] * 5  # what the result widgets show when the page opens
    if example_steps:
        shown = list(present(*scene_request(pipe, folder, 0, "model default", "exo2ego", example_steps, 1.0,
                                            "fractional", 0), tempfile.mkdtemp(prefix="syn2seq-app-")))
        shown[-1] = f"Example (held-out scene 0, {example_steps} steps). " + shown[-1]

    def run(request, *values, progress=None):
        try:
            shown, notes = request(pipe, folder, *values, progress=progress)
            return present(shown, notes, tempfile.mkdtemp(prefix="syn2seq-app-"))
        except BAD_INPUT_ERRORS as error:  # shown on the page as a message, like the CLI's one-line errors
            raise gr.Error(user_message(error, values)) from None

    def generate_scene(scene, mode, direction, steps, guidance, history, seed, progress=gr.Progress()):
        return run(scene_request, scene, mode, direction, steps, guidance, history, seed,
                   progress=lambda f, d: progress(f, desc=d))

    def generate_upload(exo, poses, mode, direction, steps, guidance, history, seed, progress=gr.Progress()):
        return run(upload_request, exo, poses, mode, direction, steps, guidance, history, seed,
                   progress=lambda f, d: progress(f, desc=d))

    with gr.Blocks(title="Syn2Seq-Forcing: exo -> ego video", analytics_enabled=False) as page:
        gr.Markdown(f"# Syn2Seq-Forcing: exo -> ego video\nModel: `{Path(folder).name}` ({pipe.config.mode}, "
                    f"{pipe.config.num_transition_frames} transition frames, {pixel_frame_size_text(pipe)}). "
                    "Generate the egocentric clip of an exocentric clip and its camera poses.")
        with gr.Row():
            mode = gr.Dropdown(["model default", *MODES], value="model default", label="mode")
            direction = gr.Radio(list(DIRECTIONS), value="exo2ego", label="direction")
            steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label="denoising steps")
            guidance = gr.Slider(1.0, 4.0, value=1.0, step=0.25, label="history guidance scale (1: off)")
            history = gr.Radio(list(HISTORY_GUIDANCE), value="fractional", label="history guidance")
            seed = gr.Number(0, precision=0, label="seed")
        with gr.Tabs():
            with gr.Tab("Held-out scene"):
                scene = gr.Number(0, precision=0, minimum=0, maximum=last - first - 1,
                                  label=f"held-out SynthEgoExo test scene (0 to {last - first - 1})")
                scene_button = gr.Button("Generate", variant="primary")
            with gr.Tab("Your clip"):
                with gr.Row():
                    exo = gr.File(label="exo clip (MP4)", file_types=["video"])
                    poses = gr.File(label="poses file (.json, .npz, .npy, .csv; see `syn2seq generate --help`)",
                                    file_types=[".json", ".npz", ".npy", ".csv"])
                upload_button = gr.Button("Generate", variant="primary")
        info = gr.Markdown(shown[4], label="result")
        with gr.Row():
            source_video = gr.Video(shown[0], label="input", autoplay=True, loop=True)
            generated_video = gr.Video(shown[1], label="generated", autoplay=True, loop=True)
            truth_video = gr.Video(shown[2], label="true", autoplay=True, loop=True)
        strip = gr.Image(shown[3], label="frames: input | generated | true (enlarged)", type="filepath")
        outputs = [source_video, generated_video, truth_video, strip, info]
        settings = [mode, direction, steps, guidance, history, seed]
        scene_button.click(generate_scene, [scene, *settings], outputs, api_name="generate_scene")
        upload_button.click(generate_upload, [exo, poses, *settings], outputs, api_name="generate_upload")
    return page


def user_message(error: BaseException, values) -> str:
    """One line for the page: the error's text with the server's upload folders cut from the file names the user
    gave (`'bad.json'`, not `'/tmp/gradio/<hash>/bad.json'`)."""
    message = " ".join(str(error).split())
    for value in values:
        if isinstance(value, str) and os.sep in value:
            message = message.replace(value, Path(value).name)
    return message


def pixel_frame_size_text(pipe) -> str:
    """`"32x32 frames"`: the model resolution, for the page header."""
    from .evaluation import pixel_frame_size

    size = pixel_frame_size(pipe)
    return f"{size}x{size} frames"
