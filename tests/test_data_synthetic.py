# SPDX-License-Identifier: Apache-2.0
"""SynthEgoExo renderer: determinism, geometry (projection vs ray casting), transition path ends, splits, styles."""

import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from script_loading import load_script

from diffusers_syn2seq import camera
from diffusers_syn2seq.data import RenderTransition, load_metadata, read_video, render_synthetic_clip
from diffusers_syn2seq.data.synthetic import (
    SCENE_STYLES,
    SPLIT_SEED_RANGES,
    SynthEgoExo,
    camera_rays,
    seeds_for_split,
    split_of_seed,
)


def project(poses: np.ndarray, points: np.ndarray, height: int, width: int):
    """Independent pinhole projection of world points (T, M, 3) with (T, 16) poses -> pixel coords, depth."""
    fx, fy, px, py = (poses[:, i, None] for i in range(4))
    rt = poses[:, 4:].reshape(-1, 3, 4)
    cam = np.einsum("tij,tmj->tmi", rt[:, :, :3], points) + rt[:, None, :, 3]
    u = fx * width * cam[..., 0] / cam[..., 2] + px * width
    v = fy * height * cam[..., 1] / cam[..., 2] + py * height
    return u, v, cam[..., 2]


def test_public_api_shapes_and_determinism():
    a = render_synthetic_clip(3, num_frames=6, resolution=32, num_transition_frames=4)
    b = render_synthetic_clip(3, num_frames=6, resolution=32, num_transition_frames=4)
    c = render_synthetic_clip(4, num_frames=6, resolution=32, num_transition_frames=4)
    for name, frames in (("exo", 6), ("transition", 4), ("ego", 6)):
        assert a[name].shape == (frames, 32, 32, 3) and a[name].dtype == np.uint8
        assert a[f"{name}_poses"].shape == (frames, 16) and a[f"{name}_poses"].dtype == np.float64
        np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_array_equal(a[f"{name}_poses"], b[f"{name}_poses"])
    assert not np.array_equal(a["exo"], c["exo"])
    # the scene moves (balls, actor) and the ego camera moves with the head
    assert not np.array_equal(a["exo"][0], a["exo"][-1])
    assert not np.allclose(a["ego_poses"][0], a["ego_poses"][-1])
    np.testing.assert_array_equal(a["exo_poses"][0], a["exo_poses"][-1])  # static exo camera
    # the ego lens is wider (smaller normalised focal length)
    assert a["ego_poses"][0, 0] < a["exo_poses"][0, 0]


def test_rays_match_camera_module():
    clip = render_synthetic_clip(1, num_frames=3, resolution=(12, 20), num_transition_frames=0)
    poses = np.concatenate([clip["exo_poses"], clip["ego_poses"]])
    origins, dirs = camera_rays(poses, 12, 20)
    ref_o, ref_d = camera.camera_rays(torch.from_numpy(poses), 12, 20)
    np.testing.assert_allclose(dirs.reshape(-1, 12, 20, 3), ref_d.numpy(), atol=1e-12)
    np.testing.assert_allclose(origins, ref_o[:, 0, 0].numpy(), atol=1e-12)
    # non-square images keep square pixels: fy (normalised by H) = fx (normalised by W) * W / H
    np.testing.assert_allclose(poses[:, 1], poses[:, 0] * 20 / 12)
    rot = poses[:, 4:].reshape(-1, 3, 4)[:, :, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 7])
def test_hit_points_project_onto_their_pixels(seed):
    """Every surface point the ray caster reports for a pixel projects (with our pose) into that pixel."""
    height, width = 40, 56
    scene = SynthEgoExo(seed)
    times = scene.frame_times(4)
    poses = np.concatenate([scene.exo_poses(4, (height, width)), scene.ego_poses(times, (height, width))])
    _, buffers = scene.render(poses, np.concatenate([times, times]), (height, width), return_buffers=True)
    points = buffers["points"].reshape(len(poses), -1, 3).astype(np.float64)
    u, v, z = project(poses, points, height, width)
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    assert (z > 0).all()
    np.testing.assert_allclose(u, np.broadcast_to(cols.reshape(1, -1), u.shape), atol=1e-2)
    np.testing.assert_allclose(v, np.broadcast_to(rows.reshape(1, -1), v.shape), atol=1e-2)
    np.testing.assert_allclose(buffers["depth"].reshape(z.shape), z, rtol=1e-4)


def test_object_centres_land_where_the_renderer_draws_them():
    """Scene objects (static spheres, balls, the actor's head) projected with our exo and ego poses land on
    the pixel where the renderer draws them: within 1 px of the centroid of their drawn silhouette."""
    size = 96
    checked = {"exo": 0, "ego": 0}
    for seed in range(6):
        scene = SynthEgoExo(seed)
        times = scene.frame_times(6)
        ids = scene.object_ids()
        for view, poses in (("exo", scene.exo_poses(6, size)), ("ego", scene.ego_poses(times, size))):
            _, buffers = scene.render(poses, times, size, return_buffers=True)
            centres, radii = scene.sphere_state(times)
            u, v, z = project(poses, centres, size, size)
            for t in range(len(times)):
                for s in range(centres.shape[1]):
                    object_id = 6 + s
                    mask = buffers["object_id"][t] == object_id
                    if object_id in ids["head"] and view == "ego":
                        assert not mask.any(), "the ego camera must not see the inside of its own head"
                        continue
                    # fully visible, away from the border and large enough for a meaningful centroid
                    if mask.sum() < 12 or mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
                        continue
                    rows, cols = np.nonzero(mask)
                    # the silhouette of a sphere is symmetric about its projected centre only if unoccluded:
                    # require the ideal disc (radius from the projection) to be mostly drawn.
                    focal = poses[t, 0] * size
                    expected_area = np.pi * (focal * radii[s] / z[t, s]) ** 2
                    if mask.sum() < 0.9 * expected_area:
                        continue
                    row_c, col_c = rows.mean() + 0.5, cols.mean() + 0.5
                    # perspective shifts a sphere's image centre by about r^2/z^2 of its offset: well below 1 px here
                    assert abs(col_c - u[t, s]) < 1.0 and abs(row_c - v[t, s]) < 1.0, (seed, view, t, s)
                    assert buffers["object_id"][t, int(v[t, s]), int(u[t, s])] == object_id
                    checked[view] += 1
    assert checked["exo"] >= 10 and checked["ego"] >= 3, checked


def test_transition_path_ends_reproduce_neighbouring_frames():
    n = 5
    scene = SynthEgoExo(11)
    clip = scene.clip(num_frames=6, resolution=48, num_transition_frames=n)
    start, end = clip["exo_poses"][-1], clip["ego_poses"][0]
    # interior transition poses are the camera module's interpolated path, scene time runs last exo -> first ego
    expected = camera.interpolate_camera_path(torch.from_numpy(start), torch.from_numpy(end), n).numpy()
    np.testing.assert_allclose(clip["transition_poses"], expected, atol=1e-12)
    ts = np.arange(1, n + 1) / (n + 1)
    np.testing.assert_allclose(
        clip["transition_times"], clip["exo_times"][-1] + ts * (clip["ego_times"][0] - clip["exo_times"][-1])
    )
    # the path evaluated at its two ends
    poses, times = scene.transition_path(start, end, clip["exo_times"][-1], clip["ego_times"][0], np.array([0.0, 1.0]))
    np.testing.assert_allclose(poses[0], start, atol=1e-12)
    np.testing.assert_allclose(poses[1], end, atol=1e-12)
    assert times[0] == clip["exo_times"][-1] and times[1] == clip["ego_times"][0]
    frames = scene.render(poses, times, 48)
    np.testing.assert_array_equal(frames[0], clip["exo"][-1])
    np.testing.assert_array_equal(frames[1], clip["ego"][0])
    # and the interior frames are neither end frame
    assert not np.array_equal(clip["transition"][n // 2], clip["exo"][-1])
    assert not np.array_equal(clip["transition"][n // 2], clip["ego"][0])


def test_splits_are_disjoint_seed_ranges():
    assert split_of_seed(0) == "train"
    assert split_of_seed(SPLIT_SEED_RANGES["validation"][0]) == "validation"
    assert split_of_seed(SPLIT_SEED_RANGES["test"][0] + 5) == "test"
    sets = {name: set(seeds_for_split(name, 50)) for name in SPLIT_SEED_RANGES}
    assert not (sets["train"] & sets["validation"]) and not (sets["train"] & sets["test"])
    with pytest.raises(ValueError, match="outside every split"):
        split_of_seed(-1)
    with pytest.raises(ValueError, match="`split` must be one of"):
        seeds_for_split("dev", 3)


def test_bad_arguments_raise_clear_errors():
    scene = SynthEgoExo(0)
    with pytest.raises(ValueError, match=r"poses must have shape \(T, 16\)"):
        scene.render(np.zeros((2, 12)), np.zeros(2))
    with pytest.raises(ValueError, match="times must have shape"):
        scene.render(scene.exo_poses(2), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        scene.render(scene.exo_poses(1) * np.nan, np.zeros(1))
    with pytest.raises(ValueError, match="`num_frames` must be a positive integer, got 0"):
        render_synthetic_clip(0, num_frames=0)
    with pytest.raises(ValueError, match="resolution"):
        render_synthetic_clip(0, resolution=(1, 2, 3))


def test_figure_script_writes_a_png(tmp_path):

    from PIL import Image

    module = load_script("scripts/plot_synthetic_sample.py")
    out = tmp_path / "sample.png"
    assert (
        module.main(
            [
                "--seed",
                "1",
                "--num-frames",
                "4",
                "--transition-frames",
                "3",
                "--resolution",
                "16",
                "--every",
                "1",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    image = Image.open(out)
    assert image.mode == "RGB" and image.width > 4 * 32 and image.height > 3 * 32


# --------------------------------------------------------------------------------------------------- scene styles
# sha256 of the exo + transition + ego frames of `render_synthetic_clip(5, 3, 16, 2, style=...)`. The textured digest
# was taken before styles existed: the default output must never change (cached datasets compare frames bit for bit).
PINNED_FRAMES_SHA256 = {
    "textured": "65ac26a2479ccaa065d9ee99d991b8c8617cea1b2ac2937ae3d5a9bde7971eed",
    "flat": "683fd8d549150fc8139332ffcbb74863c952383897aef502209d514121101828",
    "flat_uniform": "ca3a592286f277ad8639e3c96d9b18369c876adb56e697c160514a8c60f60990",
}


def _frames_digest(clip: dict) -> str:
    return hashlib.sha256(np.concatenate([clip["exo"], clip["transition"], clip["ego"]]).tobytes()).hexdigest()


@pytest.mark.parametrize("style", SCENE_STYLES)
def test_styles_are_pinned_and_deterministic_by_seed(style):
    clip = render_synthetic_clip(5, num_frames=3, resolution=16, num_transition_frames=2, style=style)
    assert clip["style"] == style and SynthEgoExo(5, style=style).style == style
    assert _frames_digest(clip) == PINNED_FRAMES_SHA256[style]
    a = render_synthetic_clip(3, num_frames=4, resolution=24, num_transition_frames=2, style=style)
    b = render_synthetic_clip(3, num_frames=4, resolution=24, num_transition_frames=2, style=style)
    for name in ("exo", "transition", "ego"):
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["exo"], render_synthetic_clip(4, 4, 24, 2, style=style)["exo"])
    if style == "textured":  # the default
        assert _frames_digest(render_synthetic_clip(5, num_frames=3, resolution=16, num_transition_frames=2)) == (
            PINNED_FRAMES_SHA256["textured"]
        )


@pytest.mark.parametrize("seed", [0, 7])
def test_flat_and_textured_share_geometry_and_differ_only_in_colour(seed):
    flat, textured = SynthEgoExo(seed, style="flat"), SynthEgoExo(seed, style="textured")
    assert flat.object_ids() == textured.object_ids()
    clips = {s.style: s.clip(num_frames=4, resolution=32, num_transition_frames=2) for s in (flat, textured)}
    for key in ("exo_poses", "transition_poses", "ego_poses", "exo_times", "transition_times", "ego_times"):
        np.testing.assert_array_equal(clips["flat"][key], clips["textured"][key])
    times = flat.frame_times(4)
    poses = np.concatenate([flat.exo_poses(4, 32), flat.ego_poses(times, 32)])
    both_times = np.concatenate([times, times])
    rendered = {s.style: s.render(poses, both_times, 32, return_buffers=True) for s in (flat, textured)}
    (flat_rgb, flat_buf), (tex_rgb, tex_buf) = rendered["flat"], rendered["textured"]
    for key in ("object_id", "points", "depth"):
        np.testing.assert_array_equal(flat_buf[key], tex_buf[key])
    # the ceiling and the actor are drawn alike; textured surfaces change colour
    ids = flat.object_ids()
    same = np.isin(flat_buf["object_id"], [1, *ids["head"], *ids["body"]])
    assert same.any() and np.array_equal(flat_rgb[same], tex_rgb[same])
    assert (flat_rgb[~same] != tex_rgb[~same]).any(axis=-1).mean() > 0.2


@pytest.mark.parametrize("seed", [0, 7])
def test_flat_uniform_is_flat_with_every_wall_in_the_first_walls_colour(seed):
    from diffusers_syn2seq.data.synthetic_render import ID_WALL_XNEG, ID_WALL_YPOS

    flat, uniform = SynthEgoExo(seed, style="flat"), SynthEgoExo(seed, style="flat_uniform")
    times = flat.frame_times(4)
    poses = np.concatenate([flat.exo_poses(4, 32), flat.ego_poses(times, 32)])
    both_times = np.concatenate([times, times])
    (flat_rgb, flat_buf), (uni_rgb, uni_buf) = (s.render(poses, both_times, 32, return_buffers=True)
                                                for s in (flat, uniform))
    for key in ("object_id", "points", "depth"):  # same geometry
        np.testing.assert_array_equal(flat_buf[key], uni_buf[key])
    ids = flat_buf["object_id"]
    other_walls = (ids > ID_WALL_XNEG) & (ids <= ID_WALL_YPOS)
    assert other_walls.any()
    # everything but walls 1-3 is drawn exactly as in the flat style (wall 0 keeps its own colour)
    np.testing.assert_array_equal(flat_rgb[~other_walls], uni_rgb[~other_walls])
    assert (flat_rgb[other_walls] != uni_rgb[other_walls]).any(axis=-1).mean() > 0.5
    # walls 1-3 get wall 0's albedo: same shading, so where wall 0 is lit like them, the same hue
    wall0 = uniform.wall_colours[0][0]
    for wall in range(ID_WALL_XNEG, ID_WALL_YPOS + 1):
        pixels = uni_rgb[ids == wall].astype(np.float64)
        if len(pixels):  # shading scales the albedo: the colour direction is wall 0's
            direction = pixels.mean(0) / np.linalg.norm(pixels.mean(0))
            assert np.allclose(direction, wall0 / np.linalg.norm(wall0), atol=0.03), (wall, direction)


def _within_surface_roughness(frames: np.ndarray, object_id: np.ndarray) -> float:
    """Mean absolute difference (grey levels) of horizontally adjacent pixels showing the same object."""
    same = object_id[:, :, 1:] == object_id[:, :, :-1]
    diff = np.abs(frames[:, :, 1:].astype(np.float64) - frames[:, :, :-1].astype(np.float64)).mean(-1)
    return float(diff[same].mean())


def test_flat_style_has_much_less_high_frequency_energy_at_32px():
    """At 32x32 the textures alias into high-frequency patterns; the flat style is smooth within each surface
    (only lighting and soft shadows vary there). Measured: textured 6.6-14 grey levels, flat 0.1-0.7."""
    for seed in range(4):
        roughness = {}
        for style in SCENE_STYLES:
            scene = SynthEgoExo(seed, style=style)
            times = scene.frame_times(4)
            poses = np.concatenate([scene.exo_poses(4, 32), scene.ego_poses(times, 32)])
            frames, buffers = scene.render(poses, np.concatenate([times, times]), 32, return_buffers=True)
            roughness[style] = _within_surface_roughness(frames, buffers["object_id"])
        for flat_style in ("flat", "flat_uniform"):
            assert roughness[flat_style] < 2.0 and roughness[flat_style] < 0.2 * roughness["textured"], (seed,
                                                                                                         roughness)


def test_bad_style_raises_a_clear_error():
    message = r"`style` must be one of \('textured', 'flat', 'flat_uniform'\), got 'smooth'"
    with pytest.raises(ValueError, match=message):
        SynthEgoExo(0, style="smooth")
    with pytest.raises(ValueError, match=message):
        render_synthetic_clip(0, num_frames=2, resolution=8, style="smooth")


def test_render_transition_uses_the_take_style():
    clip = render_synthetic_clip(6, num_frames=3, resolution=16, num_transition_frames=3, style="flat")
    frames = RenderTransition()(clip["exo"][-1], clip["ego"][0], 3, sample=clip)
    np.testing.assert_array_equal(frames, clip["transition"])
    # a sample without a style (a take written before styles existed) is textured
    textured = render_synthetic_clip(6, num_frames=3, resolution=16, num_transition_frames=3)
    without = {k: v for k, v in clip.items() if k != "style"}
    np.testing.assert_array_equal(RenderTransition()(clip["exo"][-1], clip["ego"][0], 3, sample=without),
                                  textured["transition"])


def test_dataset_script_records_the_style(tmp_path):
    make = load_script("training/make_synthetic_dataset.py")
    root = tmp_path / "ds"
    args = ["--output", str(root), "--num-train", "2", "--num-validation", "0", "--num-test", "1", "--num-frames", "3",
            "--resolution", "16", "--transition-frames", "2", "--lossless"]
    assert make.main(args + ["--style", "flat"]) == 0
    table = load_metadata(root)
    assert table["style"] == ["flat"] * 3
    for row in table:
        assert json.loads((root / "clips" / row["take_id"] / "meta.json").read_text())["style"] == "flat"
        clip = render_synthetic_clip(row["seed"], 3, 16, 2, style="flat")
        for name in ("exo", "ego", "transition"):
            np.testing.assert_array_equal(read_video(root / row[f"{name}_video"]), clip[name])
    # --resume keeps takes of the same style only
    assert make.main(args + ["--style", "textured", "--resume"]) == 0
    table = load_metadata(root)
    assert table["style"] == ["textured"] * 3
    np.testing.assert_array_equal(read_video(root / table[0]["exo_video"]),
                                  render_synthetic_clip(table[0]["seed"], 3, 16, 2)["exo"])
    with pytest.raises(SystemExit):
        make.main(args + ["--style", "smooth"])


def test_tables_written_before_styles_existed_still_load(tmp_path):
    """A table without the `style` column (and its features) reads with a null style."""
    make = load_script("training/make_synthetic_dataset.py")
    make.main(["--output", str(tmp_path), "--num-train", "1", "--num-validation", "0", "--num-test", "0",
               "--num-frames", "2", "--resolution", "8", "--transition-frames", "0"])
    path = tmp_path / "metadata.parquet"
    table = pq.read_table(path).drop_columns(["style"])
    info = json.loads(table.schema.metadata[b"huggingface"])
    del info["info"]["features"]["style"]
    pq.write_table(table.replace_schema_metadata({b"huggingface": json.dumps(info).encode()}), path)
    loaded = load_metadata(tmp_path)
    assert loaded["style"] == [None] and loaded["seed"] == [0]


def test_a_scene_has_everything_the_renderer_reads():
    """The renderer states what it reads of a scene (`synthetic_render.Scene`, so that it never imports the scene
    module back); every field and method of that protocol exists on a real scene, with the annotated kind."""
    from diffusers_syn2seq.data.synthetic import SynthEgoExo
    from diffusers_syn2seq.data.synthetic_render import Ball, Scene

    scene = SynthEgoExo(3)
    for protocol, instances in ((Scene, [scene]), (Ball, scene.balls)):
        for name, kind in protocol.__annotations__.items():
            for instance in instances:
                value = getattr(instance, name)
                expected = {"np.ndarray": np.ndarray, "float": float, "int": int, "str": str}.get(kind)
                assert expected is None or isinstance(value, expected), (name, type(value))
    assert len(scene.balls) > 0  # seed 3 has balls, so the Ball fields were checked
    for method in ("actor_state", "ball_state", "sphere_state"):
        assert callable(getattr(scene, method))
