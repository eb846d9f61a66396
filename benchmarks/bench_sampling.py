# SPDX-License-Identifier: Apache-2.0
"""Cost of a `Syn2SeqPipeline` denoising step next to the transformer forward it wraps, with and without history
guidance, in one run.

    python benchmarks/bench_sampling.py                          # CPU, fp32 and bf16 autocast
    python benchmarks/bench_sampling.py --threads 1                # shared CPU: no spinning worker threads
    python benchmarks/bench_sampling.py --layers 12 --width 384 --device cuda

Pixel-space DFoT (no VAE) on one window of `--frames` frames (half source history, half generated). Each pipeline
call is timed as a whole and, through forward hooks, the time spent inside the transformer is summed, so the
overhead is measured within the same run (robust to other processes sharing the CPU). Runs of the three guidance
settings are interleaved, and every figure is a median over `--repeats` calls:

- transformer s/step: time inside the transformer per denoising iteration (one forward on 1 / 2 / 3 rows for
  none / HG-v / HG-f);
- pipeline s/step: a whole `pipe(...)` call divided by its number of iterations (input conversion, branch
  construction, history re-noising, guidance composition, DDIM step, output included);
- overhead: pipeline time outside the transformer over transformer time (target < 5%);
- cost vs none: pipeline s/step over the unguided one (targets HG-v <= 2.1x, HG-f <= 3.1x: the branches are one
  batched forward, so the cost is the batched forward's, not 2-3 sequential calls plus Python);
- cost vs none (CPU time): the same ratio from process CPU time instead of wall time, which waiting for a busy CPU
  does not inflate (only printed for CPU runs).
"""

import argparse
import statistics
import time

import torch

from diffusers_syn2seq.models import DFoTTransformer3DModel
from diffusers_syn2seq.pipelines import Syn2SeqPipeline
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

GUIDANCE = (("none", None, 1.0, 1), ("HG-v", "vanilla", 1.5, 2), ("HG-f", "fractional", 1.5, 3))


class ForwardTimer:
    """Sums the wall time spent inside a module's forward calls (forward pre/post hooks)."""

    def __init__(self, module: torch.nn.Module, sync):
        self.total, self.calls, self._start, self._sync = 0.0, 0, 0.0, sync
        module.register_forward_pre_hook(self._before)
        module.register_forward_hook(self._after)

    def _before(self, module, args):
        self._sync()
        self._start = time.perf_counter()

    def _after(self, module, args, output):
        self._sync()
        self.total += time.perf_counter() - self._start
        self.calls += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=8, help="window length (half history, half generated)")
    parser.add_argument("--tokens", type=int, default=8, help="tokens per side of a frame (patch 2 on 2x this)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="num_inference_steps of each pipeline call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="fp32,bf16", help="comma list of fp32 / bf16 (autocast)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 = stable on a shared CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = args.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    size = 2 * args.tokens
    torch.manual_seed(0)
    model = DFoTTransformer3DModel(
        in_channels=3, sample_size=size, max_frames=args.frames, patch_size=2, num_layers=args.layers,
        num_attention_heads=args.heads, attention_head_dim=args.width // args.heads,
    ).to(device).eval()
    pipe = Syn2SeqPipeline(transformer=model, scheduler=DiffusionForcingScheduler()).to(device)
    pipe.set_progress_bar_config(disable=True)
    timer = ForwardTimer(model, sync)
    num_source = args.frames // 2
    num_generate = args.frames - num_source
    video = torch.rand(num_source, 3, size, size)

    print(
        f"# Syn2SeqPipeline step cost: DFoT {args.layers} layers, width {args.width}, {args.heads} heads, "
        f"{args.frames} frames x {args.tokens}x{args.tokens} tokens ({num_source} history + {num_generate} "
        f"generated), {args.steps} steps, device {device}, torch threads {torch.get_num_threads()}, "
        f"median of {args.repeats}"
    )
    print()
    print(
        "| mode | guidance | rows / forward | transformer s/step | pipeline s/step | overhead | cost vs none | "
        "cost vs none (CPU time) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode in args.modes.split(","):
        autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=(mode == "bf16"))

        def run(guidance, scale):
            timer.total, timer.calls = 0.0, 0
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            with autocast:
                pipe(video, num_frames=num_generate, num_inference_steps=args.steps, history_guidance=guidance,
                     guidance_scale=scale, generator=torch.Generator().manual_seed(0), output_type="latent")
            sync()
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            return wall / timer.calls, timer.total / timer.calls, cpu / timer.calls

        for _, guidance, scale, _ in GUIDANCE:  # warm-up
            run(guidance, scale)
        results = {name: [] for name, *_ in GUIDANCE}
        for _ in range(args.repeats):  # interleaved, so slow phases of a shared machine hit every setting
            for name, guidance, scale, _ in GUIDANCE:
                results[name].append(run(guidance, scale))
        baseline = statistics.median(r[0] for r in results["none"])
        cpu_baseline = statistics.median(r[2] for r in results["none"])
        for name, _, _, rows in GUIDANCE:
            step = statistics.median(r[0] for r in results[name])
            inside = statistics.median(r[1] for r in results[name])
            overhead = statistics.median(r[0] / r[1] - 1 for r in results[name])
            cpu_ratio = statistics.median(r[2] for r in results[name]) / cpu_baseline
            cpu_cell = "n/a" if device.startswith("cuda") else f"{cpu_ratio:.2f}x"
            print(
                f"| {mode} | {name} | {rows} | {inside:.4f} | {step:.4f} | {100 * overhead:+.1f}% | "
                f"{step / baseline:.2f}x | {cpu_cell} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
