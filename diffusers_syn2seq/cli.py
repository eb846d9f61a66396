# Copyright 2026 The diffusers-syn2seq Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""`syn2seq` command-line interface.

    syn2seq demo --output_dir outputs/demo

`demo` renders a held-out SynthEgoExo scene, checks the DFoT models against the official reference tensors when
they are available (`../shared/fixtures/dfot_reference`, or `SYN2SEQ_SHARED_DIR`), and runs `Syn2SeqPipeline` end
to end (exo clip + poses -> transition -> ego clip). No trained model ships yet, so the pipeline runs a small
randomly initialised pose-conditioned DFoT: the generated frames show the machinery, not a result.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch


def find_reference_fixtures() -> Path | None:
    """The DFoT reference tensors, if this checkout sits next to the project's `shared/` folder."""
    candidates = []
    if os.environ.get("SYN2SEQ_SHARED_DIR"):
        candidates.append(Path(os.environ["SYN2SEQ_SHARED_DIR"]))
    candidates += [Path.cwd().parent / "shared", Path(__file__).resolve().parents[2] / "shared"]
    for shared in candidates:
        folder = shared / "fixtures" / "dfot_reference"
        if folder.is_dir():
            return folder
    return None


def check_reference_parity(folder: Path) -> dict[str, float]:
    """Convert each official fixture state dict and return the max abs difference to the official output."""
    from safetensors.torch import load_file

    from .models import convert_dfot_checkpoint

    results = {}
    for name in ("dit3d_discrete", "dit3d_external_cond", "dit3d_continuous", "uvit3d_pose"):
        path = folder / f"{name}.safetensors"
        if not path.is_file():
            continue
        tensors = load_file(str(path))
        config = json.loads((folder / f"{name}.json").read_text())
        state_dict = {k[len("state_dict.") :]: v for k, v in tensors.items() if k.startswith("state_dict.")}
        model = convert_dfot_checkpoint(state_dict, config)
        kwargs = {}
        if "input.external_cond" in tensors:
            cond = tensors["input.external_cond"]
            if cond.ndim == 5:  # per-pixel ray encoding (B, T, 180, H, W) -> (B, 180, T, H, W)
                kwargs["camera_rays"] = cond.permute(0, 2, 1, 3, 4)
            else:
                kwargs["condition"] = cond
        with torch.no_grad():
            out = model(tensors["input.x"].permute(0, 2, 1, 3, 4), tensors["input.noise_levels"], **kwargs).sample
        results[name] = (out.permute(0, 2, 1, 3, 4) - tensors["output"]).abs().max().item()
    return results


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 frames."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def side_by_side(rows: list[tuple[str, np.ndarray]], path: Path, scale: int = 2) -> None:
    """A PNG with one labelled strip of frames per row."""
    from PIL import Image, ImageDraw

    label_width = 150
    strips = [np.concatenate(list(frames), axis=1) for _, frames in rows]
    width = max(s.shape[1] for s in strips) * scale + label_width
    height = sum(s.shape[0] for s in strips) * scale
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for (label, _), strip in zip(rows, strips):
        image = Image.fromarray(strip).resize((strip.shape[1] * scale, strip.shape[0] * scale), Image.NEAREST)
        canvas.paste(image, (label_width, y))
        draw.multiline_text((4, y + 4), label, fill="black")
        y += image.height
    canvas.save(path)


def demo(args: argparse.Namespace) -> int:
    from .data import render_synthetic_clip
    from .data.synthetic import seeds_for_split
    from .data.video_io import write_video
    from .models import DFoTTransformer3DModel
    from .pipelines import Syn2SeqPipeline
    from .schedulers import DiffusionForcingScheduler

    start = time.perf_counter()
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    folder = find_reference_fixtures()
    if folder is None:
        print("DFoT reference fixtures not found (set SYN2SEQ_SHARED_DIR): parity check skipped.")
    else:
        for name, diff in check_reference_parity(folder).items():
            print(f"parity with the official DFoT backbone, {name:<20}: max abs difference {diff:.2e}")

    seed = seeds_for_split("test", 1)[0] + args.scene
    clip = render_synthetic_clip(
        seed, num_frames=args.num_frames, resolution=args.resolution, num_transition_frames=args.num_transition_frames
    )
    print(f"rendered held-out SynthEgoExo scene (seed {seed}): exo {clip['exo'].shape}, ego {clip['ego'].shape}")

    total = 2 * args.num_frames + args.num_transition_frames
    transformer = DFoTTransformer3DModel(
        in_channels=3,
        sample_size=args.resolution,
        max_frames=total,
        patch_size=4,
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=32,
        camera_ray_type="plucker",
    )
    pipe = Syn2SeqPipeline(transformer=transformer, scheduler=DiffusionForcingScheduler())
    pipe.set_progress_bar_config(desc="denoising")
    result = pipe(
        clip["exo"],
        source_poses=torch.from_numpy(clip["exo_poses"]).float(),
        target_poses=torch.from_numpy(clip["ego_poses"]).float(),
        num_transition_frames=args.num_transition_frames,
        num_inference_steps=args.steps,
        generator=torch.Generator().manual_seed(args.seed),
    )
    generated = (np.clip(result.frames[0], 0, 1) * 255).round().astype(np.uint8)

    fps = 10
    write_video(out_dir / "exo.mp4", clip["exo"], fps=fps)
    write_video(out_dir / "ego_true.mp4", clip["ego"], fps=fps)
    write_video(out_dir / "ego.mp4", generated, fps=fps)
    score = psnr(generated, clip["ego"])
    side_by_side(
        [("exo (input)", clip["exo"]), (f"ego generated\nPSNR {score:.2f} dB\n(untrained)", generated),
         ("ego (true)", clip["ego"])],
        out_dir / "side_by_side.png",
    )
    print(
        "NOTE: no trained model ships yet (see the roadmap in README.md); this run uses a randomly initialised "
        "DFoT, so the generated ego frames are not meaningful."
    )
    print(f"PSNR of the generated ego frames vs ground truth: {score:.2f} dB")
    print(f"wrote {out_dir / 'ego.mp4'}, {out_dir / 'exo.mp4'}, {out_dir / 'ego_true.mp4'}, {out_dir / 'side_by_side.png'}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syn2seq", description="Syn2Seq-Forcing exo<->ego video generation.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="Render a held-out synthetic scene and run the pipeline on it.")
    demo_parser.add_argument("--output_dir", default="outputs/demo", help="where the MP4s and the PNG are written")
    demo_parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    demo_parser.add_argument("--scene", type=int, default=0, help="index of the held-out test scene")
    demo_parser.add_argument("--resolution", type=int, default=32, help="frame size (divisible by 4)")
    demo_parser.add_argument("--num_frames", type=int, default=6, help="exo and ego frames")
    demo_parser.add_argument("--num_transition_frames", type=int, default=2)
    demo_parser.add_argument("--steps", type=int, default=10, help="denoising steps")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.resolution % 4:
            parser.error(f"--resolution must be divisible by 4, got {args.resolution}")
        return demo(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
