# SPDX-License-Identifier: Apache-2.0
"""Run benchmark jobs (training and evaluation scripts): in-process one by one, or as parallel subprocesses.

Shared by `syn2seq_experiment.py` and `recipe_search.py`. `cfg` holds `jobs` (parallel subprocesses), `threads`
(OMP / MKL threads per process: one is usually fastest on a loaded 2-core CPU), `device` and `in_process`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    """Print a time-stamped progress line."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def job_env(cfg: dict) -> dict:
    """Environment of a job subprocess: its thread count, offline hubs, this checkout on the path."""
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]), MKL_NUM_THREADS=str(cfg["threads"]),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO))
    if cfg["device"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def load_script(path: Path):
    """Import a script (not a package module) as a fresh module, to run its `main` in-process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_syn2seq_job_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_commands(commands: list[tuple[str, list[str], Path]], cfg: dict) -> None:
    """Run `(name, argv, log file)` commands: in-process one by one, or as subprocesses `cfg["jobs"]` at a time.
    argv[0] is a script path or `-m`; a failure raises with the tail of its log."""
    if not commands:
        return
    if cfg["in_process"]:
        for name, argv, _ in commands:
            log(f"start {name} (in-process)")
            start = time.perf_counter()
            if argv[0] == "-m":
                from diffusers_syn2seq.cli import main as cli_main

                code = cli_main(argv[2:])
            else:
                code = load_script(Path(argv[0])).main(argv[1:])
            if isinstance(code, int) and code != 0:
                raise RuntimeError(f"{name} failed with exit code {code}")
            log(f"done  {name} in {time.perf_counter() - start:.1f} s")
        return
    pending, running = list(commands), []
    env = job_env(cfg)
    while pending or running:
        while pending and len(running) < cfg["jobs"]:
            name, argv, log_path = pending.pop(0)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(log_path, "w")
            proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
            running.append((name, proc, handle, log_path, time.perf_counter()))
            log(f"start {name} (pid {proc.pid}, log {log_path})")
        time.sleep(0.5)
        for item in list(running):
            name, proc, handle, log_path, start = item
            if proc.poll() is None:
                continue
            handle.close()
            running.remove(item)
            if proc.returncode != 0:
                for _, other, h, _, _ in running:
                    other.terminate()
                    other.wait()
                    h.close()
                tail = log_path.read_text()[-3000:]
                raise RuntimeError(f"{name} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
            log(f"done  {name} in {time.perf_counter() - start:.1f} s ({len(pending)} queued, {len(running)} running)")
