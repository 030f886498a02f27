"""Timing helpers shared by the benchmarks in this folder."""

import time

import numpy as np


def time_calls(function, repeats):
    """Seconds each of `repeats` calls of `function()` took, in order (at least one call)."""
    durations = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return durations


def percentiles(seconds):
    """(p50, p90) in milliseconds of durations in seconds."""
    milliseconds = np.asarray(seconds) * 1000
    return np.percentile(milliseconds, 50), np.percentile(milliseconds, 90)
