# SPDX-License-Identifier: Apache-2.0
"""The timed loop every benchmark script shares (imported as `timing` from the scripts' own folder)."""

import time
from collections.abc import Callable


def timed_calls(fn: Callable[[], object], repeats: int, sync: Callable[[], object]) -> list[float]:
    """Wall seconds of `repeats` calls of `fn`, each followed by `sync()` (a device synchronise; a no-op on CPU) so
    that asynchronous GPU work is counted in the call that queued it."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times
