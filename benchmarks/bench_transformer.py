# SPDX-License-Identifier: Apache-2.0
"""Throughput of DFoTTransformer3DModel next to the machine's measured matmul peak, in one run.

    python benchmarks/bench_transformer.py                 # DiT-S, 8 frames of 16x16 tokens, CPU
    python benchmarks/bench_transformer.py --batch_size 2 --repeats 7 --device cuda

Prints a markdown table: forward and forward+backward tokens/s, achieved TFLOP/s and the fraction of the measured
matmul peak of the same dtype, and peak memory (CPU: process max RSS growth; CUDA: max allocated).
FLOPs count the matmuls only (projections, MLP, attention scores and values, patch embedding, output):
forward = 2 * N * (12 D^2 + patch/out) + 4 * N^2 * D per layer; backward = 2x forward.
"""

import argparse
import resource
import statistics

import torch
from timing import timed_calls

from diffusers_syn2seq import DFoTTransformer3DModel


def median_seconds(fn, repeats: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        fn()
    sync()
    return statistics.median(timed_calls(fn, repeats, sync))


def matmul_peak_tflops(dtype: torch.dtype, device: str, size: int, repeats: int, sync) -> float:
    """Best of `torch.mm` and `F.linear` on square operands: on CPUs without native bf16 (AVX2 only) the two take
    different oneDNN/MKL paths whose speeds differ by an order of magnitude, and the model uses `F.linear`."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = 0.0
    for op in (lambda: torch.mm(a, b), lambda: torch.nn.functional.linear(a, b)):
        seconds = median_seconds(op, repeats=repeats, warmup=1, sync=sync)
        best = max(best, 2 * size**3 / seconds / 1e12)
    return best


def forward_flops(model: DFoTTransformer3DModel, batch_size: int, frames: int, height: int, width: int) -> float:
    cfg = model.config
    d = cfg.num_attention_heads * cfg.attention_head_dim
    p = cfg.patch_size
    n = frames * (height // p) * (width // p)
    per_layer = 2 * n * (4 * d * d + 2 * d * int(d * cfg.mlp_ratio)) + 4 * n * n * d
    embed = 2 * n * d * cfg.in_channels * p * p
    out = 2 * n * d * p * p * (cfg.out_channels or cfg.in_channels)
    return batch_size * (cfg.num_layers * per_layer + embed + out)


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cpu_flags() -> str:
    """The matmul-relevant ISA extensions of this CPU (bf16 is only fast with AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return " ".join(flag for flag in wanted if flag in flags) or "none of avx2/avx512/amx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16, help="tokens per side of a frame (patch 2 on 2x this)")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak_size", type=int, default=1024, help="square matmul size for the peak measurement")
    parser.add_argument("--modes", default="fp32,bf16", help="comma list of fp32 / bf16 (autocast)")
    args = parser.parse_args()

    device = args.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    size = 2 * args.tokens
    model = DFoTTransformer3DModel(
        in_channels=4,
        sample_size=size,
        max_frames=args.frames,
        patch_size=2,
        num_layers=args.layers,
        num_attention_heads=args.heads,
        attention_head_dim=args.width // args.heads,
    ).to(device)
    x = torch.randn(args.batch_size, 4, args.frames, size, size, device=device)
    t = torch.randint(0, 1000, (args.batch_size, args.frames), device=device)
    flops = forward_flops(model, args.batch_size, args.frames, size, size)
    tokens = args.batch_size * args.frames * args.tokens**2

    peaks = {
        "fp32": matmul_peak_tflops(torch.float32, device, args.peak_size, args.repeats, sync),
        "bf16": matmul_peak_tflops(torch.bfloat16, device, args.peak_size, args.repeats, sync),
    }
    print(
        f"# CPU flags: {cpu_flags()}" if device == "cpu" else f"# {torch.cuda.get_device_name()}"
    )
    print(
        f"# DFoTTransformer3DModel benchmark: {args.layers} layers, width {args.width}, {args.heads} heads, "
        f"batch {args.batch_size} x {args.frames} frames x {args.tokens}x{args.tokens} tokens = {tokens} tokens, "
        f"device {device}, torch threads {torch.get_num_threads()}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params"
    )
    print(f"# measured matmul peak ({args.peak_size}^3): fp32 {peaks['fp32']:.2f} TFLOP/s, "
          f"bf16 {peaks['bf16']:.2f} TFLOP/s")
    print()
    print("| mode | pass | median s | tokens/s | TFLOP/s | % of matmul peak | peak mem MB |")
    print("|---|---|---|---|---|---|---|")
    for mode in args.modes.split(","):
        autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=(mode == "bf16"))

        def forward():
            with torch.no_grad(), autocast:
                model(x, t)

        def forward_backward():
            with autocast:
                out = model(x, t).sample
            out.float().pow(2).mean().backward()

        for name, fn, pass_flops in (("forward", forward, flops), ("fwd+bwd", forward_backward, 3 * flops)):
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            seconds = median_seconds(fn, repeats=args.repeats, warmup=1, sync=sync)
            model.zero_grad(set_to_none=True)
            tflops = pass_flops / seconds / 1e12
            print(
                f"| {mode} | {name} | {seconds:.3f} | {tokens / seconds:,.0f} | {tflops:.2f} | "
                f"{100 * tflops / peaks[mode]:.0f}% | {peak_memory_mb(device):,.0f} |"
            )


if __name__ == "__main__":
    main()
