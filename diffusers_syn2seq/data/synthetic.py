# SPDX-License-Identifier: Apache-2.0
"""SynthEgoExo scenes: the scene description and its motion, cameras, seed splits, `render_synthetic_clip`.

Ego-Exo4D cannot be downloaded by tests, so the benchmark renders its own synchronised exo/ego pairs.
A seed fixes a scene: a room (floor, walls, ceiling) with procedural textures, static spheres and boxes,
one or two moving balls (a rolling ball and possibly a bouncing one), and an actor (body cylinder +
head sphere) walking a smooth closed path. Two cameras look at it:

- the **exo** camera: static, elevated near a corner, looking at the actor's area (narrower lens);
- the **ego** camera: in the actor's head, looking along the walking heading with head yaw/pitch
  motion (wider lens). The actor's own head is not drawn from inside (spheres are hit only from
  outside), the body is visible when looking down.

The scene **style** (`SCENE_STYLES`) sets only how surfaces are coloured: `"textured"` (the default, the
procedural textures above), `"flat"` (each room surface and object in one base colour, same lighting,
shading and floor shadows; no posters) or `"flat_uniform"` (flat, and all four walls in one colour, so every
room colour the ego camera sees is visible from the exo camera). At low resolutions (32x32) the textures
alias into patterns a small model cannot place; the flat styles keep only what the geometry shows. Everything
else (room, objects, actor path, cameras, poses, object ids, depth) is the same for a seed in every style.

Conventions (the 16-number pose of `shared/design/dfot.md`):

- world: metres, z up, floor at z = 0; scene time in seconds, frame `i` of a clip is at `i / fps`.
- camera: OpenCV axes (x right, y down, z forward). A pose is `fx, fy, px, py` (focal lengths and
  principal point divided by the image width / height) followed by the row-major world-to-camera
  `[R | T]` (3x4). The ray of pixel column `u`, row `v` has direction
  `R^T [(u + 0.5 - px W) / (fx W), (v + 0.5 - py H) / (fy H), 1]` and origin `-R^T T`; equivalently a
  world point X lands at continuous pixel coordinates `(fx W x/z + px W, fy H y/z + py H)` with
  `(x, y, z) = R X + T`, i.e. in pixel `(floor(.), floor(.))`.
- frames: `uint8` RGB `(T, H, W, 3)` in [0, 255].

Exo and ego clips are synchronised (frame `i` of both is the same instant). The **true transition**
flies the camera from the last exo pose to the first ego pose along the SLERP/lerp path of
`diffusers_syn2seq.camera`, while scene time moves from the last exo instant to the first ego instant
(for a synchronised pair that is backwards, from the end of the clip to its start), so both ends meet
the neighbouring frames exactly.

The ray caster that turns a scene into frames (numpy, real geometry, vectorised over frames and pixels) is
`synthetic_render`; `SynthEgoExo.render` is its entry point. Speed:
`taskset -c 0 python -c "from diffusers_syn2seq.data.synthetic import measure_render_speed as m; print(m(64))"`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..validation import check_choice, check_non_negative_int, check_positive_int, check_positive_number

# The id-buffer layout (used by `object_ids`) and `camera_rays` are the renderer's; the ID_* constants are
# re-exported here, where they have always been importable.
from .synthetic_paths import continuous_camera_path, forward_from_angles
from .synthetic_render import (  # noqa: F401
    ID_CEILING,
    ID_FLOOR,
    ID_WALL_XNEG,
    ID_WALL_XPOS,
    ID_WALL_YNEG,
    ID_WALL_YPOS,
    NUM_ROOM_IDS,
    SCENE_STYLES,
    camera_rays,
    render_frames,
)

Resolution = int | Sequence[int]

__all__ = [
    "CONTINUOUS_CATEGORY",
    "CONTINUOUS_SEED_RANGES",
    "SCENE_STYLES",
    "SPLIT_SEED_RANGES",
    "SynthEgoExo",
    "camera_rays",
    "look_at_pose",
    "measure_render_speed",
    "render_continuous_clip",
    "render_synthetic_clip",
    "seeds_for_split",
    "split_of_seed",
]

# Held-out scenes: a scene is a pure function of its seed, so disjoint seed ranges give disjoint scenes.
SPLIT_SEED_RANGES: dict[str, tuple[int, int]] = {
    "train": (0, 1_000_000),
    "validation": (1_000_000, 1_100_000),
    "test": (2_000_000, 2_100_000),
}
# The `category` of a take that holds one continuous single-camera clip (cut into exo / transition / ego pieces).
CONTINUOUS_CATEGORY = "continuous"
# The continuous-camera pretraining corpus (`render_continuous_clip`) has its own rooms: no room of a pair split, so a
# model pretrained on them has never seen a validation or test room of the pairs.
CONTINUOUS_SEED_RANGES: dict[str, tuple[int, int]] = {
    "train": (3_000_000, 3_900_000),
    "validation": (3_900_000, 3_950_000),
    "test": (3_950_000, 4_000_000),
}


def split_of_seed(seed: int) -> str:
    """Name of the split (`"train"`, `"validation"` or `"test"`) whose seed range holds `seed`."""
    for name, (lo, hi) in SPLIT_SEED_RANGES.items():
        if lo <= seed < hi:
            return name
    ranges = ", ".join(f"{k}: [{lo}, {hi})" for k, (lo, hi) in SPLIT_SEED_RANGES.items())
    raise ValueError(f"seed {seed} is outside every split's seed range ({ranges})")


def seeds_for_split(split: str, num: int, offset: int = 0, continuous: bool = False) -> list[int]:
    """The `num` consecutive seeds of `split`, starting `offset` seeds into its range (of the continuous-camera
    corpus, `CONTINUOUS_SEED_RANGES`, with `continuous=True`)."""
    ranges = CONTINUOUS_SEED_RANGES if continuous else SPLIT_SEED_RANGES
    check_choice("split", split, sorted(ranges))
    lo, hi = ranges[split]
    if num < 0 or offset < 0 or lo + offset + num > hi:
        raise ValueError(f"split {split!r} holds {hi - lo} seeds; offset {offset} + num {num} does not fit")
    return list(range(lo + offset, lo + offset + num))


def _resolution(resolution: Resolution) -> tuple[int, int]:
    if isinstance(resolution, (int, np.integer)):
        height = width = int(resolution)
    else:
        if len(resolution) != 2:
            raise ValueError(f"resolution must be an int or (height, width), got {resolution!r}")
        height, width = (int(r) for r in resolution)
    if height < 1 or width < 1:
        raise ValueError(f"resolution must be positive, got {resolution!r}")
    return height, width


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def look_at_pose(position: np.ndarray, forward: np.ndarray, focal: float, aspect: float = 1.0) -> np.ndarray:
    """Poses of cameras at `position` (..., 3) looking along `forward` (..., 3), no roll (z up).

    `focal` is the focal length divided by the image width, a scalar or one per pose (so `fy = focal * W / H =
    focal * aspect` with `aspect = W / H`, square pixels); principal point at the image centre. Returns float64
    (..., 16) poses (see the module docstring).
    """
    position = np.asarray(position, dtype=np.float64)
    f = _normalise(np.asarray(forward, dtype=np.float64))
    up = np.array([0.0, 0.0, 1.0])
    r = _normalise(np.cross(f, up))
    d = np.cross(f, r)  # camera y axis (down), so that right x down = forward
    rot = np.stack([r, d, f], axis=-2)  # world-to-camera rotation: rows are the camera axes in world
    trans = -np.einsum("...ij,...j->...i", rot, position)
    extrinsics = np.concatenate([rot, trans[..., None]], axis=-1).reshape(*rot.shape[:-2], 12)
    focal = np.asarray(focal, dtype=np.float64)  # a scalar, or one focal length per pose
    intr = np.stack(np.broadcast_arrays(focal, focal * aspect, 0.5, 0.5), axis=-1)
    intr = np.broadcast_to(intr, (*rot.shape[:-2], 4))
    return np.concatenate([intr, extrinsics], axis=-1)


@dataclass(frozen=True)
class _Ball:
    kind: str  # "roll" (ping-pong along a floor segment) or "bounce" (vertical hops in place)
    start: np.ndarray  # (3,) start of the roll segment, or the bounce spot (z = radius)
    direction: np.ndarray  # (3,) unit roll direction (horizontal)
    length: float  # roll segment length (m)
    speed: float  # m/s (roll) or rad/s of the bounce phase
    phase: float
    height: float  # bounce height (m)
    radius: float
    colours: np.ndarray  # (2, 3)


class SynthEgoExo:
    """One procedural scene, fixed by `seed` (deterministic, numpy only).

    Args:
        seed: scene seed; `split_of_seed(seed)` gives its split.
        fps: frames per second of the clips (scene time of frame `i` is `i / fps` seconds).
        style: surface style, one of `SCENE_STYLES`: `"textured"` (procedural textures, the default),
            `"flat"` (one base colour per surface) or `"flat_uniform"` (flat, one colour for all four walls); the
            geometry, motion and cameras do not depend on it.

    Main methods: `exo_poses`, `ego_poses` (cameras), `render` (any poses, any times), `clip` (the
    exo / transition / ego triplet). See the module docstring for units and conventions.
    """

    def __init__(self, seed: int, fps: float = 10.0, style: str = "textured"):
        check_choice("style", style, SCENE_STYLES)
        self.seed = int(seed)
        self.fps = check_positive_number("fps", fps)
        self.style = style  # read by the renderer only; draws nothing from the scene's random stream
        rng = np.random.default_rng(np.random.SeedSequence([0x5EED, self.seed]))
        self._build_room(rng)
        self._build_actor(rng)
        self._build_objects(rng)
        self._build_cameras(rng)

    # ----------------------------------------------------------------------------------------- scene
    def _build_room(self, rng: np.random.Generator) -> None:
        self.room_half = np.array([rng.uniform(3.5, 5.0), rng.uniform(3.0, 4.2)])
        self.room_height = float(rng.uniform(2.8, 3.4))
        self.room_lo = np.array([-self.room_half[0], -self.room_half[1], 0.0])
        self.room_hi = np.array([self.room_half[0], self.room_half[1], self.room_height])
        base = rng.uniform(0.25, 0.75, size=3)
        self.floor_colours = np.stack([base, np.clip(base * rng.uniform(0.45, 0.7), 0, 1)])
        self.floor_tile = float(rng.uniform(0.4, 0.8))
        self.ceiling_colour = rng.uniform(0.75, 0.95, size=3)
        # Per wall (x-, x+, y-, y+): pattern kind (0 horizontal stripes, 1 vertical stripes, 2 checker),
        # two colours, pattern scale, and one poster rectangle (centre along the wall, centre z, half sizes).
        self.wall_kind = rng.integers(0, 3, size=4)
        self.wall_colours = rng.uniform(0.15, 0.95, size=(4, 2, 3))
        self.wall_scale = rng.uniform(0.35, 0.9, size=4)
        self.poster_centre = np.stack([rng.uniform(-0.6, 0.6, size=4), rng.uniform(1.0, 1.9, size=4)], axis=-1)
        self.poster_half = rng.uniform(0.3, 0.7, size=(4, 2))
        self.poster_colour = rng.uniform(0.0, 1.0, size=(4, 3))
        self.light_dir = _normalise(np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0]))

    def _build_actor(self, rng: np.random.Generator) -> None:
        # Closed star-shaped path: p = c + (a r(th) cos th, b r(th) sin th), th = th0 + w t, r > 0, so the
        # velocity never vanishes and the heading is always defined.
        self.path_semi = np.array([0.55 * (self.room_half[0] - 1.3), 0.55 * (self.room_half[1] - 1.3)])
        self.path_centre = rng.uniform(-0.3, 0.3, size=2)
        self.path_wobble = rng.uniform(0.0, 0.12, size=2)
        self.path_wobble_phase = rng.uniform(0, 2 * math.pi, size=2)
        self.path_theta0 = float(rng.uniform(0, 2 * math.pi))
        speed = rng.uniform(0.8, 1.3)  # m/s, approximately
        self.path_omega = float(rng.choice([-1.0, 1.0]) * speed / self.path_semi.mean())
        self.body_radius = float(rng.uniform(0.15, 0.2))
        self.body_height = float(rng.uniform(1.35, 1.55))
        self.leg_height = 0.5 * self.body_height
        self.head_radius = float(rng.uniform(0.12, 0.14))
        self.shirt_colour = rng.uniform(0.1, 0.95, size=3)
        self.trouser_colour = rng.uniform(0.05, 0.5, size=3)
        self.skin_colour = np.array([0.85, 0.65, 0.5]) * rng.uniform(0.6, 1.1)
        self.hair_colour = rng.uniform(0.0, 0.3, size=3)
        self.head_yaw_amp = float(np.deg2rad(rng.uniform(10, 35)))
        self.head_yaw_freq = float(rng.uniform(0.8, 2.0))
        self.head_yaw_phase = float(rng.uniform(0, 2 * math.pi))
        self.head_pitch_mean = float(np.deg2rad(rng.uniform(-18, -3)))
        self.head_pitch_amp = float(np.deg2rad(rng.uniform(3, 12)))
        self.head_pitch_freq = float(rng.uniform(0.6, 1.6))
        self.head_pitch_phase = float(rng.uniform(0, 2 * math.pi))
        self.step_freq = float(rng.uniform(9.0, 12.0))  # rad/s of the head bob

    def _actor_zone_distance(self, xy: np.ndarray) -> np.ndarray:
        """> 1 outside the ellipse that contains the whole actor path (plus the body radius)."""
        reach = self.path_semi * (1 + self.path_wobble.sum()) + 0.45
        return np.sqrt((((xy - self.path_centre) / reach) ** 2).sum(-1))

    def _sample_floor_spot(self, rng: np.random.Generator, footprint: float, taken: list) -> np.ndarray:
        for _ in range(200):
            xy = rng.uniform(-self.room_half + footprint + 0.1, self.room_half - footprint - 0.1)
            if self._actor_zone_distance(xy) < 1.0 + footprint / self.path_semi.min():
                continue
            if all(np.linalg.norm(xy - q) > footprint + r + 0.15 for q, r in taken):
                taken.append((xy, footprint))
                return xy
        raise RuntimeError(f"scene seed {self.seed}: could not place an object")  # never seen in practice

    def _build_objects(self, rng: np.random.Generator) -> None:
        taken: list = []
        num_spheres = int(rng.integers(1, 4))
        radii = rng.uniform(0.2, 0.5, size=num_spheres)
        self.sphere_centres = np.stack([np.append(self._sample_floor_spot(rng, r, taken), r) for r in radii]).reshape(
            num_spheres, 3
        )
        self.sphere_radii = radii
        self.sphere_colours = rng.uniform(0.1, 1.0, size=(num_spheres, 2, 3))
        self.sphere_bands = rng.uniform(2.0, 4.0, size=num_spheres)

        num_boxes = int(rng.integers(2, 4))
        lo, hi = [], []
        for _ in range(num_boxes):
            half = rng.uniform(0.15, 0.5, size=2)
            xy = self._sample_floor_spot(rng, float(np.linalg.norm(half)), taken)
            lo.append([*(xy - half), 0.0])
            hi.append([*(xy + half), rng.uniform(0.3, 1.4)])
        self.box_lo, self.box_hi = np.array(lo), np.array(hi)
        self.box_colours = rng.uniform(0.1, 1.0, size=(num_boxes, 2, 3))
        self.box_tile = rng.uniform(0.15, 0.35, size=num_boxes)

        # Moving balls inside the actor's area, so the ego camera sees them and they move in the exo view.
        balls = []
        kinds = ["roll"] if rng.uniform() < 0.5 else ["roll", "bounce"]
        for kind in kinds:
            radius = float(rng.uniform(0.12, 0.25))
            colours = rng.uniform(0.1, 1.0, size=(2, 3))
            angle = rng.uniform(0, 2 * math.pi)
            direction = np.array([math.cos(angle), math.sin(angle), 0.0])
            centre = np.append(self.path_centre + rng.uniform(-0.5, 0.5, size=2) * self.path_semi, radius)
            if kind == "roll":
                # The segment is clipped to the room (minus margin) along its direction.
                limit = np.min(
                    (self.room_half - radius - 0.3) / np.maximum(np.abs(direction[:2]), 1e-6)
                    - np.abs(centre[:2]) / np.maximum(np.abs(direction[:2]), 1e-6)
                )
                half_len = float(np.clip(limit, 0.5, 2.5))
                balls.append(
                    _Ball(
                        "roll",
                        centre - half_len * direction,
                        direction,
                        2 * half_len,
                        float(rng.uniform(0.6, 1.5)),
                        float(rng.uniform(0, 2 * half_len)),
                        0.0,
                        radius,
                        colours,
                    )
                )
            else:
                balls.append(
                    _Ball(
                        "bounce",
                        centre,
                        direction,
                        0.0,
                        float(rng.uniform(3.0, 6.0)),
                        float(rng.uniform(0, math.pi)),
                        float(rng.uniform(0.3, 0.8)),
                        radius,
                        colours,
                    )
                )
        self.balls = balls

    def _build_cameras(self, rng: np.random.Generator) -> None:
        corner = np.array([rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0])])
        xy = corner * (self.room_half - rng.uniform(0.25, 0.6, size=2))
        self.exo_position = np.array([*xy, rng.uniform(2.0, self.room_height - 0.3)])
        self.exo_target = np.array([*(self.path_centre + rng.uniform(-0.3, 0.3, size=2)), rng.uniform(0.5, 1.0)])
        self.exo_focal = float(rng.uniform(0.8, 1.05))  # fx / W: about 51-64 degrees horizontal field of view
        self.ego_focal = float(rng.uniform(0.42, 0.55))  # about 85-100 degrees: wider, like a head camera

    # ----------------------------------------------------------------------------------------- motion
    def actor_state(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """Actor at scene `times` (T,) seconds: `position` (T, 2) floor xy, `heading` (T,) radians,
        `head_centre` (T, 3), `head_yaw` (T,) and `head_pitch` (T,) radians (yaw includes the heading),
        `eye` (T, 3): the ego camera centre, inside the head towards the face."""
        t = np.asarray(times, dtype=np.float64)
        th = self.path_theta0 + self.path_omega * t
        w, ph = self.path_wobble, self.path_wobble_phase
        r = 1 + w[0] * np.cos(2 * th + ph[0]) + w[1] * np.sin(3 * th + ph[1])
        dr = -2 * w[0] * np.sin(2 * th + ph[0]) + 3 * w[1] * np.cos(3 * th + ph[1])
        a, b = self.path_semi
        pos = self.path_centre + np.stack([a * r * np.cos(th), b * r * np.sin(th)], axis=-1)
        vel = np.sign(self.path_omega) * np.stack(
            [a * (dr * np.cos(th) - r * np.sin(th)), b * (dr * np.sin(th) + r * np.cos(th))], axis=-1
        )
        heading = np.arctan2(vel[:, 1], vel[:, 0])
        bob = 0.02 * np.sin(self.step_freq * t)
        head_z = self.body_height + self.head_radius + 0.08 + bob  # 8 cm of (invisible) neck
        head = np.concatenate([pos, head_z[:, None]], axis=-1)
        yaw = heading + self.head_yaw_amp * np.sin(self.head_yaw_freq * t + self.head_yaw_phase)
        pitch = self.head_pitch_mean + self.head_pitch_amp * np.sin(self.head_pitch_freq * t + self.head_pitch_phase)
        eye = head + 0.8 * self.head_radius * np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)], axis=-1)
        return {
            "position": pos,
            "heading": heading,
            "head_centre": head,
            "head_yaw": yaw,
            "head_pitch": pitch,
            "eye": eye,
        }

    def ball_state(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Balls at `times` (T,): centres (T, NB, 3), texture rotation axes (T, NB, 3) and angles (T, NB)."""
        t = np.asarray(times, dtype=np.float64)
        centres, axes, angles = [], [], []
        for ball in self.balls:
            if ball.kind == "roll":
                s = np.mod(ball.speed * t + ball.phase, 2 * ball.length)
                along = np.where(s < ball.length, s, 2 * ball.length - s)  # ping-pong along the segment
                centres.append(ball.start + along[:, None] * ball.direction)
                axis = np.cross(np.array([0.0, 0.0, 1.0]), ball.direction)  # rolling without slipping
                axes.append(np.broadcast_to(axis, (len(t), 3)))
                angles.append(along / ball.radius)
            else:
                hop = ball.height * np.abs(np.sin(ball.speed * t + ball.phase))
                centres.append(ball.start + hop[:, None] * np.array([0.0, 0.0, 1.0]))
                axes.append(np.broadcast_to(np.array([0.0, 0.0, 1.0]), (len(t), 3)))
                angles.append(1.5 * t)
        return np.stack(centres, 1), np.stack(axes, 1), np.stack(angles, 1)

    @property
    def num_spheres(self) -> int:
        """Spheres in the id buffer: static spheres, then balls, then the actor's head."""
        return len(self.sphere_radii) + len(self.balls) + 1

    def object_ids(self) -> dict[str, list[int]]:
        """Ids used in the renderer's id buffer, by object kind."""
        ns, nb = len(self.sphere_radii), len(self.balls)
        first_box = NUM_ROOM_IDS + self.num_spheres
        return {
            "room": list(range(NUM_ROOM_IDS)),
            "static_spheres": list(range(NUM_ROOM_IDS, NUM_ROOM_IDS + ns)),
            "balls": list(range(NUM_ROOM_IDS + ns, NUM_ROOM_IDS + ns + nb)),
            "head": [NUM_ROOM_IDS + ns + nb],
            "boxes": list(range(first_box, first_box + len(self.box_lo))),
            "body": [first_box + len(self.box_lo)],
        }

    def sphere_state(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All spheres at `times` (T,): centres (T, S, 3) and radii (S,), in id-buffer order."""
        t = np.asarray(times, dtype=np.float64)
        balls, _, _ = self.ball_state(t)
        head = self.actor_state(t)["head_centre"]
        static = np.broadcast_to(self.sphere_centres, (len(t), *self.sphere_centres.shape))
        centres = np.concatenate([static, balls, head[:, None]], axis=1)
        radii = np.concatenate([self.sphere_radii, [b.radius for b in self.balls], [self.head_radius]])
        return centres, radii

    # ----------------------------------------------------------------------------------------- cameras
    def exo_poses(self, num_frames: int, resolution: Resolution = 64) -> np.ndarray:
        """(num_frames, 16) float64 poses of the static exo camera (identical rows)."""
        height, width = _resolution(resolution)
        pose = look_at_pose(self.exo_position, self.exo_target - self.exo_position, self.exo_focal, width / height)
        return np.repeat(pose[None], num_frames, axis=0)

    def ego_poses(self, times: np.ndarray, resolution: Resolution = 64) -> np.ndarray:
        """(T, 16) float64 poses of the head camera at scene `times` (T,) seconds."""
        height, width = _resolution(resolution)
        state = self.actor_state(times)
        yaw, pitch = state["head_yaw"], state["head_pitch"]
        forward = forward_from_angles(yaw, pitch)
        return look_at_pose(state["eye"], forward, self.ego_focal, width / height)

    def frame_times(self, num_frames: int) -> np.ndarray:
        """Scene times (num_frames,) in seconds of a clip's frames: `i / fps`."""
        return np.arange(num_frames, dtype=np.float64) / self.fps

    # ----------------------------------------------------------------------------------------- render
    def render(
        self,
        poses: np.ndarray,
        times: np.ndarray,
        resolution: Resolution = 64,
        return_buffers: bool = False,
        chunk_size: int = 16,
    ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """Ray-cast the scene from cameras `poses` (T, 16) at scene `times` (T,) seconds.

        Returns uint8 RGB frames (T, H, W, 3) in [0, 255]; with `return_buffers=True` also a dict with
        `object_id` (T, H, W) int32 (see `object_ids`), `points` (T, H, W, 3) float32 world hit points (m)
        and `depth` (T, H, W) float32 camera-space z (m). Intersections are computed in float32.
        """
        height, width = _resolution(resolution)
        return render_frames(self, poses, times, height, width, return_buffers, chunk_size)

    # ----------------------------------------------------------------------------------------- clips
    def transition_path(
        self, start_pose: np.ndarray, end_pose: np.ndarray, start_time: float, end_time: float, ts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Poses (K, 16) and scene times (K,) at path parameters `ts` (K,) in [0, 1] of the camera path
        from `start_pose` to `end_pose` (SLERP rotation, lerp translation and intrinsics, from
        `diffusers_syn2seq.camera.slerp_poses`), scene time lerped from `start_time` to `end_time`."""
        import torch

        from ..camera import slerp_poses

        ts = np.asarray(ts, dtype=np.float64)
        if ts.ndim != 1 or (ts < 0).any() or (ts > 1).any():
            raise ValueError(f"ts must be a 1-D array of values in [0, 1], got {ts!r}")
        a = torch.as_tensor(np.asarray(start_pose, dtype=np.float64))
        b = torch.as_tensor(np.asarray(end_pose, dtype=np.float64))
        poses = slerp_poses(a, b, torch.as_tensor(ts)).numpy().reshape(len(ts), 16)
        times = (1.0 - ts) * start_time + ts * end_time  # exact at both ends
        return poses, times

    def clip(
        self, num_frames: int = 16, resolution: Resolution = 64, num_transition_frames: int = 8
    ) -> dict[str, np.ndarray]:
        """The exo / transition / ego triplet; see `render_synthetic_clip`."""
        num_frames = check_positive_int("num_frames", num_frames)
        num_transition_frames = check_non_negative_int("num_transition_frames", num_transition_frames)
        times = self.frame_times(num_frames)
        exo_poses = self.exo_poses(num_frames, resolution)
        ego_poses = self.ego_poses(times, resolution)
        n = num_transition_frames
        ts = np.arange(1, n + 1, dtype=np.float64) / (n + 1)
        if n:
            tr_poses, tr_times = self.transition_path(exo_poses[-1], ego_poses[0], times[-1], times[0], ts)
        else:
            tr_poses, tr_times = np.zeros((0, 16)), np.zeros((0,))
        all_poses = np.concatenate([exo_poses, tr_poses, ego_poses])
        all_times = np.concatenate([times, tr_times, times])
        frames = self.render(all_poses, all_times, resolution)
        return {
            "exo": frames[:num_frames],
            "transition": frames[num_frames : num_frames + n],
            "ego": frames[num_frames + n :],
            "exo_poses": exo_poses,
            "transition_poses": tr_poses,
            "ego_poses": ego_poses,
            "exo_times": times,
            "transition_times": tr_times,
            "ego_times": times.copy(),
            "fps": self.fps,
            "seed": self.seed,
            "style": self.style,
        }

    def continuous_clip(
        self, num_frames: int = 12, resolution: Resolution = 64, path_seed: int = 0
    ) -> dict[str, np.ndarray]:
        """One single-camera clip along a smooth random trajectory; see `render_continuous_clip`."""
        num_frames = check_positive_int("num_frames", num_frames)
        height, width = _resolution(resolution)
        positions, forwards, focals, times, kind = continuous_camera_path(self, num_frames, path_seed)
        poses = look_at_pose(positions, forwards, focals, width / height)
        return {
            "frames": self.render(poses, times, resolution),
            "poses": poses,
            "times": times,
            "kind": kind,
            "fps": self.fps,
            "seed": self.seed,
            "style": self.style,
        }


def render_synthetic_clip(
    seed: int,
    num_frames: int = 16,
    resolution: Resolution = 64,
    num_transition_frames: int = 8,
    fps: float = 10.0,
    style: str = "textured",
) -> dict[str, np.ndarray]:
    """Render one synchronised exo/ego pair of scene `seed` and its true transition.

    Args:
        seed: scene seed (`split_of_seed(seed)` gives its split).
        num_frames: frames of the exo clip and of the ego clip (synchronised: frame i is time i / fps).
        resolution: `H = W = resolution`, or `(H, W)`.
        num_transition_frames: frames of the fly-through from the last exo camera to the first ego
            camera, at path parameters `(i + 1) / (num_transition_frames + 1)`.
        fps: frame rate of the clips (scene time step `1 / fps` seconds).
        style: surface style, `"textured"` (default), `"flat"` or `"flat_uniform"` (see `SynthEgoExo`); the
            same seed gives the same geometry, poses and times in every style.

    Returns:
        dict with `exo`, `transition`, `ego`: uint8 RGB (T, H, W, 3) in [0, 255]; `exo_poses`,
        `transition_poses`, `ego_poses`: float64 (T, 16) (normalised fx, fy, px, py + row-major
        world-to-camera [R|T], OpenCV axes, metres); `exo_times`, `transition_times`, `ego_times`: scene
        times in seconds; `fps`; `seed`; `style`.
    """
    return SynthEgoExo(seed, fps=fps, style=style).clip(num_frames, resolution, num_transition_frames)


def render_continuous_clip(
    seed: int, num_frames: int = 12, resolution: Resolution = 64, fps: float = 10.0, style: str = "textured"
) -> dict[str, np.ndarray]:
    """Render one continuous single-camera clip of scene `seed`: the pretraining corpus of a video prior.

    The camera follows a smooth random trajectory (`synthetic_paths.continuous_camera_path`: walks, pans and turns,
    moves between a tripod-like exo view and the actor's head view, passes close to the actor), scene time runs
    forward `1 / fps` per frame, and every frame has its pose. Seeds come from `CONTINUOUS_SEED_RANGES` (rooms no
    pair split holds); the trajectory depends only on the seed.

    Returns:
        dict with `frames` uint8 RGB (T, H, W, 3), `poses` float64 (T, 16) (the pose convention of the module
        docstring), `times` (T,) seconds, `kind` (`"from->to"` anchors of the trajectory), `fps`, `seed`, `style`.
    """
    return SynthEgoExo(seed, fps=fps, style=style).continuous_clip(num_frames, resolution, path_seed=seed)


def measure_render_speed(
    resolution: Resolution = 64, num_frames: int = 256, seeds: Sequence[int] = (0, 1, 2, 3)
) -> dict[str, float]:
    """Rendering speed of `SynthEgoExo.render` (half exo, half ego cameras), averaged over `seeds`.

    Returns `{"wall_fps": ..., "cpu_fps": ...}`: frames per second of wall-clock time, and per second of
    CPU time of this process (numpy's elementwise kernels run on one core, so `cpu_fps` is the one-core
    figure even when other processes share the machine).
    """
    frames, wall, cpu = 0, 0.0, 0.0
    for seed in seeds:
        scene = SynthEgoExo(seed)
        half = num_frames // 2
        times = scene.frame_times(half)
        poses = np.concatenate([scene.exo_poses(half, resolution), scene.ego_poses(times, resolution)])
        all_times = np.concatenate([times, times])
        scene.render(poses[:4], all_times[:4], resolution)  # warm-up
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        scene.render(poses, all_times, resolution)
        wall += time.perf_counter() - start_wall
        cpu += time.process_time() - start_cpu
        frames += len(all_times)
    return {"wall_fps": frames / wall, "cpu_fps": frames / cpu}
