# SPDX-License-Identifier: Apache-2.0
"""A sane CPU thread count for the command line: the physical cores this process may use that other processes are
not already keeping busy.

Why: torch starts one OpenMP thread per logical CPU, and OpenMP threads spin while they wait for each other. On a
loaded machine that is catastrophic: on this project's 2-core CI machine, with two training runs going, 25 denoising
steps of the bundled model take 30 s with 2 threads and 1.9 s with 1 (`syn2seq generate`: 80 s against 2.6 s).
"""

import os
from pathlib import Path

import torch

__all__ = ["configure_threads", "default_num_threads", "physical_cores"]


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads of one core count once); the number of
    usable CPUs when the topology cannot be read."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology / "physical_package_id").read_text().strip() + ":" +
                      (topology / "core_id").read_text().strip())
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def default_num_threads() -> int:
    """Physical cores minus those other processes keep busy (the 1-minute load average), at least 1."""
    cores = physical_cores()
    try:
        busy = int(os.getloadavg()[0] + 0.5)
    except OSError:  # no load average on this platform
        busy = 0
    return max(1, min(cores, cores - busy))


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op thread count and return it: `requested` when given (>= 1), else the value of
    `OMP_NUM_THREADS` when set (torch already read it), else `default_num_threads()`."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"--threads: expected an integer >= 1, got {requested!r}")
        torch.set_num_threads(requested)
    elif not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(default_num_threads())
    return torch.get_num_threads()
