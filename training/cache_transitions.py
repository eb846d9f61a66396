# SPDX-License-Identifier: Apache-2.0
"""Cache transitions (exo -> ego bridges) for every take of a Syn2Seq dataset; resumable.

Examples::

    # cheap pixel crossfade, 8 in-between frames
    python training/cache_transitions.py --data data/synth64 --source crossfade --num_frames 8
    # the true fly-through of synthetic takes
    python training/cache_transitions.py --data data/synth64 --source render --num_frames 8
    # a diffusers first-last-frame pipeline (e.g. a local Wan 2.1 FLF2V checkpoint)
    python training/cache_transitions.py --data data/ego --source flf --pipeline /models/wan-flf2v \
        --prompt "the camera moves smoothly" --num_inference_steps 30 --guidance_scale 5

Each take gets `clips/<take>/transition_<source>.mp4` (written atomically) and its `meta.json` is
updated with `transition_video`, `transition_poses` (the interpolated camera path from the last exo to
the first ego pose) and `transition_source`; the table is rewritten atomically every
`--checkpoint_every` takes and at the end. A take whose transition came from another source (e.g. the
rendered fly-through of `make_synthetic_dataset.py`, replaced by `--source crossfade`) keeps that file and
records it under `previous_transitions` in its `meta.json`; the run says which sources it switched, and a
later run with the old `--source` switches back to the kept file without recomputing it.
A rerun skips takes already done (same source and frame count), so an interrupted run resumes where it
stopped. `--skip_bad` skips takes whose videos cannot be decoded and lists them at the end instead of
stopping. A rerun also removes the temporary files a killed run left. Bad input prints one line
`cache_transitions.py: error: ...` and exits with status 2 (`--debug`: traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from diffusers_syn2seq.cli_support import ToolArgumentParser, add_debug_flag, run_tool
from diffusers_syn2seq.data.dataset import (
    METADATA_FILENAME,
    Syn2SeqClipDataset,
    collect_clip_rows,
    remove_writer_leftovers,
    write_metadata,
)
from diffusers_syn2seq.data.sequence import DEFAULT_NUM_TRANSITION_FRAMES
from diffusers_syn2seq.data.transitions import TransitionSource, make_transition_source, transition_path_poses
from diffusers_syn2seq.data.video_io import write_video
from diffusers_syn2seq.safe_io import atomic_write_text
from diffusers_syn2seq.safe_loading import load_pretrained


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolArgumentParser(prog="cache_transitions.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Syn2Seq dataset folder")
    parser.add_argument("--source", required=True, choices=["crossfade", "crossfade_latent", "render", "flf"])
    parser.add_argument("--num_frames", "--num-frames", type=int, default=DEFAULT_NUM_TRANSITION_FRAMES,
                        help="in-between frames per transition")
    parser.add_argument("--lossless", action="store_true", help="bit-exact lossless H.264")
    parser.add_argument("--overwrite", action="store_true", help="recompute transitions that are already cached")
    parser.add_argument("--skip_bad", "--skip-bad", action="store_true",
                        help="skip (and report) takes that cannot be decoded")
    parser.add_argument("--checkpoint_every", "--checkpoint-every", type=int, default=20)
    parser.add_argument("--vae", help="crossfade_latent: diffusers AutoencoderKL folder or hub id")
    parser.add_argument("--pipeline", help="flf: diffusers first-last-frame pipeline folder or hub id")
    parser.add_argument("--prompt", default="", help="flf: text prompt")
    parser.add_argument("--num_inference_steps", "--num-inference-steps", type=int, default=30,
                        help="flf: denoising steps")
    parser.add_argument("--guidance_scale", "--guidance-scale", type=float, default=5.0,
                        help="flf: classifier-free guidance")
    parser.add_argument("--seed", type=int, default=0, help="flf: generator seed")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    for name in ("num_frames", "checkpoint_every", "num_inference_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not math.isfinite(args.guidance_scale):
        parser.error(f"--guidance_scale: expected a finite number, got {args.guidance_scale}")
    if args.source == "crossfade_latent" and not args.vae:
        parser.error("--source crossfade_latent needs --vae")
    if args.source == "flf" and not args.pipeline:
        parser.error("--source flf needs --pipeline")
    return args


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_source(args: argparse.Namespace) -> TransitionSource:
    if args.source == "crossfade_latent":
        from diffusers import AutoencoderKL

        vae = load_pretrained(AutoencoderKL.from_pretrained, args.vae, "--vae")  # safetensors only
        return make_transition_source("crossfade_latent", vae=vae.to(args.device))
    if args.source == "flf":
        from diffusers import DiffusionPipeline

        pipeline = load_pretrained(DiffusionPipeline.from_pretrained, args.pipeline, "--pipeline").to(args.device)
        return make_transition_source(
            "flf",
            pipeline=pipeline,
            prompt=args.prompt,
            seed=args.seed,
            num_inference_steps=args.num_inference_steps,
            guidance_scale=args.guidance_scale,
        )
    return make_transition_source(args.source)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data))


def set_transition(meta: dict[str, Any], video: str, poses: list, source_name: str) -> str | None:
    """Point a take's `meta` at a transition; one of another source that it replaces is kept under
    `previous_transitions[<its source>]` (its file stays on disk). Returns the replaced source, if any."""
    old = meta.get("transition_source")
    previous = meta.setdefault("previous_transitions", {})
    if old and old != source_name and meta.get("transition_video"):
        previous[old] = {"transition_video": meta["transition_video"], "transition_poses": meta["transition_poses"]}
    previous.pop(source_name, None)
    if not previous:
        del meta["previous_transitions"]
    meta.update(transition_video=video, transition_poses=poses, transition_source=source_name)
    return old if old and old != source_name else None


def kept_transition(data: Path, meta: dict[str, Any], source_name: str, num_frames: int) -> dict | None:
    """The transition of `source_name` a take kept when another source replaced it, if it has `num_frames` frames
    and its file is still there."""
    kept = (meta.get("previous_transitions") or {}).get(source_name)
    if kept and len(kept["transition_poses"]) == num_frames and (data / kept["transition_video"]).is_file():
        return kept
    return None


def cache_transitions(
    data: Path,
    source: TransitionSource,
    num_frames: int,
    lossless: bool = False,
    overwrite: bool = False,
    skip_bad: bool = False,
    checkpoint_every: int = 20,
    switched: list[str] | None = None,
) -> tuple[int, int, list[str]]:
    """Cache `source` transitions for every take listed in `data`'s table.

    Returns (computed, already cached or restored, bad-take messages); `switched`, when given, receives one line
    `"<take>: <old source> -> <new source>"` per take whose transition source changed (module docstring)."""
    switched = [] if switched is None else switched
    dataset = Syn2SeqClipDataset(data, load_transition=False)  # validates the table: take ids and paths inside
    remove_writer_leftovers(data)
    listed = set(dataset.table["take_id"])
    computed, kept, bad = 0, 0, []

    def rows() -> list[dict[str, Any]]:
        return [row for row in collect_clip_rows(data) if row["take_id"] in listed]

    for index in tqdm(range(len(dataset)), desc=f"caching {source.name} transitions", unit="take"):
        row = dataset.table[index]
        relative = f"clips/{row['take_id']}/transition_{source.name}.mp4"
        meta_path = data / "clips" / row["take_id"] / "meta.json"
        meta = json.loads(meta_path.read_text())
        done = (
            meta.get("transition_video") == relative
            and meta.get("transition_source") == source.name
            and len(meta.get("transition_poses") or []) == num_frames
            and (data / relative).is_file()
        )
        if done and not overwrite:
            kept += 1
            continue
        restored = None if overwrite else kept_transition(data, meta, source.name, num_frames)
        if restored is not None:  # switch back to the file kept when another source replaced it
            old = set_transition(meta, restored["transition_video"], restored["transition_poses"], source.name)
            _write_json_atomic(meta_path, meta)
            switched.append(f"{row['take_id']}: {old} -> {source.name} (restored the kept file)")
            kept += 1
            continue
        try:
            item = dataset[index]
        except ValueError as error:
            if not skip_bad:
                raise
            bad.append(str(error))
            continue
        sample = {**item, "seed": row["seed"], "style": row["style"]}  # a rendered transition matches the take
        frames = source(item["exo"][-1], item["ego"][0], num_frames, sample=sample)
        write_video(data / relative, frames, row["fps"], lossless=lossless)
        poses = transition_path_poses(item["exo_poses"][-1], item["ego_poses"][0], num_frames).tolist()
        old = set_transition(meta, relative, poses, source.name)
        if old:
            switched.append(f"{row['take_id']}: {old} -> {source.name}")
        _write_json_atomic(meta_path, meta)
        computed += 1
        if computed % checkpoint_every == 0:
            write_metadata(data, rows())
    write_metadata(data, rows())
    return computed, kept, bad


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source = build_source(args)
    switched: list[str] = []
    computed, kept, bad = cache_transitions(
        args.data, source, args.num_frames, args.lossless, args.overwrite, args.skip_bad, args.checkpoint_every,
        switched,
    )
    print(
        f"{computed} transitions computed, {kept} already cached, {len(bad)} bad takes skipped; "
        f"table {args.data / METADATA_FILENAME}"
    )
    for message in bad:
        print(f"  skipped: {message}")
    print_switches(switched, source.name)
    return 0


def print_switches(switched: list[str], source_name: str) -> None:
    """Say which takes changed transition source, and how to switch back."""
    if not switched:
        return
    changes = Counter(line.split(": ", 1)[1].removesuffix(" (restored the kept file)") for line in switched)
    print(f"changed transition_source of {len(switched)} takes: "
          + ", ".join(f"{change} ({n})" for change, n in sorted(changes.items())))
    olds = sorted({change.split(" -> ")[0] for change in changes} - {source_name})
    if olds:
        print("  the replaced transitions stay on disk (clips/<take>/transition_<source>.mp4) and are recorded under "
              f"previous_transitions in each meta.json; --source {' or '.join(olds)} switches back without "
              "recomputing")


if __name__ == "__main__":
    sys.exit(run_tool("cache_transitions.py", main))
