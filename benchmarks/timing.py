# Copyright 2026 The diffusers-syn2seq Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The timed loop every benchmark script shares (imported as `timing` from the scripts' own folder)."""

import time
from typing import Callable


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
