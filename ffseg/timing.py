"""Optional stage timers for the signal layer and `ffseg detect` (used by bench/).

`timed(timings, key)` adds the time spent in its block to `timings[key]`,
and does nothing when `timings` is None, so library code can be instrumented
at no cost. Timing uses the module-level `clock` (wall time); a benchmark on
a shared machine sets `ffseg.timing.clock = time.process_time`.
"""

import contextlib
import time

clock = time.perf_counter


@contextlib.contextmanager
def timed(timings, key):
    if timings is None:
        yield
        return
    start = clock()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + clock() - start
