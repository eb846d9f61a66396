# SPDX-License-Identifier: Apache-2.0
"""Smooth random single-camera trajectories inside a SynthEgoExo room: the continuous-camera pretraining corpus.

A video model pretrains on clips whose camera moves continuously (RealEstate10K for DFoT). These trajectories give
SynthEgoExo such clips: one camera, no cut, known pose at every frame, moving the way the Syn2Seq transition has to
move. A clip's camera blends from one *anchor* to another with a smoothstep between two random instants (or stays on
one anchor). The anchors:

- `exo`: a static tripod-like camera high near a corner, looking at the actor's area (narrow lens);
- `head`: the actor's head camera (the scene's ego camera, wide lens), which walks and turns with the actor;
- `walker`: a camera at head height walking a straight line across the room, looking along its way;
- `pan`: a static camera turning its yaw (a pan) and possibly its pitch;
- `close`: a camera circling the actor at 0.6-1.2 m, looking at the actor's head (passes close to the actor).

Blending `exo` and `head` gives the height changes between a tripod view and a head view that Syn2Seq's transition
makes; blends are slow enough that adjacent frames stay within `MAX_FRAME_TRANSLATION` metres and
`MAX_FRAME_ROTATION_DEG` degrees (the tests check it). Scene time runs forward from a random start. A trajectory is a
pure function of the scene and a seed; it draws from its own random stream, so the scene itself is unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# The scene is a `synthetic.SynthEgoExo` (which imports this module: it is typed `Any` here so that imports point one
# way); what is read of it: `room_half`, `room_height`, `path_centre`, `ego_focal`, `fps`, `seed`, `actor_state`.
SynthEgoExo = Any

__all__ = ["ANCHOR_KINDS", "MAX_FRAME_ROTATION_DEG", "MAX_FRAME_TRANSLATION", "continuous_camera_path"]

ANCHOR_KINDS = ("exo", "head", "walker", "pan", "close")
# (from, to) anchor pairs of a clip and their weights: a third of the clips stay on one anchor, the rest blend two;
# exo <-> head (the Syn2Seq transition's own move) is the most frequent blend.
_CLIP_KINDS: tuple[tuple[str, str, float], ...] = (
    ("head", "head", 0.10), ("walker", "walker", 0.07), ("pan", "pan", 0.07), ("close", "close", 0.06),
    ("exo", "exo", 0.03),
    ("exo", "head", 0.16), ("head", "exo", 0.10), ("exo", "close", 0.07), ("close", "head", 0.06),
    ("walker", "head", 0.05), ("pan", "head", 0.05), ("exo", "walker", 0.05), ("head", "close", 0.04),
    ("walker", "exo", 0.03), ("pan", "exo", 0.03), ("close", "exo", 0.03),
)
# Bounds of the camera motion between adjacent frames (at any fps: blends are timed in frames).
MAX_FRAME_TRANSLATION = 1.6  # metres
MAX_FRAME_ROTATION_DEG = 60.0
_BLEND_METRES_PER_FRAME = 1.0  # the smoothstep peaks at 1.5x its mean speed: 1.5 m per frame at most
_BLEND_DEG_PER_FRAME = 35.0
_MARGIN = 0.25  # metres between a camera and a wall, floor or ceiling


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def forward_from_angles(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Unit viewing directions (..., 3) of yaw / pitch angles in radians (z up, no roll)."""
    return np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], axis=-1)


def _slerp(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Per-row spherical interpolation of unit vectors `a`, `b` (T, 3) at fractions `s` (T,)."""
    cos = np.clip((a * b).sum(-1), -1.0, 1.0)
    angle = np.arccos(cos)[:, None]
    sin = np.sin(angle)
    s = s[:, None]
    # Nearly parallel rows: the linear blend is exact to first order and avoids 0 / 0.
    small = sin < 1e-6
    wa = np.where(small, 1 - s, np.sin((1 - s) * angle) / np.where(small, 1.0, sin))
    wb = np.where(small, s, np.sin(s * angle) / np.where(small, 1.0, sin))
    return _unit(wa * a + wb * b)


def _anchor(kind: str, scene: SynthEgoExo, times: np.ndarray, rng: np.random.Generator):
    """Camera centres (T, 3), unit forward vectors (T, 3) and focal lengths / width of one anchor at `times`."""
    n = len(times)
    half, height = scene.room_half, scene.room_height
    if kind == "exo":
        corner = np.array([rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0])])
        xy = corner * (half - rng.uniform(0.25, 0.6, size=2))
        position = np.array([*xy, rng.uniform(2.0, height - 0.3)])
        target = np.array([*(scene.path_centre + rng.uniform(-0.5, 0.5, size=2)), rng.uniform(0.5, 1.0)])
        forward = _unit(target - position)
        return np.broadcast_to(position, (n, 3)), np.broadcast_to(forward, (n, 3)), float(rng.uniform(0.8, 1.05))
    if kind == "head":
        state = scene.actor_state(times)
        return state["eye"], forward_from_angles(state["head_yaw"], state["head_pitch"]), scene.ego_focal
    if kind == "walker":
        start = rng.uniform(-half + 0.8, half - 0.8)
        heading = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0.6, 1.5)  # m/s
        direction = np.array([math.cos(heading), math.sin(heading)])
        xy = start + (times - times[0])[:, None] * speed * direction
        z = rng.uniform(1.45, 1.8) + 0.02 * np.sin(rng.uniform(9.0, 12.0) * times)  # head bob
        yaw = heading + np.deg2rad(rng.uniform(-25, 25)) * np.sin(rng.uniform(0.8, 2.0) * times)
        pitch = np.full(n, np.deg2rad(rng.uniform(-20, 0)))
        return np.concatenate([xy, z[:, None]], axis=-1), forward_from_angles(yaw, pitch), float(rng.uniform(0.42, 0.7))
    if kind == "pan":
        position = np.array([*rng.uniform(-half + 0.6, half - 0.6), rng.uniform(1.45, height - 0.3)])
        yaw_rate = np.deg2rad(rng.uniform(20, 60)) * rng.choice([-1.0, 1.0])  # degrees per second
        yaw = rng.uniform(0, 2 * math.pi) + yaw_rate * (times - times[0])
        pitch = np.deg2rad(rng.uniform(-30, 0)) + np.deg2rad(rng.uniform(-8, 8)) * (times - times[0])
        return np.broadcast_to(position, (n, 3)), forward_from_angles(yaw, pitch), float(rng.uniform(0.42, 1.0))
    if kind == "close":
        state = scene.actor_state(times)
        radius = rng.uniform(0.6, 1.2)
        angle = rng.uniform(0, 2 * math.pi) + rng.uniform(-1.0, 1.0) * (times - times[0])  # circles at <= 1 rad/s
        offset = radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
        z = np.full((n, 1), rng.uniform(1.45, 2.2))
        position = np.concatenate([state["position"] + offset, z], axis=-1)
        return position, _unit(state["head_centre"] - position), float(rng.uniform(0.42, 0.8))
    raise ValueError(f"anchor kind must be one of {ANCHOR_KINDS}, got {kind!r}")


def continuous_camera_path(
    scene: SynthEgoExo, num_frames: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """One smooth random single-camera trajectory of `num_frames` frames in `scene`.

    Returns camera centres (T, 3), unit forward vectors (T, 3), focal lengths / width (T,), scene times (T,) in
    seconds (consecutive frames `1 / scene.fps` apart, from a random start) and the clip's kind (`"from->to"`).
    Deterministic in (`scene.seed`, `seed`).
    """
    rng = np.random.default_rng(np.random.SeedSequence([0xC0A7, scene.seed, int(seed)]))
    times = rng.uniform(0.0, 20.0) + np.arange(num_frames, dtype=np.float64) / scene.fps
    weights = np.array([w for _, _, w in _CLIP_KINDS])
    start_kind, end_kind, _ = _CLIP_KINDS[int(rng.choice(len(_CLIP_KINDS), p=weights / weights.sum()))]
    pos_a, fwd_a, focal_a = _anchor(start_kind, scene, times, rng)
    if start_kind == end_kind:
        positions, forwards, focals = pos_a, fwd_a, np.full(num_frames, focal_a)
    else:
        pos_b, fwd_b, focal_b = _anchor(end_kind, scene, times, rng)
        # Blend over enough frames that the camera moves at most ~1.5 m and ~50 degrees per frame, starting and ending
        # at random frames (a hold on either anchor before or after the move).
        distance = float(np.linalg.norm(pos_a - pos_b, axis=-1).max())
        turn = float(np.degrees(np.arccos(np.clip((fwd_a * fwd_b).sum(-1), -1, 1))).max())
        needed = max(distance / _BLEND_METRES_PER_FRAME, turn / _BLEND_DEG_PER_FRAME, 3.0)
        span = min(max(needed, rng.uniform(3.0, num_frames - 1.0)), num_frames - 1.0)
        start = rng.uniform(0.0, num_frames - 1.0 - span)
        u = np.clip((np.arange(num_frames) - start) / span, 0.0, 1.0)
        s = u * u * (3 - 2 * u)  # smoothstep: zero speed at both ends of the move
        positions = (1 - s)[:, None] * pos_a + s[:, None] * pos_b
        forwards = _slerp(np.asarray(fwd_a), np.asarray(fwd_b), s)
        focals = (1 - s) * focal_a + s * focal_b
    lo = np.array([-scene.room_half[0], -scene.room_half[1], 0.0]) + _MARGIN
    hi = np.array([scene.room_half[0], scene.room_half[1], scene.room_height]) - _MARGIN
    positions = np.clip(positions, lo, hi)
    return positions, forwards, focals, times, f"{start_kind}->{end_kind}"
