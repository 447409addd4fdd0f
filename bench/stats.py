"""The statistics the benchmarks report, defined once."""

import math
import statistics


def percentile(values, fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of the values at
    or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary(values, digits: int = 2) -> dict | None:
    """median, p95 and max of ``values`` (None when there are none)."""
    values = list(values)
    if not values:
        return None
    return {
        "median": round(statistics.median(values), digits),
        "p95": round(percentile(values, 0.95), digits),
        "max": round(max(values), digits),
    }
