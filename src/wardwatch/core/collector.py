"""The garbage collector's settings for a long-running process (the server, ingest workers).

A Bundle of 600 readings parses into ~10,000 containers, all kept while it is handled: at the
default gen-0 threshold (700) each one starts ~15 young collections that find nothing to free.
A larger gen-0 threshold keeps the same collector, less often. Each young pass walks every
container the requests in flight hold (~0.4 µs each): at 10,000 the collector took ~6 % of
the server under a stream of Bundles, at 30,000 ~4 %, with passes of ~15 ms; at 100,000 a
pass took ~150 ms, too long a pause for an alert on its way.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 30_000


def settle() -> tuple[int, ...]:
    """Freeze what exists now (it lives as long as the process, so the full passes need not
    rescan it: measured +10-20 % readings/s) and raise the gen-0 threshold; returns the
    thresholds before, for :func:`restore`."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, *before[1:])
    return before


def restore(thresholds: tuple[int, ...]) -> None:
    gc.set_threshold(*thresholds)
