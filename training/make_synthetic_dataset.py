# SPDX-License-Identifier: Apache-2.0
"""Render SynthEgoExo takes into the Syn2Seq dataset format (atomically, resumable).

Example (about 120 small takes in well under a minute)::

    python training/make_synthetic_dataset.py --output data/synth64 \
        --num_train 100 --num_validation 10 --num_test 10 \
        --num_frames 16 --resolution 64 --transition_frames 8

Each take is the scene of one seed (train / validation / test seeds come from disjoint ranges, see
`diffusers_syn2seq.data.SPLIT_SEED_RANGES`), with its true rendered transition cached as
`transition_render.mp4` when `--transition_frames > 0`. Clip folders are renamed into place only when
complete and the table is rewritten atomically every `--checkpoint_every` takes and at the end, so an
interrupted run never lists a half-written clip; `--resume` keeps complete clip folders from an earlier run and
removes the temporary files and folders a killed run left. A dataset of zero takes is refused.

`--continuous` renders the continuous-camera corpus a video prior pretrains on instead of exo/ego pairs
(`diffusers_syn2seq.data.synthetic.render_continuous_clip`): one camera along a smooth random trajectory (walks, pans
and turns, moves between a tripod-like and a head-like view, passes close to the actor), with seeds from
`CONTINUOUS_SEED_RANGES`, disjoint from every pair split. A clip of `2 * --num_frames + --transition_frames` frames is
stored in the same take format, cut into three consecutive pieces: `exo.mp4` (the first `--num_frames`), the cached
`transition_render.mp4` and `ego.mp4` (the last `--num_frames`), each with its poses; the take's `category` is
`continuous`, which `train.py` reads to pick its pretraining task. Example (the corpus of the pretrained base)::

    python training/make_synthetic_dataset.py --continuous --output data/continuous32 --num_train 4000 \
        --num_validation 16 --num_test 0 --num_frames 4 --transition_frames 4 --resolution 32 \
        --style flat_uniform --lossless

`--style flat` renders flat-shaded scenes (one colour per surface; the same geometry and cameras per seed as
the default `--style textured`, see `diffusers_syn2seq.data.synthetic`), easier to learn at 32x32. The style
is recorded in the table's `style` column (and each take's `meta.json`); `--resume` re-renders takes of
another style.

Bad input prints one line `make_synthetic_dataset.py: error: ...` and exits with status 2 (`--debug`: traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from tqdm.auto import tqdm

from diffusers_syn2seq.cli_support import ToolArgumentParser, add_debug_flag, run_tool
from diffusers_syn2seq.data.dataset import CLIPS_DIRNAME, remove_writer_leftovers, write_clip, write_metadata
from diffusers_syn2seq.data.sequence import DEFAULT_NUM_TRANSITION_FRAMES
from diffusers_syn2seq.data.synthetic import (
    CONTINUOUS_CATEGORY,
    SCENE_STYLES,
    render_continuous_clip,
    render_synthetic_clip,
    seeds_for_split,
)
from diffusers_syn2seq.safe_io import check_output_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolArgumentParser(prog="make_synthetic_dataset.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="dataset folder to create or update")
    parser.add_argument("--num_train", "--num-train", type=int, default=100, help="training takes (default: 100)")
    parser.add_argument("--num_validation", "--num-validation", type=int, default=10,
                        help="validation takes (default: 10)")
    parser.add_argument("--num_test", "--num-test", type=int, default=10, help="held-out test takes (default: 10)")
    parser.add_argument("--seed_offset", "--seed-offset", type=int, default=0,
                        help="start this many seeds into each split's range (default: 0)")
    parser.add_argument("--num_frames", "--num-frames", type=int, default=16,
                        help="frames of the exo clip and of the ego clip (default: 16)")
    parser.add_argument("--resolution", type=int, default=64, help="square frame size in pixels (default: 64)")
    parser.add_argument("--transition_frames", "--transition-frames", type=int, default=DEFAULT_NUM_TRANSITION_FRAMES,
                        help=f"true rendered transition frames (0: none; default: {DEFAULT_NUM_TRANSITION_FRAMES})")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the clips (default: 10)")
    parser.add_argument("--style", choices=SCENE_STYLES, default="textured",
                        help="scene surfaces: procedural textures, or one flat colour per surface (default: "
                             "textured)")
    parser.add_argument("--continuous", action="store_true",
                        help="render continuous single-camera clips (the pretraining corpus) instead of exo/ego pairs "
                             "(default: pairs)")
    parser.add_argument("--lossless", action="store_true", help="bit-exact lossless H.264 (larger files)")
    parser.add_argument("--resume", action="store_true", help="keep complete clip folders written by an earlier run")
    parser.add_argument("--checkpoint_every", "--checkpoint-every", type=int, default=50,
                        help="rewrite the table every N takes (default: 50)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    for name in ("num_train", "num_validation", "num_test", "seed_offset", "transition_frames"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("num_frames", "resolution", "checkpoint_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not (math.isfinite(args.fps) and args.fps > 0):
        parser.error(f"--fps: expected a finite number > 0, got {args.fps}")
    if args.num_train + args.num_validation + args.num_test == 0:
        parser.error("--num-train, --num-validation, --num-test: expected at least one take in all, got 0 (a dataset "
                     "of zero takes cannot be trained or evaluated on)")
    return args


def _matches(meta: dict, args: argparse.Namespace) -> bool:
    return (
        meta.get("num_frames") == args.num_frames
        and meta.get("height") == args.resolution
        and meta.get("fps") == args.fps
        and len(meta.get("transition_poses") or []) == args.transition_frames
        and (meta.get("style") or "textured") == args.style  # takes written before styles existed are textured
        and (meta.get("category") == CONTINUOUS_CATEGORY) == args.continuous
    )


def _render_take(seed: int, args: argparse.Namespace) -> dict:
    """The exo / transition / ego pieces of one take (consecutive pieces of one clip with `--continuous`)."""
    if not args.continuous:
        return render_synthetic_clip(
            seed, args.num_frames, args.resolution, args.transition_frames, fps=args.fps, style=args.style
        )
    n, k = args.num_frames, args.transition_frames
    clip = render_continuous_clip(seed, 2 * n + k, args.resolution, fps=args.fps, style=args.style)
    frames, poses = clip["frames"], clip["poses"]
    return {"exo": frames[:n], "transition": frames[n : n + k], "ego": frames[n + k :],
            "exo_poses": poses[:n], "transition_poses": poses[n : n + k], "ego_poses": poses[n + k :]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_output_dir(args.output, "--output")
    if args.resume:
        for path in remove_writer_leftovers(args.output):
            print(f"removed {path} (left by a killed run)")
    jobs = [
        (split, seed)
        for split, num in (("train", args.num_train), ("validation", args.num_validation), ("test", args.num_test))
        for seed in seeds_for_split(split, num, args.seed_offset, continuous=args.continuous)
    ]
    rows: list[dict] = []
    reused = 0
    for done, (split, seed) in enumerate(tqdm(jobs, desc="rendering takes", unit="take")):
        take_id = f"{'cont' if args.continuous else 'synth'}-{seed:07d}"
        meta_path = args.output / CLIPS_DIRNAME / take_id / "meta.json"
        if args.resume and meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except ValueError:  # damaged by hand or disk trouble: render the take again
                meta = {}
            if _matches(meta, args):
                rows.append(meta)
                reused += 1
                continue
        clip = _render_take(seed, args)
        has_transition = args.transition_frames > 0
        rows.append(
            write_clip(
                args.output,
                take_id,
                clip["exo"],
                clip["ego"],
                clip["exo_poses"],
                clip["ego_poses"],
                args.fps,
                category=CONTINUOUS_CATEGORY if args.continuous else "synthetic",
                split=split,
                source="synthetic",
                exo_camera="exo",
                seed=seed,
                style=args.style,
                transition=clip["transition"] if has_transition else None,
                transition_poses=clip["transition_poses"] if has_transition else None,
                transition_source="render" if has_transition else None,
                lossless=args.lossless,
            )
        )
        if (done + 1) % args.checkpoint_every == 0:
            write_metadata(args.output, rows)
    path = write_metadata(args.output, rows)
    print(f"wrote {len(rows)} takes ({reused} kept from an earlier run) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool("make_synthetic_dataset.py", main))
