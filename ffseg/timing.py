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


def share_lines(timings: dict, parts, total: float, count: int) -> list:
    """One line per part and the rest: seconds, share of `total`, ms per item."""
    rest = total - sum(timings.get(part, 0.0) for part in parts)
    lines = []
    for part in tuple(parts) + ("rest",):
        seconds = rest if part == "rest" else timings.get(part, 0.0)
        lines.append(
            f"    {part:8s} {seconds * 1e3:8.1f} ms  {100 * seconds / total:5.1f} %"
            f"  ({seconds / count * 1e3:.2f} ms/frame)"
        )
    return lines
