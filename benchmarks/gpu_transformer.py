# SPDX-License-Identifier: Apache-2.0
"""DFoTTransformer3DModel on a GPU: bf16, diffusers attention backends, regional compilation, model FLOP utilisation.

    python benchmarks/gpu_transformer.py                          # CUDA: DiT-S and DiT-B, 16 frames x 32x32 tokens
    python benchmarks/gpu_transformer.py --backends native,_native_cudnn --batch_size 2
    python benchmarks/gpu_transformer.py --device cpu --quick     # CPU fallback: checks the script on a tiny model

For each configuration (`--configs`) and attention backend (`--backends`, set with `set_attention_backend`; a
backend this machine cannot run is reported as skipped, with the reason), bf16 autocast forward (no grad) and
forward + backward, eager, and compiled (`compile_repeated_blocks`) for the backends of `--compile_backends`. Eager
and compiled runs of one backend are timed interleaved; median of `--repeats` after two warm-up calls (compilation
happens there; its wall time is the "compile s" column). Columns:

- tokens/s: batch x frames x tokens per frame over the median time;
- TFLOP/s: FLOPs counted by `FlopCounterMode` over one eager pass with PyTorch's SDPA (the same for every backend);
- MFU: TFLOP/s over the GPU's nominal dense bf16 peak (`--nominal_peak_tflops`, else `NOMINAL_BF16_TFLOPS` by
  device name; blank when unknown);
- % of matmul peak: TFLOP/s over the bf16 matmul peak measured in this run (`--peak_size`^2 `F.linear`/`torch.mm`);
- peak mem GiB: `torch.cuda.max_memory_allocated` over one pass (CPU: the process's max RSS so far).

Timing and FLOP counting are `bench_transformer.py`'s; this script only chooses the GPU settings. Prepared for a
machine with a GPU; on CPU it runs the tiny configuration only, to check that the script works.
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_transformer import (
    CONFIGS,
    build_case,
    count_flops,
    matmul_peak_tflops,
    pass_runner,
    peak_memory_mb,
    prepare_variants,
    time_variants,
)
from diffusers.models.attention_dispatch import attention_backend

#: dense bf16 tensor-core peak (TFLOP/s, without sparsity) from the vendors' data sheets, matched on the device name
NOMINAL_BF16_TFLOPS = {"H200": 989.4, "H100 SXM": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4,
                       "GH200": 989.4, "B200": 2250.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
PASSES = ("forward", "fwd+bwd")
GPU_BACKENDS = "native,_native_flash,_native_cudnn,_native_efficient,flash"


def nominal_peak(device: str, override: float | None) -> tuple[float | None, str]:
    """The nominal bf16 peak to compute MFU against, and where it came from."""
    if override:
        return override, "--nominal_peak_tflops"
    if not device.startswith("cuda"):
        return None, "none on CPU"
    name = torch.cuda.get_device_name()
    for key, tflops in NOMINAL_BF16_TFLOPS.items():  # the more specific names come first
        if key in name:
            return tflops, f"data sheet ({key})"
    return None, f"unknown for {name!r}: pass --nominal_peak_tflops"


def try_backend(model, backend: str, run) -> str | None:
    """Set `backend` and run one pass; None when it works, else why it cannot run here."""
    try:
        model.set_attention_backend(backend)
        run()
    except Exception as error:  # noqa: BLE001 (any failure means: skip this backend, and say why)
        return f"{type(error).__name__}: {' '.join(str(error).split())[:160]}"
    return None


def run_backend(name: str, backend: str, args, measured_peak: float, nominal: float | None) -> list[str]:
    """Rows of one configuration and backend (or one 'skipped' row)."""
    torch._dynamo.reset()  # each (configuration, backend) compiles afresh
    model, inputs, tokens = build_case(name, args.device, batch=args.batch_size)
    with attention_backend("native"):  # `set_attention_backend` of an earlier model also set the global default
        flops = {p: count_flops(pass_runner(model, inputs, p, "bf16"))[0] for p in PASSES}
    reason = try_backend(model, backend, pass_runner(model, inputs, "forward", "bf16"))
    if reason is not None:
        return [f"| {name} | {backend} | - | - | skipped: {reason} | | | | | | |"]
    variants = prepare_variants(model, not args.no_compile and backend in args.compile_backends.split(","))
    rows = []
    for pass_name in PASSES:
        runs = {v: pass_runner(m, inputs, pass_name, "bf16") for v, m in variants.items()}
        timings = time_variants(runs, args.repeats, args.sync, time.perf_counter)
        for variant, timing in timings.items():
            tflops = flops[pass_name] / timing["median_s"] / 1e12
            mfu = f"{100 * tflops / nominal:.1f}%" if nominal else ""
            compile_cell = f"{timing['first_s']:.0f}" if variant == "compiled" else ""
            memory = peak_memory_mb(args.device, runs[variant]) / 1024
            rows.append(f"| {name} | {backend} | {pass_name} | {'yes' if variant == 'compiled' else 'no'} | "
                        f"{1e3 * timing['median_s']:.2f} | {tokens / timing['median_s']:,.0f} | {tflops:.3g} | {mfu} | "
                        f"{100 * tflops / measured_peak:.0f}% | {compile_cell} | {memory:.2f} |")
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--configs", default=None,
                        help=f"comma list of {', '.join(CONFIGS)} (default dit-s-16x32,dit-b-16x32; tiny with --quick "
                             "or on CPU)")
    parser.add_argument("--backends", default=None,
                        help=f"diffusers attention backends to try (AttentionBackendName; default {GPU_BACKENDS}, "
                             "native on CPU)")
    parser.add_argument("--compile_backends", default="native", help="backends also timed compiled")
    parser.add_argument("--no_compile", action="store_true")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--peak_size", type=int, default=8192, help="square matmul size for the measured peak")
    parser.add_argument("--nominal_peak_tflops", type=float, default=None, help="dense bf16 peak for MFU")
    parser.add_argument("--quick", action="store_true", help="the tiny config, 2 repeats, 256^2 peak")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (use --device cpu --quick to check the script)")
    if args.backends is None:
        args.backends = GPU_BACKENDS if args.device.startswith("cuda") else "native"
    if args.quick or args.device == "cpu":
        args.configs, args.repeats, args.peak_size = args.configs or "tiny", 2, 256
    args.configs = args.configs or "dit-s-16x32,dit-b-16x32"
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        parser.error(f"--configs: expected names among {', '.join(CONFIGS)}, got {', '.join(unknown)}")
    args.sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    measured = matmul_peak_tflops(torch.bfloat16, args.device, args.peak_size, 5, args.sync, time.perf_counter)
    nominal, source = nominal_peak(args.device, args.nominal_peak_tflops)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU (fallback check)"
    print(f"# {where}; torch {torch.__version__}; bf16 autocast; batch {args.batch_size}; median of {args.repeats}")
    nominal_text = f"{nominal:.1f} TFLOP/s" if nominal else "n/a"
    print(f"# measured bf16 matmul peak ({args.peak_size}^3): {measured:.1f} TFLOP/s; nominal dense bf16 peak: "
          f"{nominal_text} ({source})")
    header = ("| config | backend | pass | compiled | median ms | tokens/s | TFLOP/s | MFU | % of matmul peak | "
              "compile s | peak mem GiB |")
    print()
    print(header)
    print("|" + "---|" * (header.count("|") - 1), flush=True)
    for name in args.configs.split(","):
        for backend in args.backends.split(","):
            for row in run_backend(name, backend, args, measured, nominal):
                print(row, flush=True)


if __name__ == "__main__":
    main()
