# SPDX-License-Identifier: Apache-2.0
"""Throughput of DFoTTransformer3DModel, eager and compiled, next to the machine's measured matmul peak, in one run.

    python benchmarks/bench_transformer.py                          # DiT-S and the CPU-experiment config, CPU
    python benchmarks/bench_transformer.py --threads 1 --clock cpu  # a busy machine: CPU time of one thread
    python benchmarks/bench_transformer.py --quick                  # smoke test: tiny model, fp32 and bf16
    python benchmarks/bench_transformer.py --device cuda --configs dit-b-16x32 --modes bf16

For every configuration (`--configs`, see `CONFIGS`): fp32 and bf16 autocast (`--modes`), forward (no grad) and
forward + backward, eager and regionally compiled (`compile_repeated_blocks`; `--no_compile` skips it), timed
interleaved (one call of each variant per round, so slow phases of a shared machine hit both alike), median of
`--repeats` after two warm-up calls. Columns:

- tokens/s: batch x frames x tokens per frame over the median time;
- TFLOP/s: the FLOPs of the pass over its median time. FLOPs are counted, not estimated: `FlopCounterMode` over one
  eager pass (matmuls, convolutions, attention; backward included), with PyTorch's CPU flash-attention kernels added
  to its table, so per-token AdaLN modulation (camera rays) and the embeddings count;
- % of matmul peak: TFLOP/s over the best of `torch.mm` / `F.linear` on `--peak_size`^2 operands of the same
  dtype, measured in this run with the same thread count and clock;
- vs eager: the eager median over this row's median (compiled speed-up);
- compile s: wall time of the first compiled call (compilation included);
- peak mem MB: CUDA max allocated over one pass; on CPU the process's max RSS so far (cumulative).

A second table bounds what a pass can reach: PyTorch's SDPA timed alone on the pass's attention operands gives the
attention kernel's own speed, and the "ceiling" is the % of the matmul peak the pass would run at if every other
FLOP ran at the matmul peak and attention at that speed. Where SDPA is slow relative to the matmuls (bf16 on a CPU
without AMX) the ceiling, not the model code, limits the pass.

The header names the CPU's matmul-relevant flags (avx2, fma, avx512f, avx512_bf16 and every amx* flag): bf16 is
only fast with AVX512-BF16 or AMX, so figures from machines with and without them belong in separate tables.
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers.models.attention_dispatch import attention_backend
from timing import timed_calls

from diffusers_syn2seq.models import DIT_PRESETS, DFoTTransformer3DModel

CPU_SMALL = dict(num_layers=4, num_attention_heads=2, attention_head_dim=64, in_channels=3, patch_size=4,
                 camera_ray_type="plucker")
#: name -> model options, batch size, frames, tokens per side of a frame
CONFIGS: dict[str, dict] = {
    "dit-s": dict(model=dict(DIT_PRESETS["dit-s"], in_channels=4, patch_size=2), batch=1, frames=8, tokens=16),
    "cpu-small": dict(model=CPU_SMALL, batch=4, frames=12, tokens=8),  # the CPU experiments' model (syn2seq_experiment)
    "dit-s-16x32": dict(model=dict(DIT_PRESETS["dit-s"], in_channels=4, patch_size=2), batch=1, frames=16, tokens=32),
    "dit-b-16x32": dict(model=dict(DIT_PRESETS["dit-b"], in_channels=4, patch_size=2), batch=1, frames=16, tokens=32),
    "tiny": dict(model=dict(num_layers=2, num_attention_heads=2, attention_head_dim=32, in_channels=3, patch_size=2,
                            camera_ray_type="plucker"), batch=2, frames=4, tokens=4),
}
PASSES = ("forward", "fwd+bwd")


def cpu_flags() -> str:
    """The matmul-relevant ISA extensions of this CPU, as `lscpu` lists them (bf16 is fast only with AMX or
    AVX512-BF16)."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return "unknown"
    line = next((line for line in path.read_text().splitlines() if line.startswith("flags")), "")
    flags = line.split(":", 1)[-1].split()
    wanted = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16") if f in flags] + sorted(
        f for f in flags if f.startswith("amx"))
    return " ".join(wanted) or "none of avx2/avx512/amx"


def build_case(
    name: str, device: str, batch: int | None = None, seed: int = 0
) -> tuple[DFoTTransformer3DModel, dict, int]:
    """`(model, forward kwargs, tokens)` of configuration `name` (its batch size unless `batch` is given); weights
    perturbed so that no AdaLN-Zero gate is 0 (outputs then differ between implementations when they should)."""
    spec = CONFIGS[name]
    options, frames, tokens = spec["model"], spec["frames"], spec["tokens"]
    batch = batch or spec["batch"]
    size = tokens * options["patch_size"]
    torch.manual_seed(seed)
    model = DFoTTransformer3DModel(sample_size=size, max_frames=frames, **options)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.02 * torch.randn_like(param))
    model.to(device)
    inputs = {"hidden_states": torch.randn(batch, options["in_channels"], frames, size, size, device=device),
              "timestep": torch.randint(0, 1000, (batch, frames), device=device)}
    if options.get("camera_ray_type"):
        inputs["camera_rays"] = torch.randn(batch, 6, frames, size, size, device=device)
    return model, inputs, batch * frames * tokens * tokens


def pass_runner(model: torch.nn.Module, inputs: dict, name: str, mode: str) -> Callable[[], torch.Tensor]:
    """One forward (no grad) or forward + backward of `model`, fp32 or under bf16 autocast."""
    device_type = next(model.parameters()).device.type

    def autocast():
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=mode == "bf16")

    def forward() -> torch.Tensor:
        with torch.no_grad(), autocast():
            return model(**inputs).sample

    def forward_backward() -> torch.Tensor:
        with autocast():
            out = model(**inputs).sample
        out.float().pow(2).mean().backward()
        model.zero_grad(set_to_none=True)
        return out.detach()

    return forward if name == "forward" else forward_backward


def count_flops(run: Callable[[], object]) -> tuple[int, int]:
    """FLOPs of one call of `run` (matmuls, convolutions, attention; forward and backward), counted by
    `FlopCounterMode` with PyTorch's CPU flash-attention kernels added to its table: `(total, attention part)`."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten
    custom = {
        aten._scaled_dot_product_flash_attention_for_cpu:
            lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v),
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
            lambda g, q, k, v, *args, out_shape=None, **kwargs: sdpa_backward_flop_count(g, q, k, v),
    }
    with FlopCounterMode(display=False, custom_mapping=custom) as counter:
        run()
    by_op = counter.get_flop_counts().get("Global", {})
    attention = sum(flops for op, flops in by_op.items() if "scaled_dot_product" in str(op))
    return counter.get_total_flops(), attention


def attention_probe_tflops(model: DFoTTransformer3DModel, inputs: dict, pass_name: str, mode: str, repeats: int,
                           sync, clock) -> float:
    """TFLOP/s of PyTorch's SDPA alone on the model's attention operands (batch x heads x all 3D tokens x head
    dim, the mode's dtype), forward or forward + backward: the speed the model's attention can at best run at."""
    cfg, (batch, _, frames, height, width) = model.config, inputs["hidden_states"].shape
    tokens = frames * (height // cfg.patch_size) * (width // cfg.patch_size)
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    shape = (batch, cfg.num_attention_heads, tokens, cfg.attention_head_dim)
    q, k, v = (torch.randn(shape, device=inputs["hidden_states"].device, dtype=dtype,
                           requires_grad=pass_name == "fwd+bwd") for _ in range(3))

    def run():
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        if pass_name == "fwd+bwd":
            out.backward(torch.ones_like(out))
        return out

    flops, _ = count_flops(run)  # the same table as the model's attention FLOPs
    run()
    sync()
    return flops / statistics.median(timed_calls(run, repeats, sync, clock)) / 1e12


def matmul_peak_tflops(dtype: torch.dtype, device: str, size: int, repeats: int, sync, clock) -> float:
    """Best of `torch.mm` and `F.linear` on square operands: on CPUs without native bf16 (AVX2 only) the two take
    different oneDNN/MKL paths whose speeds differ by an order of magnitude, and the model uses `F.linear`."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = 0.0
    for op in (lambda: torch.mm(a, b), lambda: torch.nn.functional.linear(a, b)):
        op()
        sync()
        seconds = statistics.median(timed_calls(op, repeats, sync, clock))
        best = max(best, 2 * size**3 / seconds / 1e12)
    return best


def time_variants(runs: dict[str, Callable[[], object]], repeats: int, sync, clock) -> dict[str, dict[str, float]]:
    """Median seconds of each variant, timed interleaved, and the wall time of its first (compiling) call."""
    result = {}
    for name, run in runs.items():
        start = time.perf_counter()
        run()
        sync()
        result[name] = {"first_s": time.perf_counter() - start}
        run()  # second warm-up: a compiled backward can finish compiling on its second call
        sync()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name] += timed_calls(run, 1, sync, clock)
    for name in runs:
        result[name]["median_s"] = statistics.median(times[name])
    return result


def peak_memory_mb(device: str, run: Callable[[], object] | None = None) -> float:
    """CUDA: max allocated over one call of `run`; CPU: the process's max RSS so far."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        if run is not None:
            run()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def prepare_variants(model: DFoTTransformer3DModel, compile_blocks: bool) -> dict[str, torch.nn.Module]:
    """The eager model and, unless `compile_blocks` is False, a copy with its blocks compiled
    (`compile_repeated_blocks`)."""
    variants = {"eager": model}
    if compile_blocks:
        compiled = copy.deepcopy(model)
        compiled.compile_repeated_blocks()
        variants["compiled"] = compiled
    return variants


def describe_case(name: str, model: DFoTTransformer3DModel, inputs: dict, tokens: int) -> str:
    spec, cfg = CONFIGS[name], model.config
    camera = f", {cfg.camera_ray_type} rays" if cfg.camera_ray_type else ""
    batch = inputs["hidden_states"].shape[0]
    return (f"# {name}: {cfg.num_layers} layers, width {cfg.num_attention_heads * cfg.attention_head_dim}, "
            f"{cfg.num_attention_heads} heads, patch {cfg.patch_size}, batch {batch} x {spec['frames']} frames "
            f"x {spec['tokens']}x{spec['tokens']} tokens = {tokens} tokens{camera}, "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params")


def run_config(name: str, args, peaks: dict[str, float], sync, clock) -> tuple[str, list[str]]:
    """Print the rows of one configuration (every mode, pass and variant); returns its description line and its
    attention-bound ceiling rows."""
    torch._dynamo.reset()  # each configuration compiles afresh (the blocks share one code object)
    model, inputs, tokens = build_case(name, args.device)
    with attention_backend("native"):  # counted with PyTorch's SDPA (`set_attention_backend` sets a global default)
        counted = {p: count_flops(pass_runner(model, inputs, p, "fp32")) for p in PASSES}
    flops = {p: total for p, (total, _) in counted.items()}
    if args.attention_backend:
        model.set_attention_backend(args.attention_backend)
    variants = prepare_variants(model, not args.no_compile)
    for mode in args.modes.split(","):
        for pass_name in PASSES:
            runs = {v: pass_runner(m, inputs, pass_name, mode) for v, m in variants.items()}
            timings = time_variants(runs, args.repeats, sync, clock)
            eager_s = timings["eager"]["median_s"]
            for variant, timing in timings.items():
                seconds = timing["median_s"]
                tflops = flops[pass_name] / seconds / 1e12
                compile_cell = f"{timing['first_s']:.0f}" if variant == "compiled" else ""
                print(f"| {name} | {mode} | {pass_name} | {'yes' if variant == 'compiled' else 'no'} | {seconds:.4f} | "
                      f"{tokens / seconds:,.0f} | {tflops:.3f} | {100 * tflops / peaks[mode]:.0f}% | "
                      f"{eager_s / seconds:.2f}x | {compile_cell} | "
                      f"{peak_memory_mb(args.device, runs[variant]):,.0f} |", flush=True)
    ceilings = [ceiling_row(name, mode, p, counted[p], attention_probe_tflops(model, inputs, p, mode, args.repeats,
                                                                              sync, clock), peaks[mode])
                for mode in args.modes.split(",") for p in PASSES]
    return (describe_case(name, model, inputs, tokens) + f"; counted GFLOP: forward {flops['forward'] / 1e9:.2f}, "
            f"fwd+bwd {flops['fwd+bwd'] / 1e9:.2f}", ceilings)


def ceiling_row(name: str, mode: str, pass_name: str, counted: tuple[int, int], attention_tflops: float,
                peak_tflops: float) -> str:
    """A row of the attention-bound ceiling: the % of the matmul peak a pass would reach if everything but attention
    ran at the matmul peak and attention at the SDPA kernel's own measured speed (nothing else costing time)."""
    total, attention = counted
    best_s = attention / (attention_tflops * 1e12) + (total - attention) / (peak_tflops * 1e12)
    return (f"| {name} | {mode} | {pass_name} | {100 * attention / total:.0f}% | {attention_tflops:.3f} | "
            f"{100 * attention_tflops / peak_tflops:.0f}% | {100 * total / best_s / 1e12 / peak_tflops:.0f}% |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--configs", default="dit-s,cpu-small", help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--modes", default="fp32,bf16", help="comma list of fp32 / bf16 (autocast)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time (single-threaded CPU runs on a busy machine)")
    parser.add_argument("--peak_size", type=int, default=1024, help="square matmul size for the peak measurement")
    parser.add_argument("--no_compile", action="store_true", help="eager rows only (also: no C++ compiler on CPU)")
    parser.add_argument("--attention_backend", default=None, help="diffusers attention backend (set_attention_backend)")
    parser.add_argument("--quick", action="store_true", help="smoke test: the tiny config, 2 repeats, 256^2 peak")
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.repeats, args.peak_size = "tiny", 2, 256
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        parser.error(f"--configs: expected names among {', '.join(CONFIGS)}, got {', '.join(unknown)}")
    if args.clock == "cpu" and (args.device != "cpu" or args.threads != 1):
        parser.error("--clock cpu: needs --device cpu --threads 1 (process CPU time sums every thread and misses GPU "
                     f"work), got --device {args.device} --threads {args.threads}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    peaks = {"fp32": matmul_peak_tflops(torch.float32, args.device, args.peak_size, args.repeats, sync, clock),
             "bf16": matmul_peak_tflops(torch.bfloat16, args.device, args.peak_size, args.repeats, sync, clock)}
    where = f"CPU flags: {cpu_flags()}" if args.device == "cpu" else torch.cuda.get_device_name()
    print(f"# {where}; torch {torch.__version__}, device {args.device}, torch threads {torch.get_num_threads()}, "
          f"clock {args.clock}, median of {args.repeats}, attention backend {args.attention_backend or 'default'}")
    print(f"# measured matmul peak ({args.peak_size}^3): fp32 {peaks['fp32']:.3f} TFLOP/s, "
          f"bf16 {peaks['bf16']:.3f} TFLOP/s")
    header = ("| config | mode | pass | compiled | median s | tokens/s | TFLOP/s | % of matmul peak | vs eager | "
              "compile s | peak mem MB |")
    print()
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    results = [run_config(name, args, peaks, sync, clock) for name in args.configs.split(",")]
    print()
    print("\n".join(description for description, _ in results))
    print()
    print("Attention-bound ceiling: SDPA alone on each pass's attention operands (same dtype, threads and clock); "
          "ceiling = % of the matmul peak if all other FLOPs ran at the peak and attention at the kernel's speed.")
    print()
    print("| config | mode | pass | attention share of FLOPs | SDPA TFLOP/s | SDPA % of matmul peak | ceiling |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(row for _, rows in results for row in rows))


if __name__ == "__main__":
    main()
