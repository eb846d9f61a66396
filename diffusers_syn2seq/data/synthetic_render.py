# SPDX-License-Identifier: Apache-2.0
"""The SynthEgoExo ray caster: camera rays, ray/scene intersection, procedural textures, shading.

`SynthEgoExo` (in `synthetic.py`) describes a scene (room, objects, actor, their motion); this module turns
a scene, camera poses and scene times into frames and the id / hit-point / depth buffers. Pose and frame
conventions are those of the `synthetic` module docstring.

Scene styles (`SCENE_STYLES`, the scene's `style`) change only the albedo of the surfaces, never the
geometry, the lighting or the buffers: `"textured"` draws the procedural textures (checkerboard floor,
striped or checkered walls with a poster, banded spheres, tiled boxes, beach-ball balls); `"flat"` gives
each of these surfaces its base colour (the first of its two texture colours; the floor's lighter tile
colour) and drops the posters; `"flat_uniform"` is `"flat"` with all four walls in the first wall's base
colour, so every room colour the ego camera can see is also visible from the exo camera (the ego view is
then determined by the exo clip up to occluded objects: the easiest setting, for small models). The actor
(shirt / trousers, skin / hair) and the ceiling are drawn the same in every style.

Intersections run in float32 on a structure of arrays (one contiguous (T, N) array per coordinate, T frames
of N pixels): that is what makes numpy ray casting fast enough (see `synthetic.measure_render_speed`). The
exact float32/float64 mix of every expression is part of the output: SynthEgoExo frames are fixed by their
seed, and cached datasets and tests compare them bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "ID_CEILING",
    "ID_FLOOR",
    "ID_WALL_XNEG",
    "ID_WALL_XPOS",
    "ID_WALL_YNEG",
    "ID_WALL_YPOS",
    "NUM_ROOM_IDS",
    "SCENE_STYLES",
    "camera_rays",
    "render_frames",
]

_EPS = 1e-6
# Object ids of the id buffer: room faces first, then spheres (static, balls, head), boxes, body.
ID_FLOOR, ID_CEILING, ID_WALL_XNEG, ID_WALL_XPOS, ID_WALL_YNEG, ID_WALL_YPOS = range(6)
NUM_ROOM_IDS = 6
# Surface styles of a scene (see the module docstring); the first is the default.
SCENE_STYLES = ("textured", "flat", "flat_uniform")


class Ball(Protocol):
    """What the renderer reads of one ball of a scene."""

    radius: float
    colours: np.ndarray  # (2, 3) texture colours in [0, 1]


class Scene(Protocol):
    """What the renderer reads of a scene: `synthetic.SynthEgoExo` satisfies it. Stated here, not imported, so that
    the scene module imports the renderer and never the other way round. Lengths in metres, colours (.., 3) in
    [0, 1], times in seconds."""

    style: str  # one of SCENE_STYLES
    # room: an axis-aligned box, floor at z = 0
    room_half: np.ndarray
    room_lo: np.ndarray
    room_hi: np.ndarray
    floor_colours: np.ndarray
    floor_tile: float
    ceiling_colour: np.ndarray
    wall_kind: np.ndarray
    wall_colours: np.ndarray
    wall_scale: np.ndarray
    poster_centre: np.ndarray
    poster_half: np.ndarray
    poster_colour: np.ndarray
    light_dir: np.ndarray
    # objects: static spheres, then balls (`sphere_state` lists both), boxes
    num_spheres: int
    sphere_radii: np.ndarray
    sphere_colours: np.ndarray
    sphere_bands: np.ndarray
    balls: Sequence[Ball]
    box_lo: np.ndarray
    box_hi: np.ndarray
    box_colours: np.ndarray
    box_tile: np.ndarray
    # actor
    body_radius: float
    body_height: float
    leg_height: float
    shirt_colour: np.ndarray
    trouser_colour: np.ndarray
    skin_colour: np.ndarray
    hair_colour: np.ndarray

    def actor_state(self, times: np.ndarray) -> dict[str, np.ndarray]: ...

    def ball_state(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def sphere_state(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def camera_rays(poses: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel rays of (T, 16) poses: origins (T, 3) and unnormalised directions (T, H*W, 3) whose
    camera-space z component is 1 (so the ray parameter is depth along the optical axis)."""
    poses = np.asarray(poses, dtype=np.float64)
    fx, fy, px, py = (poses[:, i, None] for i in range(4))
    rot = poses[:, 4:].reshape(-1, 3, 4)[:, :, :3]
    trans = poses[:, 4:].reshape(-1, 3, 4)[:, :, 3]
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    u, v = u.reshape(1, -1), v.reshape(1, -1)
    xc = (u + 0.5 - px * width) / (fx * width)
    yc = (v + 0.5 - py * height) / (fy * height)
    # d_world = R^T d_cam, written out so each element is computed identically whatever the batch.
    dirs = np.stack(
        [rot[:, None, 0, k] * xc + rot[:, None, 1, k] * yc + rot[:, None, 2, k] for k in range(3)], axis=-1
    )
    origins = -np.einsum("tji,tj->ti", rot, trans)
    return origins, dirs


def _dot3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _rotate_about_axis(v: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues rotation of vectors v (M, 3) about unit axes (M, 3) by angles (M,)."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return v * c + np.cross(axis, v) * s + axis * _dot3(axis, v)[:, None] * (1 - c)


def render_frames(
    scene: Scene,
    poses: np.ndarray,
    times: np.ndarray,
    height: int,
    width: int,
    return_buffers: bool = False,
    chunk_size: int = 16,
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """`SynthEgoExo.render` at an already parsed `height`, `width` (see there for the outputs)."""
    poses = np.asarray(poses, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 16:
        raise ValueError(f"poses must have shape (T, 16), got {tuple(poses.shape)}")
    if times.shape != (poses.shape[0],):
        raise ValueError(f"times must have shape ({poses.shape[0]},) to match poses, got {tuple(times.shape)}")
    if not np.isfinite(poses).all() or not np.isfinite(times).all():
        raise ValueError("poses and times must be finite (found NaN or inf)")
    # Chunks of frames bound the memory of the (T, N) intermediate arrays.
    frames, ids, points, depth = [], [], [], []
    for start in range(0, len(times), chunk_size):
        rgb, obj, pts, z = _render_chunk(
            scene, poses[start : start + chunk_size], times[start : start + chunk_size], height, width
        )
        frames.append(rgb)
        ids.append(obj)
        points.append(pts)
        depth.append(z)
    shape = (len(times), height, width)
    if not frames:  # no cameras: empty outputs of the right shapes
        frames, ids = [np.zeros((0, 3), np.uint8)], [np.zeros(0, np.int32)]
        points, depth = [np.zeros((0, 3), np.float32)], [np.zeros(0, np.float32)]
    out = np.concatenate(frames).reshape(*shape, 3)
    if not return_buffers:
        return out
    return out, {
        "object_id": np.concatenate(ids).reshape(shape),
        "points": np.concatenate(points).reshape(*shape, 3),
        "depth": np.concatenate(depth).reshape(shape),
    }


def _render_chunk(
    scene: Scene, poses: np.ndarray, times: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frames (T, N, 3) uint8, object ids (T, N) int32, hit points (T, N, 3) float32 and depth (T, N)
    float32 of T cameras at once."""
    rays = _Rays.from_poses(poses, height, width)
    hits = _intersect_room(scene, rays)
    centres, radii = scene.sphere_state(times)  # (T, S, 3), (S,)
    _intersect_spheres(rays, hits, centres, radii)
    first_box = NUM_ROOM_IDS + centres.shape[1]
    _intersect_boxes(scene, rays, hits, first_box)
    feet = scene.actor_state(times)["position"]  # (T, 2)
    body_id = first_box + len(scene.box_lo)
    cap_hit = _intersect_body(scene, rays, hits, feet, body_id)

    # Shading works on the flattened hits (T * N rows), each row knowing its frame.
    num_t, num_px = hits.best.shape
    obj_f = hits.obj.reshape(-1)
    pts_f = np.stack(
        [
            (rays.ox + hits.best * rays.dx).reshape(-1),
            (rays.oy + hits.best * rays.dy).reshape(-1),
            (rays.oz + hits.best * rays.dz).reshape(-1),
        ],
        axis=-1,
    )
    frame_of = np.repeat(np.arange(num_t), num_px)
    normal = np.zeros_like(pts_f)
    albedo = np.zeros_like(pts_f)
    _shade_room(scene, obj_f, pts_f, normal, albedo)
    _shade_spheres(scene, obj_f, pts_f, frame_of, times, centres, radii, normal, albedo)
    _shade_boxes(scene, obj_f, pts_f, normal, albedo, first_box)
    _shade_body(scene, obj_f, pts_f, frame_of, feet, cap_hit.reshape(-1), normal, albedo, body_id)
    shade = _light(scene, normal)
    _darken_floor_shadows(scene, shade, obj_f, pts_f, frame_of, centres, feet)
    rgb = _to_uint8(albedo, shade)
    return rgb.reshape(num_t, num_px, 3), hits.obj, pts_f.reshape(num_t, num_px, 3), hits.best


# --------------------------------------------------------------------------------------------- intersection
@dataclass(frozen=True)
class _Rays:
    """float32 rays of T cameras: origins `ox, oy, oz` (T, 1), directions `dx, dy, dz` (T, N)."""

    ox: np.ndarray
    oy: np.ndarray
    oz: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray

    @classmethod
    def from_poses(cls, poses: np.ndarray, height: int, width: int) -> _Rays:
        origins64, dirs64 = camera_rays(poses, height, width)  # (T, 3), (T, N, 3)
        dx, dy, dz = (np.ascontiguousarray(dirs64[..., k], dtype=np.float32) for k in range(3))
        ox, oy, oz = (origins64[:, k, None].astype(np.float32) for k in range(3))
        return cls(ox, oy, oz, dx, dy, dz)


class _Hits:
    """Nearest hit so far of every ray: ray parameter `best` (T, N) float32 and object id `obj` (T, N) int32."""

    def __init__(self, best: np.ndarray, obj: np.ndarray):
        self.best = best
        self.obj = obj

    def keep(self, t_new: np.ndarray, object_id: int) -> None:
        """Take the hits `t_new` (T, N; inf where missed) that are nearer than the current ones."""
        closer = t_new < self.best
        np.copyto(self.best, t_new, where=closer)
        self.obj[closer] = object_id


def _intersect_room(scene: Scene, rays: _Rays) -> _Hits:
    """The room, seen from inside: every ray hits it, leaving the box through the nearest of its three
    candidate faces. These are the initial hits the objects then compete with."""
    f32, inf = np.float32, np.float32(np.inf)
    ox, oy, oz, dx, dy, dz = rays.ox, rays.oy, rays.oz, rays.dx, rays.dy, rays.dz
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(dx > 0, f32(scene.room_hi[0]) - ox, f32(scene.room_lo[0]) - ox) / dx
        ty = np.where(dy > 0, f32(scene.room_hi[1]) - oy, f32(scene.room_lo[1]) - oy) / dy
        tz = np.where(dz > 0, f32(scene.room_hi[2]) - oz, f32(scene.room_lo[2]) - oz) / dz
    for t_ax in (tx, ty, tz):
        t_ax[~(t_ax > 0)] = inf  # zero direction components give nan or negative infinities
    best = np.minimum(np.minimum(tx, ty), tz)
    # face id: z- floor 0, z+ ceiling 1, x- 2, x+ 3, y- 4, y+ 5
    obj = np.where(
        best == tz, ID_FLOOR + (dz > 0), np.where(best == tx, ID_WALL_XNEG + (dx > 0), ID_WALL_YNEG + (dy > 0))
    )
    return _Hits(best, obj.astype(np.int32))


def _intersect_spheres(rays: _Rays, hits: _Hits, centres: np.ndarray, radii: np.ndarray) -> None:
    """Spheres `centres` (T, S, 3), `radii` (S,) with ids from `NUM_ROOM_IDS`, hit from outside only (a camera
    inside the head does not see the head)."""
    f32, inf, eps = np.float32, np.float32(np.inf), np.float32(_EPS)
    ox, oy, oz, dx, dy, dz = rays.ox, rays.oy, rays.oz, rays.dx, rays.dy, rays.dz
    a = dx * dx + dy * dy + dz * dz
    for s_idx in range(centres.shape[1]):
        cx, cy, cz = (
            (ox - centres[:, s_idx, 0, None]),
            (oy - centres[:, s_idx, 1, None]),
            (oz - centres[:, s_idx, 2, None]),
        )
        c = (cx * cx + cy * cy + cz * cz - radii[s_idx] ** 2).astype(f32)  # (T, 1); < 0: inside
        b = dx * cx.astype(f32) + dy * cy.astype(f32) + dz * cz.astype(f32)
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            t_s = (-b - np.sqrt(disc)) / a
        t_s[~((disc > 0) & (t_s > eps) & (c > 0))] = inf
        hits.keep(t_s, NUM_ROOM_IDS + s_idx)


def _intersect_boxes(scene: Scene, rays: _Rays, hits: _Hits, first_id: int) -> None:
    """Axis-aligned boxes (slab test) with ids from `first_id`, hit from outside only."""
    f32, inf, eps = np.float32, np.float32(np.inf), np.float32(_EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = [f32(1.0) / d for d in (rays.dx, rays.dy, rays.dz)]
        for k in range(len(scene.box_lo)):
            near, far = None, None
            for axis, (o_ax, inv_ax) in enumerate(zip((rays.ox, rays.oy, rays.oz), inv, strict=True)):
                t1 = (f32(scene.box_lo[k, axis]) - o_ax) * inv_ax
                t2 = (f32(scene.box_hi[k, axis]) - o_ax) * inv_ax
                lo_t, hi_t = np.fmin(t1, t2), np.fmax(t1, t2)
                near = lo_t if near is None else np.fmax(near, lo_t)
                far = hi_t if far is None else np.fmin(far, hi_t)
            near[~((near <= far) & (near > eps))] = inf
            hits.keep(near, first_id + k)


def _intersect_body(scene: Scene, rays: _Rays, hits: _Hits, feet: np.ndarray, body_id: int) -> np.ndarray:
    """The actor's body: a vertical cylinder z in [0, body_height] standing on `feet` (T, 2), side and top
    cap, hit from outside. Returns (T, N) bool: the ray's body hit is on the cap (for its normal)."""
    f32, inf, eps = np.float32, np.float32(np.inf), np.float32(_EPS)
    ox, oy, oz, dx, dy, dz = rays.ox, rays.oy, rays.oz, rays.dx, rays.dy, rays.dz
    px_, py_ = (ox - feet[:, 0, None]).astype(f32), (oy - feet[:, 1, None]).astype(f32)
    r2 = f32(scene.body_radius**2)
    ca = dx * dx + dy * dy
    cb = dx * px_ + dy * py_
    cc = px_ * px_ + py_ * py_ - r2
    cdisc = cb * cb - ca * cc
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (-cb - np.sqrt(cdisc)) / ca
        z_side = oz + t_side * dz
        t_side[~((cdisc > 0) & (t_side > eps) & (z_side >= 0) & (z_side <= scene.body_height) & (cc > 0))] = inf
        t_cap = (f32(scene.body_height) - oz) / dz
        qx, qy = px_ + t_cap * dx, py_ + t_cap * dy
        t_cap[~((dz < 0) & (t_cap > eps) & (qx * qx + qy * qy <= r2))] = inf
    cap_hit = t_cap < t_side
    hits.keep(np.minimum(t_side, t_cap), body_id)
    return cap_hit


# --------------------------------------------------------------------------------------------- textures
# Each `_shade_*` fills `normal` and `albedo` (M, 3) float32 for the flattened hits `obj` (M,), `pts` (M, 3)
# of its objects, in place, so every hit is written by exactly one of them. A texture picks one of a surface's
# two colours per hit (`idx`); `_pattern` turns that into colour 0 everywhere in the flat style.
def _pattern(scene: Scene, idx: np.ndarray) -> np.ndarray:
    """Texture colour indices (M,) int: `idx` in the textured style, zeros in the flat style."""
    return idx.astype(int) if scene.style == "textured" else np.zeros(len(idx), dtype=int)


def _shade_room(scene: Scene, obj: np.ndarray, pts: np.ndarray, normal: np.ndarray, albedo: np.ndarray) -> None:
    m = obj == ID_FLOOR
    checker = (np.floor(pts[m, 0] / scene.floor_tile) + np.floor(pts[m, 1] / scene.floor_tile)) % 2
    albedo[m] = scene.floor_colours[_pattern(scene, checker)]
    normal[m] = (0, 0, 1)
    m = obj == ID_CEILING
    albedo[m] = scene.ceiling_colour
    normal[m] = (0, 0, -1)
    # walls: (id, normal, coordinate along the wall)
    for wall, (wid, n, along_axis) in enumerate(
        [
            (ID_WALL_XNEG, (1, 0, 0), 1),
            (ID_WALL_XPOS, (-1, 0, 0), 1),
            (ID_WALL_YNEG, (0, 1, 0), 0),
            (ID_WALL_YPOS, (0, -1, 0), 0),
        ]
    ):
        m = obj == wid
        if not m.any():
            continue
        s, z = pts[m, along_axis], pts[m, 2]
        scale = scene.wall_scale[wall]
        kind = scene.wall_kind[wall]
        if kind == 0:
            idx = np.floor(z / scale) % 2
        elif kind == 1:
            idx = np.floor(s / scale) % 2
        else:
            idx = (np.floor(z / scale) + np.floor(s / scale)) % 2
        colour = scene.wall_colours[0 if scene.style == "flat_uniform" else wall][_pattern(scene, idx)]
        half = scene.room_half[along_axis]
        pc = scene.poster_centre[wall]
        poster = (np.abs(s - pc[0] * half) < scene.poster_half[wall, 0]) & (
            np.abs(z - pc[1]) < scene.poster_half[wall, 1]
        )
        if scene.style == "textured":
            colour[poster] = scene.poster_colour[wall]
        albedo[m] = colour
        normal[m] = n


def _shade_spheres(
    scene: Scene,
    obj: np.ndarray,
    pts: np.ndarray,
    frame_of: np.ndarray,
    times: np.ndarray,
    centres: np.ndarray,
    radii: np.ndarray,
    normal: np.ndarray,
    albedo: np.ndarray,
) -> None:
    ns, nb = len(scene.sphere_radii), len(scene.balls)
    _, ball_axes, ball_angles = scene.ball_state(times) if nb else (None, None, None)
    head_state = scene.actor_state(times)
    for s in range(scene.num_spheres):
        m = obj == NUM_ROOM_IDS + s
        if not m.any():
            continue
        f = frame_of[m]
        n = (pts[m] - centres[f, s]) / radii[s]
        normal[m] = n
        if s < ns:  # static sphere: latitude bands
            idx = np.floor((n[:, 2] + 1) * scene.sphere_bands[s]) % 2
            albedo[m] = scene.sphere_colours[s][_pattern(scene, idx)]
        elif s < ns + nb:  # ball: beach-ball octants that turn with the motion
            k = s - ns
            local = _rotate_about_axis(n, ball_axes[f, k], -ball_angles[f, k])
            idx = (local[:, 0] > 0) ^ (local[:, 1] > 0) ^ (local[:, 2] > 0)
            albedo[m] = scene.balls[k].colours[_pattern(scene, idx)]
        else:  # head: skin face towards the heading, hair on top and at the back
            yaw = head_state["head_yaw"][f]
            facing = n[:, 0] * np.cos(yaw) + n[:, 1] * np.sin(yaw)
            hair = (n[:, 2] > 0.45) | (facing < -0.2)
            albedo[m] = np.where(hair[:, None], scene.hair_colour, scene.skin_colour)


def _shade_boxes(
    scene: Scene, obj: np.ndarray, pts: np.ndarray, normal: np.ndarray, albedo: np.ndarray, first_id: int
) -> None:
    for k in range(len(scene.box_lo)):
        m = obj == first_id + k
        if not m.any():
            continue
        p = pts[m]
        lo, hi = scene.box_lo[k], scene.box_hi[k]
        # the face is the one the hit point is closest to
        dist = np.concatenate([np.abs(p - lo), np.abs(p - hi)], axis=-1)
        face = np.argmin(dist, axis=-1)
        n = np.zeros_like(p)
        n[np.arange(len(p)), face % 3] = np.where(face < 3, -1.0, 1.0)
        normal[m] = n
        tile = scene.box_tile[k]
        idx = (np.floor(p[:, 0] / tile) + np.floor(p[:, 1] / tile) + np.floor(p[:, 2] / tile)) % 2
        albedo[m] = scene.box_colours[k][_pattern(scene, idx)]


def _shade_body(
    scene: Scene,
    obj: np.ndarray,
    pts: np.ndarray,
    frame_of: np.ndarray,
    feet: np.ndarray,
    cap_hit: np.ndarray,
    normal: np.ndarray,
    albedo: np.ndarray,
    body_id: int,
) -> None:
    m = obj == body_id
    if not m.any():
        return
    p = pts[m]
    radial = np.concatenate([p[:, :2] - feet[frame_of[m]], np.zeros((len(p), 1))], axis=-1) / scene.body_radius
    n = np.where(cap_hit[m][:, None], np.array([0.0, 0.0, 1.0]), radial)
    normal[m] = n
    albedo[m] = np.where((p[:, 2] < scene.leg_height)[:, None], scene.trouser_colour, scene.shirt_colour)


# --------------------------------------------------------------------------------------------- lighting
def _light(scene: Scene, normal: np.ndarray) -> np.ndarray:
    """Brightness (M,) float32 of hits with normals `normal` (M, 3): ambient + Lambert towards the scene's
    light + a little sky light from above."""
    f32 = np.float32
    light = scene.light_dir.astype(f32)
    lambert = normal[:, 0] * light[0] + normal[:, 1] * light[1] + normal[:, 2] * light[2]
    return f32(0.3) + f32(0.5) * np.maximum(lambert, f32(0)) + f32(0.1) * (f32(1) + normal[:, 2])


def _darken_floor_shadows(
    scene: Scene,
    shade: np.ndarray,
    obj: np.ndarray,
    pts: np.ndarray,
    frame_of: np.ndarray,
    centres: np.ndarray,
    feet: np.ndarray,
) -> None:
    """Soft blob shadows of the moving things (balls, actor) on the floor, in place on `shade`, so their
    motion reads in the exo view."""
    floor = obj == ID_FLOOR
    if not floor.any():
        return
    blobs = np.concatenate([centres[:, len(scene.sphere_radii) : -1, :2], feet[:, None]], axis=1)
    sizes = np.array([*(b.radius for b in scene.balls), scene.body_radius * 1.3])
    d2 = ((pts[floor, None, :2] - blobs[frame_of[floor]]) ** 2).sum(-1) / sizes**2
    shade[floor] *= np.prod(1 - 0.45 * np.exp(-d2), axis=-1).astype(np.float32)


def _to_uint8(albedo: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """RGB (M, 3) uint8 of `albedo` (M, 3) in [0, 1] lit by `shade` (M,), rounded to nearest."""
    f32 = np.float32
    rgb = albedo * (shade[:, None] * f32(255.0))
    rgb += f32(0.5)
    np.minimum(rgb, f32(255.0), out=rgb)
    return rgb.astype(np.uint8)  # values are >= 0.5 and <= 255: truncation rounds
