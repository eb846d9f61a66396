# SPDX-License-Identifier: Apache-2.0
"""Training-step benchmark: samples/s and peak memory, fp32 vs bf16 autocast, with and without gradient checkpointing.

Each configuration runs in its own child process (clean peak-memory accounting): a DFoT transformer of the given
size, the training step of `training/train.py` (`diffusion_forcing_loss` + backward + AdamW), `--warmup` untimed
steps then `--steps` timed ones; the median step time is reported. Peak memory: `torch.cuda.max_memory_allocated`
on GPU; on CPU the peak of the autograd graph's saved tensors (activation memory, measured with
`torch.autograd.graph.saved_tensors_hooks`) plus the parameter/gradient/optimiser bytes, and the process max RSS.

    python benchmarks/bench_training.py --preset dit-s --resolution 32 --frames 8 --batch 2 \
        --notes /work/notes/training.md
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys

import torch
from timing import timed_calls


def child(args) -> dict:
    from diffusers_syn2seq.models import DIT_PRESETS, DFoTTransformer3DModel
    from diffusers_syn2seq.objective import diffusion_forcing_loss
    from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = DFoTTransformer3DModel(in_channels=args.channels, sample_size=args.resolution, max_frames=args.frames,
                                   patch_size=args.patch_size, camera_ray_type="plucker",
                                   **DIT_PRESETS[args.preset]).to(device).train()
    if args.checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    scheduler = DiffusionForcingScheduler()
    x0 = torch.randn(args.batch, args.channels, args.frames, args.resolution, args.resolution, device=device)
    rays = torch.randn(args.batch, 6, args.frames, args.resolution, args.resolution, device=device)
    mask = torch.ones(args.batch, args.frames, dtype=torch.bool, device=device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32

    saved = {"now": 0, "peak": 0}

    def pack(t):
        saved["now"] += t.numel() * t.element_size()
        saved["peak"] = max(saved["peak"], saved["now"])
        return t

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=args.precision == "bf16"):
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss, _ = diffusion_forcing_loss(model, scheduler, x0, mask, rays, mask, camera_dropout=0.1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        saved["now"] = 0

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    saved["peak"] = 0
    times = timed_calls(step, args.steps, torch.cuda.synchronize if device.type == "cuda" else (lambda: None))
    median = statistics.median(times)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return {
        "precision": args.precision, "checkpointing": bool(args.checkpointing), "device": str(device),
        "median_step_s": median, "samples_per_s": args.batch / median,
        "activation_mb": saved["peak"] / 2**20,
        "peak_mb": (torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda"
        else (saved["peak"] + 4 * params) / 2**20,  # activations + weights, grads, 2 AdamW moments
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="dit-s")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--patch_size", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--notes", default=None, help="Append the markdown table to this file.")
    p.add_argument("--child", action="store_true")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--checkpointing", type=int, default=0)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    rows = []
    for precision in args.precisions.split(","):
        for ckpt in (0, 1):
            cmd = [sys.executable, __file__, "--child", "--precision", precision, "--checkpointing", str(ckpt)]
            for key in ("preset", "resolution", "frames", "batch", "channels", "patch_size", "steps", "warmup"):
                cmd += [f"--{key}", str(getattr(args, key))]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
            print(rows[-1], flush=True)
    lines = [f"Training step, {args.preset}, batch {args.batch} x {args.frames} frames x {args.channels}x"
             f"{args.resolution}x{args.resolution}, patch {args.patch_size}, device {rows[0]['device']}, "
             f"{args.steps} timed steps (median):", "",
             "| precision | grad. checkpointing | step (s) | samples/s | activation MB | peak MB | max RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['precision']} | {'yes' if r['checkpointing'] else 'no'} | {r['median_step_s']:.3f} | "
                     f"{r['samples_per_s']:.2f} | {r['activation_mb']:.1f} | {r['peak_mb']:.1f} | "
                     f"{r['max_rss_mb']:.0f} |")
    for precision in args.precisions.split(","):
        off, on = [r for r in rows if r["precision"] == precision]
        lines.append("")
        lines.append(f"{precision}: checkpointing cuts activation memory by "
                     f"{100 * (1 - on['activation_mb'] / off['activation_mb']):.0f}% at "
                     f"{100 * (on['median_step_s'] / off['median_step_s'] - 1):+.0f}% step time.")
    table = "\n".join(lines)
    print(table)
    if args.notes:
        with open(args.notes, "a") as f:
            f.write("\n" + table + "\n")


if __name__ == "__main__":
    main()
