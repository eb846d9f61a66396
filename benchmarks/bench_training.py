# SPDX-License-Identifier: Apache-2.0
"""Training-step benchmark: steps/s and memory of `training/train.py`'s step, fp32 vs bf16 autocast, with and without
gradient checkpointing and regional compilation, for one or several checkouts of the package.

    python benchmarks/bench_training.py --preset dit-tiny                       # the issue-6 table
    python benchmarks/bench_training.py --preset cpu-small --checkpointing 0 --compile 0,1 --threads 1
    # before/after: the same script run against two checkouts, children interleaved round by round
    python benchmarks/bench_training.py --preset cpu-small --checkpointing 0 --compile 0 --threads 1 \
        --clock cpu --rounds 5 --roots /work/main,/work/wt/perf

Each measurement runs in its own child process (clean memory accounting; `PYTHONPATH` set to the `--roots` entry,
so the child imports that checkout's `diffusers_syn2seq`): a DFoT transformer, then train.py's step on synthetic
data (`diffusion_forcing_loss` with camera rays and pose dropout, backward, gradient clipping at 1.0, AdamW with
DFoT's betas, zero_grad, EMA update as `diffusers.training_utils.EMAModel`, and the losses read back to the host and
checked every `--logging_steps` steps as train.py's log does; 1 reads back every step, as train.py did before);
`--warmup` untimed steps (compilation happens there), then `--steps` timed ones, median.
With `--rounds R` every child runs R times, the settings interleaved round by round, and the table reports the
median of the R medians.

`--dataset_dir DIR` (a Syn2Seq dataset, e.g. made as in training/configs/synthetic_cpu_recipe.yaml) puts train.py's
data path into every step: the checkout's `Syn2SeqClipDataset` -> `Syn2SeqTrainingWindows` (video+pose, cached
transitions) -> DataLoader (no workers) -> `model_inputs`, with the takes kept in memory (`InMemoryTakes`, train.py's
`--cache_data`) when `--cache_data 1` and the checkout has it (a checkout without it decodes every batch; the
table's `data` column says which ran). Without `--dataset_dir` the step runs on fixed synthetic tensors.

`--preset cpu-small` is the CPU experiments' model (benchmarks/syn2seq_experiment.py, scale cpu-small: 4 layers,
2 heads of 64, patch 4, 3 x 32 x 32 pixels, 12 frames, batch 4, Plücker rays). Memory: CUDA max allocated; on CPU
the peak of the tensors saved for backward (eager runs only: saved-tensor hooks and compilation do not mix) plus the
parameter, gradient and AdamW bytes, and the process max RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from timing import timed_calls

CPU_SMALL = dict(num_layers=4, num_attention_heads=2, attention_head_dim=64)
DATA_DEFAULTS = {"cpu-small": dict(resolution=32, frames=12, batch=4, channels=3, patch_size=4),
                 None: dict(resolution=32, frames=8, batch=2, channels=4, patch_size=2)}


def build_model(args):
    from diffusers_syn2seq.models import DIT_PRESETS, DFoTTransformer3DModel

    size = CPU_SMALL if args.preset == "cpu-small" else DIT_PRESETS[args.preset]
    return DFoTTransformer3DModel(in_channels=args.channels, sample_size=args.resolution, max_frames=args.frames,
                                  patch_size=args.patch_size, camera_ray_type="plucker", **size)


def data_batches(args):
    """train.py's data path on `--dataset_dir`: (an endless iterator of collated batches, whether the takes are kept
    in memory). The checkout's own classes; `InMemoryTakes` only where it exists."""
    from diffusers_syn2seq import data

    takes = data.Syn2SeqClipDataset(args.dataset_dir, "train")
    sizes = {(h, w) for h, w in zip(takes.table["height"], takes.table["width"])}
    if sizes != {(args.resolution, args.resolution)}:
        raise ValueError(f"--dataset_dir: expected {args.resolution}x{args.resolution} frames (--resolution), got "
                         f"{sorted(sizes)}")
    cached = bool(args.cache_data) and hasattr(data, "InMemoryTakes")
    if cached:
        takes = data.InMemoryTakes(takes)
    windows = data.Syn2SeqTrainingWindows(takes, "video+pose", args.frames, 0.0, "full", data.CrossfadeTransition(),
                                          4, seed=0)
    sampler = data.EpochShuffleSampler(len(windows), seed=0)
    loader = torch.utils.data.DataLoader(windows, batch_size=args.batch, sampler=sampler,
                                         collate_fn=lambda b: data.collate_syn2seq(b, pad_to=args.frames))

    def batches():
        epoch = 0
        while True:
            sampler.select_epoch(epoch)
            windows.select_epoch(epoch)
            yield from loader
            epoch += 1

    return batches(), cached


def child(args) -> dict:
    from diffusers.training_utils import EMAModel

    import diffusers_syn2seq
    from diffusers_syn2seq.objective import diffusion_forcing_loss
    from diffusers_syn2seq.schedulers import DiffusionForcingScheduler
    from diffusers_syn2seq.training_utils import model_inputs

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(args).to(device).train()
    if args.checkpointing:
        model.enable_gradient_checkpointing()
    ema = EMAModel(model.parameters(), decay=0.999, model_cls=type(model), model_config=model.config)
    ema.to(device)
    if args.compile:
        model.compile_repeated_blocks()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.99))
    scheduler = DiffusionForcingScheduler()
    x0 = torch.randn(args.batch, args.channels, args.frames, args.resolution, args.resolution, device=device)
    rays = torch.randn(args.batch, 6, args.frames, args.resolution, args.resolution, device=device)
    mask = torch.ones(args.batch, args.frames, dtype=torch.bool)  # masks stay on the CPU, as train.py keeps them
    batches, cached = data_batches(args) if args.dataset_dir else (None, False)
    pending: list[torch.Tensor] = []
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    saved = {"now": 0, "peak": 0}

    def pack(t):
        saved["now"] += t.numel() * t.element_size()
        saved["peak"] = max(saved["peak"], saved["now"])
        return t

    def inputs():
        if batches is None:
            return x0, mask, rays, mask, None
        got = model_inputs(next(batches), model.config)  # (both signatures: the masks stay on the CPU)
        return (got["x0"].to(device), got["frame_mask"], got["camera_rays"].to(device), got["pose_mask"],
                got["num_history"])

    def step():
        generator = torch.Generator().manual_seed(0)
        hooks = (contextlib.nullcontext() if args.compile
                 else torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t))
        clean, frame_mask, camera_rays, pose_mask, num_history = inputs()
        with torch.autocast(device.type, dtype=dtype, enabled=args.precision == "bf16"), hooks:
            loss, _ = diffusion_forcing_loss(model, scheduler, clean, frame_mask, camera_rays, pose_mask,
                                             camera_dropout=0.1, generator=generator, num_history=num_history)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(model.parameters())
        pending.append(loss.detach())
        if len(pending) >= args.logging_steps:  # train.py's LossLog: one read-back, then the finite check
            if not all(torch.isfinite(torch.stack(pending)).tolist()):
                raise FloatingPointError("non-finite loss")
            pending.clear()
        saved["now"] = 0

    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warmup_s = time.perf_counter() - start
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    saved["peak"] = 0
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    median = statistics.median(timed_calls(step, args.steps, sync, clock))
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return {
        "root": os.path.dirname(os.path.dirname(diffusers_syn2seq.__file__)), "precision": args.precision,
        "checkpointing": bool(args.checkpointing), "compile": bool(args.compile), "device": str(device),
        "threads": torch.get_num_threads(), "median_step_s": median, "steps_per_s": 1 / median,
        "samples_per_s": args.batch / median, "warmup_s": warmup_s,
        "activation_mb": None if args.compile else saved["peak"] / 2**20,
        "peak_mb": (torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda"
        else None if args.compile else (saved["peak"] + 5 * param_bytes) / 2**20,  # + weights, grads, 2 moments, EMA
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "data": "synthetic tensors" if batches is None else "dataset, in memory" if cached else "dataset, decoded",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="dit-s", help="a DIT_PRESETS name, or cpu-small (the CPU experiments' model)")
    for key in ("resolution", "frames", "batch", "channels", "patch_size"):
        p.add_argument(f"--{key}", type=int, default=None, help="default: from the preset")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation happens there)")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--checkpointing", default="0,1", help="comma list of 0/1 (gradient checkpointing)")
    p.add_argument("--compile", default="0", help="comma list of 0/1 (compile_repeated_blocks)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: process CPU time (busy CPU)")
    p.add_argument("--rounds", type=int, default=1, help="run every child this many times, interleaved")
    p.add_argument("--roots", default=None, help="comma list of checkouts to import the package from (PYTHONPATH)")
    p.add_argument("--notes", default=None, help="Append the markdown table to this file.")
    p.add_argument("--dataset_dir", default=None, help="Syn2Seq dataset: train.py's data path in every step")
    p.add_argument("--cache_data", default="1", help="comma list of 0/1: keep the takes in memory (with --dataset_dir)")
    p.add_argument("--logging_steps", type=int, default=10, help="read the losses back every N steps (train.py's)")
    p.add_argument("--child", action="store_true")
    p.add_argument("--precision", default="fp32")
    args = p.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        p.error(f"--clock cpu: needs --threads 1 (process CPU time sums every thread), got --threads {args.threads}")
    if args.child:  # one setting each
        args.checkpointing, args.compile, args.cache_data = int(args.checkpointing), int(args.compile), \
            int(args.cache_data)
    if args.logging_steps < 1:
        p.error(f"--logging_steps: expected an integer >= 1, got {args.logging_steps}")
    defaults = DATA_DEFAULTS.get(args.preset, DATA_DEFAULTS[None])
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def run_children(args) -> list[dict]:
    """Every (root, precision, checkpointing, compile) child, `--rounds` times, interleaved."""
    roots = args.roots.split(",") if args.roots else [None]
    caches = args.cache_data.split(",") if args.dataset_dir else ["0"]
    settings = [(root, precision, int(ckpt), int(comp), int(cache)) for precision in args.precisions.split(",")
                for ckpt in args.checkpointing.split(",") for comp in args.compile.split(",") for cache in caches
                for root in roots]
    results: dict[tuple, list[dict]] = {s: [] for s in settings}
    for _ in range(args.rounds):
        for setting in settings:
            root, precision, ckpt, comp, cache = setting
            cmd = [sys.executable, __file__, "--child", "--precision", precision, "--checkpointing", str(ckpt),
                   "--compile", str(comp), "--clock", args.clock, "--cache_data", str(cache)]
            for key in ("preset", "resolution", "frames", "batch", "channels", "patch_size", "steps", "warmup",
                        "threads", "dataset_dir", "logging_steps"):
                if getattr(args, key) is not None:
                    cmd += [f"--{key}", str(getattr(args, key))]
            env = dict(os.environ, **({"PYTHONPATH": root} if root else {}))
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
            results[setting].append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(results[setting][-1]), flush=True)
    rows = []
    for runs in results.values():
        row = dict(runs[0])
        row["median_step_s"] = statistics.median(r["median_step_s"] for r in runs)
        row["steps_per_s"], row["samples_per_s"] = 1 / row["median_step_s"], args.batch / row["median_step_s"]
        rows.append(row)
    return rows


def render(args, rows: list[dict]) -> str:
    first = rows[0]
    lines = [f"Training step (train.py's: loss, backward, clipping, AdamW, EMA), {args.preset}, batch {args.batch} x "
             f"{args.frames} frames x {args.channels}x{args.resolution}x{args.resolution}, patch {args.patch_size}, "
             f"{first['num_parameters'] / 1e6:.2f}M parameters, device {first['device']}, torch threads "
             f"{first['threads']}, clock {args.clock}, median of {args.steps} steps"
             + (f", median over {args.rounds} interleaved rounds" if args.rounds > 1 else "") + ":", "",
             "| checkout | data | precision | grad. checkpointing | compiled | step (s) | steps/s | samples/s "
             "| activation MB | peak MB | max RSS MB | warm-up s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["root"], r["data"], r["precision"], "yes" if r["checkpointing"] else "no",
                 "yes" if r["compile"] else "no",
                 f"{r['median_step_s']:.3f}", f"{r['steps_per_s']:.2f}", f"{r['samples_per_s']:.2f}",
                 "n/a" if r["activation_mb"] is None else f"{r['activation_mb']:.1f}",
                 "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}", f"{r['max_rss_mb']:.0f}",
                 f"{r['warmup_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for r in rows[1:]:
        lines.append(f"{r['root']} ({r['data']}) {r['precision']} checkpointing={int(r['checkpointing'])} "
                     f"compiled={int(r['compile'])}: {rows[0]['median_step_s'] / r['median_step_s']:.2f}x the steps/s "
                     "of the first row.")
    for off in rows:
        on = next((r for r in rows if r["checkpointing"] and not off["checkpointing"] and r["activation_mb"]
                   and off["activation_mb"] and all(r[k] == off[k] for k in ("root", "data", "precision", "compile"))),
                  None)
        if on is not None:
            lines.append(f"{off['precision']}: checkpointing cuts activation memory by "
                         f"{100 * (1 - on['activation_mb'] / off['activation_mb']):.0f}% at "
                         f"{100 * (on['median_step_s'] / off['median_step_s'] - 1):+.0f}% step time.")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    table = render(args, run_children(args))
    print(table)
    if args.notes:
        with open(args.notes, "a") as f:
            f.write("\n" + table + "\n")


if __name__ == "__main__":
    main()
