# SPDX-License-Identifier: Apache-2.0
"""The timed loop every benchmark script shares (imported as `timing` from the scripts' own folder)."""

import time
from collections.abc import Callable


def timed_calls(
    fn: Callable[[], object], repeats: int, sync: Callable[[], object], clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    """Seconds of `repeats` calls of `fn`, each followed by `sync()` (a device synchronise; a no-op on CPU) so
    that asynchronous GPU work is counted in the call that queued it. `clock` is wall time by default;
    `time.process_time` (CPU time of the process) is what a single-threaded CPU run on a busy machine should use,
    since time spent waiting for a core does not count."""
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        sync()
        times.append(clock() - start)
    return times
