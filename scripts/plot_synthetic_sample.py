# SPDX-License-Identifier: Apache-2.0
"""Draw one SynthEgoExo sample as a PNG: the exo strip, the true transition strip and the ego strip.

    python scripts/plot_synthetic_sample.py --seed 0 --output synthetic_sample.png

Rows: exo frames (static elevated camera), transition frames (camera flying from the last exo pose to
the first ego pose while scene time runs back from the last to the first instant), ego frames (head
camera). Each frame is labelled with its index; `--every` keeps one frame in N of the exo/ego clips.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from diffusers_syn2seq.data import SCENE_STYLES, render_synthetic_clip


def sample_figure(clip: dict, scale: int = 2, every: int = 1, gap: int = 4, label_width: int = 84) -> Image.Image:
    """Compose the three strips of a `render_synthetic_clip` dict into one RGB image."""
    strips = [("exo", clip["exo"][::every]), ("transition", clip["transition"]), ("ego", clip["ego"][::every])]
    height, width = clip["exo"].shape[1:3]
    cell_h, cell_w = height * scale, width * scale
    columns = max(len(frames) for _, frames in strips)
    canvas = Image.new("RGB", (label_width + columns * (cell_w + gap), len(strips) * (cell_h + gap + 12) + 4), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (name, frames) in enumerate(strips):
        top = row * (cell_h + gap + 12) + 12
        draw.text((4, top + cell_h // 2 - 6), f"{name}\n({len(frames)} frames)", fill="black")
        for col, frame in enumerate(frames):
            left = label_width + col * (cell_w + gap)
            canvas.paste(Image.fromarray(frame).resize((cell_w, cell_h), Image.NEAREST), (left, top))
            index = col * (every if name != "transition" else 1)
            draw.text((left, top - 11), str(index), fill="gray")
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_frames", "--num-frames", type=int, default=16)
    parser.add_argument("--transition_frames", "--transition-frames", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--style", choices=SCENE_STYLES, default="textured", help="scene style (see SynthEgoExo)")
    parser.add_argument("--scale", type=int, default=2, help="pixel magnification in the figure")
    parser.add_argument("--every", type=int, default=2, help="show every N-th exo/ego frame")
    parser.add_argument("--output", type=Path, default=Path("synthetic_sample.png"))
    args = parser.parse_args(argv)
    clip = render_synthetic_clip(args.seed, args.num_frames, args.resolution, args.transition_frames, style=args.style)
    figure = sample_figure(clip, scale=args.scale, every=args.every)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.output)
    print(f"wrote {args.output} ({figure.width}x{figure.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
