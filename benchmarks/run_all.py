# SPDX-License-Identifier: Apache-2.0
"""Run every benchmark and write one combined table into BENCHMARKS.md (issue 7, performance summary).

    python benchmarks/run_all.py               # BENCHMARKS.md's configurations (~20-30 min on 2 cores, compiling)
    python benchmarks/run_all.py --quick       # shrunk configurations (~70 s), printed: BENCHMARKS.md is not touched
    python benchmarks/run_all.py --device cuda # GPU (the U-ViT benchmark picks the first GPU itself)
    python benchmarks/run_all.py --no_write    # print the block instead of editing BENCHMARKS.md

Each benchmark (`bench_transformer.py`, `bench_sampling.py`, `bench_uvit.py`, `bench_training.py`) runs as a
subprocess; its markdown table is parsed and summarised in one table (benchmark, setting, time, throughput), next to
the machine's matmul peak measured here (best of `torch.mm` and `F.linear` on 1024x1024 operands, fp32 and bf16).
The block between `<!-- run_all:start -->` and `<!-- run_all:end -->` of BENCHMARKS.md is replaced (the markers are
added at the top if missing); the other sections are left as they are. `--quick` numbers are not the committed
table's: they are printed, and written only to an explicit `--output FILE`. The children's full tables follow the
summary.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START, END = "<!-- run_all:start -->", "<!-- run_all:end -->"

# (name, script, full arguments, quick arguments)
BENCHMARKS = [
    ("transformer", "bench_transformer.py", [], ["--quick", "--modes", "fp32", "--no_compile"]),
    ("sampling step", "bench_sampling.py", ["--threads", "1"],
     ["--layers", "1", "--width", "64", "--heads", "1", "--frames", "4", "--tokens", "4", "--steps", "2",
      "--repeats", "1", "--modes", "fp32", "--threads", "1"]),
    ("U-ViT3D-Pose training step", "bench_uvit.py", ["--steps", "5", "--warmup", "1"],
     ["--frames", "2", "--size", "16", "--steps", "1", "--warmup", "0", "--cpu", "--precisions", "fp32"]),
    ("DiT training step (dit-tiny)", "bench_training.py", ["--preset", "dit-tiny"],
     ["--preset", "dit-tiny", "--resolution", "8", "--frames", "4", "--batch", "1", "--steps", "2", "--warmup", "1",
      "--precisions", "fp32"]),
]
SETTING_HEADERS = ("config", "mode", "pass", "compiled", "guidance", "precision", "grad. checkpointing")
LABELLED_SETTINGS = ("compiled", "grad. checkpointing")  # yes / no cells, shown as "header: value"
TIME_HEADERS = ("median s", "pipeline s/step", "step (s)")
THROUGHPUT_HEADERS = ("tokens/s", "frames/s", "samples/s")


def measure_matmul_peak(device: str = "cpu", size: int = 1024, repeats: int = 5) -> dict[str, float]:
    """Best TFLOP/s of `torch.mm` and `F.linear` on `size`^3 matmuls, per dtype."""
    import torch
    import torch.nn.functional as F

    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        best = float("inf")
        for fn in (lambda: torch.mm(a, b), lambda: F.linear(a, b)):
            fn()
            for _ in range(repeats):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                fn()
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
        peaks[name] = 2 * size**3 / best / 1e12
    return peaks


def parse_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every markdown table of `text` as (header, rows)."""
    tables, block = [], []
    for line in text.splitlines() + [""]:
        if line.strip().startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        if len(block) >= 2 and set("".join(block[1])) <= set("-: "):
            tables.append((block[0], block[2:]))
        block = []
    return tables


def summarize_child(name: str, output: str) -> list[dict[str, str]]:
    """Rows of the combined table from one benchmark's output (its first table with a time column)."""
    for header, rows in parse_tables(output):
        time_col = next((i for i, h in enumerate(header) if h in TIME_HEADERS), None)
        if time_col is None:
            continue
        thr_col = next((i for i, h in enumerate(header) if h in THROUGHPUT_HEADERS), None)
        out = []
        for row in rows:
            setting = ", ".join(f"{h}: {row[i]}" if h in LABELLED_SETTINGS else row[i]
                                for i, h in enumerate(header) if h in SETTING_HEADERS and i < len(row))
            extra = []
            for i, h in enumerate(header):
                if h in ("TFLOP/s", "% of matmul peak", "overhead", "cost vs none") and i < len(row):
                    extra.append(f"{h} {row[i]}")
                if h in ("peak mem MB", "peak memory (MiB)", "activation MB") and i < len(row):
                    extra.append(f"{h} {row[i]}")
            out.append({"benchmark": name, "setting": setting, "time": f"{row[time_col]} ({header[time_col]})",
                        "throughput": f"{row[thr_col]} {header[thr_col]}" if thr_col is not None else "",
                        "notes": "; ".join(extra)})
        return out
    return [{"benchmark": name, "setting": "(no table in the output)", "time": "", "throughput": "", "notes": ""}]


def render_block(children: list[dict], peak: dict[str, float], machine: str, command: str) -> str:
    """The markdown block written between the markers."""
    lines = [START, "## Summary (all benchmarks, one command)", "",
             f"Regenerate with `{command}`. Machine: {machine}. Measured matmul peak (1024^3, best of `torch.mm` and "
             f"`F.linear`): **fp32 {peak['fp32']:.3f} TFLOP/s, bf16 {peak['bf16']:.3f} TFLOP/s**. Generated "
             f"{time.strftime('%Y-%m-%d %H:%M %Z')}.", "",
             "| benchmark | setting | time | throughput | notes |", "|---|---|---|---|---|"]
    for child in children:
        for row in summarize_child(child["name"], child["output"]):
            lines.append(f"| {row['benchmark']} | {row['setting']} | {row['time']} | {row['throughput']} | "
                         f"{row['notes']} |")
    lines += ["", "<details><summary>Full output of each benchmark</summary>", ""]
    for child in children:
        tables = [line for line in child["output"].splitlines() if line.startswith(("|", "# "))]
        lines += [f"`python benchmarks/{child['script']} {' '.join(child['args'])}` ({child['seconds']:.0f} s, exit "
                  f"{child['returncode']})", "", *tables, ""]
    lines += ["</details>", END]
    return "\n".join(lines)


def write_block(path: Path, block: str) -> None:
    """Replace the marked block of `path` (or insert it after the title line), keeping everything else."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        lines = text.splitlines(keepends=True)
        head = 1 if lines and lines[0].startswith("# ") else 0
        text = "".join(lines[:head]) + "\n" + block + "\n" + "".join(lines[head:])
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def output_path(output: Path | None, quick: bool, no_write: bool) -> Path | None:
    """Where the block goes: an explicit `--output`; else BENCHMARKS.md for full runs; None (print) for `--quick`
    runs, whose shrunk numbers must never replace the committed table, and with `--no_write`."""
    if no_write:
        return None
    if output is not None:
        return output
    return None if quick else REPO / "BENCHMARKS.md"


def run_child(script: str, args: list[str], device: str, timeout: float) -> dict:
    argv = [sys.executable, str(REPO / "benchmarks" / script), *args]
    if device != "cpu" and script in ("bench_transformer.py", "bench_sampling.py"):
        argv += ["--device", device]
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as error:
        output, code = f"timed out after {timeout} s\n{error.stdout or ''}", -1
    return {"script": script, "args": args, "output": output, "returncode": code,
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="shrunk configurations (checks the machinery, ~70 s); printed, not written to BENCHMARKS.md")
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", nargs="+", help="subset of scripts, e.g. bench_training.py")
    p.add_argument("--output", type=Path, default=None,
                   help="file whose marked block is replaced (default: BENCHMARKS.md; with --quick: none, printed)")
    p.add_argument("--no_write", "--no-write", action="store_true", help="print the block instead of editing the file")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark")
    args = p.parse_args(argv)
    import torch

    peak = measure_matmul_peak(args.device, size=256 if args.quick else 1024)
    flags = ""
    if Path("/proc/cpuinfo").is_file():
        cpu_flags = set(Path("/proc/cpuinfo").read_text().split())
        flags = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in cpu_flags)
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs ({flags}), torch "
               f"{torch.__version__}, device {args.device}"
               + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    print(f"matmul peak: fp32 {peak['fp32']:.3f} TFLOP/s, bf16 {peak['bf16']:.3f} TFLOP/s", flush=True)
    children = []
    for name, script, full, quick in BENCHMARKS:
        if args.only and script not in args.only:
            continue
        print(f"running {script} ...", flush=True)
        child = run_child(script, quick if args.quick else full, args.device, args.timeout)
        child["name"] = name
        children.append(child)
        print(f"  {script}: exit {child['returncode']} in {child['seconds']:.0f} s", flush=True)
        if child["returncode"] != 0:
            print(child["output"][-2000:], file=sys.stderr)
    command = "python benchmarks/run_all.py" + (" --quick" if args.quick else "") + (
        f" --device {args.device}" if args.device != "cpu" else "")
    block = render_block(children, peak, machine, command)
    output = output_path(args.output, args.quick, args.no_write)
    if output is None:
        print(block)
        if args.quick and not args.no_write:
            print("(--quick: BENCHMARKS.md left as it is; pass --output FILE to write these numbers somewhere)")
    else:
        write_block(output, block)
        print(f"wrote the summary into {output}")
    return 0 if all(c["returncode"] == 0 for c in children) else 1


if __name__ == "__main__":
    sys.exit(main())
