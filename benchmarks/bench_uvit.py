# SPDX-License-Identifier: Apache-2.0
"""Forward+backward throughput and peak memory of DFoTUViT3DModel at a small RealEstate10K-like size.

    python benchmarks/bench_uvit.py                    # 8 frames, 64x64, batch 1, CPU or the first GPU
    python benchmarks/bench_uvit.py --steps 20 --batch 4

Every (precision, gradient checkpointing) combination runs in its own subprocess so that peak memory is not
polluted by the previous one. Peak memory is `torch.cuda.max_memory_allocated` on GPU; on CPU it is the growth of
the process's peak resident set size (VmHWM) over its size after building the model and inputs, i.e. the
activations, gradients and workspace of a training step (parameters and inputs excluded). Times are medians over
`--steps` timed steps after `--warmup` untimed ones. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from timing import timed_calls

from diffusers_syn2seq.models.transformer_uvit_dfot import UVIT_REALESTATE10K_CONFIG

# A quarter-width copy of the RealEstate10K U-ViT3D-Pose (same level structure and block types).
SMALL_RE10K = {
    **{k: v for k, v in UVIT_REALESTATE10K_CONFIG.items() if k != "sample_size"},
    "block_out_channels": [64, 128, 288, 576],
    "layers_per_block": [2, 2, 3],
    "num_mid_blocks": 4,
    "emb_channels": 256,
}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def run_one(args: argparse.Namespace) -> dict:
    import torch

    from diffusers_syn2seq.models.transformer_uvit_dfot import DFoTUViT3DModel

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    model = DFoTUViT3DModel(sample_size=args.size, **{**SMALL_RE10K, "max_frames": args.frames}).to(device).train()
    if args.checkpointing:
        model.enable_gradient_checkpointing()
    shape = (args.batch, 3, args.frames, args.size, args.size)
    x = torch.randn(shape, device=device)
    rays = torch.randn(args.batch, 180, args.frames, args.size, args.size, device=device)
    levels = torch.randn(args.batch, args.frames, device=device)
    target = torch.randn(shape, device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            out = model(x, levels, camera_rays=rays).sample
        loss = torch.nn.functional.mse_loss(out.float(), target)
        loss.backward()
        model.zero_grad(set_to_none=True)

    # CPU baseline before the first step: memory the allocator keeps after a step would hide the peak otherwise.
    baseline_kib = _rss_kib("VmRSS")
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = timed_calls(step, args.steps, torch.cuda.synchronize if device.type == "cuda" else (lambda: None))
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = max(_rss_kib("VmHWM") - baseline_kib, 0) / 1024
    median = statistics.median(times)
    return dict(
        device=torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        median_s=median,
        frames_per_s=args.batch * args.frames / median,
        peak_mib=peak_mib,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if a GPU is available")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--precision", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_one(args)))
        return

    rows = []
    for precision in args.precisions:
        for checkpointing in (False, True):
            cmd = [sys.executable, __file__, "--child", "--precision", precision]
            cmd += ["--frames", str(args.frames), "--size", str(args.size), "--batch", str(args.batch)]
            cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
            cmd += ["--checkpointing"] if checkpointing else []
            cmd += ["--cpu"] if args.cpu else []
            result = json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            )
            rows.append((precision, checkpointing, result))
            print(f"done {precision} checkpointing={checkpointing}", file=sys.stderr)

    first = rows[0][2]
    print(
        f"DFoTUViT3DModel small RealEstate10K-like ({first['params_m']:.1f}M params), batch {args.batch} x "
        f"{args.frames} frames x {args.size}x{args.size}, forward+backward, median of {args.steps} steps, "
        f"{first['device']}\n"
    )
    print("| precision | grad. checkpointing | step (s) | frames/s | peak memory (MiB) |")
    print("|---|---|---|---|---|")
    for precision, checkpointing, r in rows:
        label = "bf16 autocast" if precision == "bf16" else "fp32"
        print(
            f"| {label} | {'yes' if checkpointing else 'no'} | {r['median_s']:.3f} | {r['frames_per_s']:.2f} | "
            f"{r['peak_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
