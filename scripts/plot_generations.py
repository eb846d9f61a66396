# SPDX-License-Identifier: Apache-2.0
"""Draw what models generate for a few held-out scenes as one PNG, to look at: the source clip, the true target clip,
then each model's generated target clip, one block of rows per scene.

    python scripts/plot_generations.py --data runs/two_stage/data/n100/render --split validation --num_scenes 4 \\
        --model base=runs/two_stage/base --model jump=runs/.../n100-pretrained-jump-lr0.001-s0 --output gen.png

On a continuous-camera dataset (`make_synthetic_dataset.py --continuous`) the "source" is the clip's first frames
and the "target" its last ones: the picture shows a pretrained base's continuations. Scene i samples with seed
`--seed` + i, as `syn2seq evaluate` does, so the pictures are the samples that were scored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diffusers_syn2seq.evaluation import generate_scene, load_eval_scenes, load_pipeline, side_by_side  # noqa: E402


def to_uint8(frames) -> np.ndarray:
    """`(F, 3, H, W)` floats in [0, 1] -> uint8 `(F, H, W, 3)`."""
    return (frames.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def parse_model(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--model: expected NAME=FOLDER, got {value!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="Syn2Seq dataset folder")
    p.add_argument("--split", default="validation", help="split whose first scenes are drawn (default: validation)")
    p.add_argument("--num_scenes", type=int, default=4, help="scenes drawn (default: 4)")
    p.add_argument("--model", type=parse_model, action="append", required=True, help="NAME=FOLDER, repeatable")
    p.add_argument("--steps", type=int, default=25, help="denoising steps (default: 25)")
    p.add_argument("--seed", type=int, default=1000, help="scene i samples with seed + i (default: 1000)")
    p.add_argument("--scale", type=int, default=4, help="enlargement, nearest neighbour (default: 4)")
    p.add_argument("--output", type=Path, required=True, help="PNG to write")
    args = p.parse_args(argv)
    scenes = load_eval_scenes(args.data, args.split, args.num_scenes)
    pipes = [(name, load_pipeline(folder)[0]) for name, folder in args.model]
    rows = []
    for i, scene in enumerate(scenes):
        truth = None
        generated = []
        for name, pipe in pipes:
            pipe.set_progress_bar_config(disable=True)
            sample, truth = generate_scene(pipe, scene, steps=args.steps, seed=args.seed + i)
            generated.append((f"{name}", to_uint8(sample)))
        rows += [(f"scene {i}: source", scene["exo"]), ("truth", to_uint8(truth)), *generated]
    side_by_side(rows, args.output, scale=args.scale)
    print(f"wrote {args.output}")
    return args.output


if __name__ == "__main__":
    main()
