"""The Segment widget's object list on a CT-sized volume: `InteractiveSession.objects()` after a change of the
labels (a scan of the volume) and again (a prompt edit, a selection: cached), on the GUI thread.

    python benchmarks/objects_scan.py [--repeats 3]

A 300×512×512 label volume holding a 100-slice and a 30-slice object. Before the cache, every prompt edit and
every selection paid the scan; ``labels_changed()`` before each call reproduces that path in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from napari_samed.interactive import InteractiveSession


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    session = InteractiveSession(np.zeros((300, 512, 512), np.int16))
    square = np.zeros((512, 512), bool)
    square[100:300, 100:300] = True
    small = np.zeros((512, 512), bool)
    small[300:350, 300:350] = True
    session.apply_objects({1: {z: square for z in range(100, 200)}, 2: {z: small for z in range(150, 180)}})
    scans, cached = [], []
    for _ in range(args.repeats):
        session.labels_changed()
        scans.append(timed(session.objects))
        cached.append(timed(session.objects))
    print(f"objects() {session.objects()}")
    print(f"after a change (a scan; before the cache, every call): median {statistics.median(scans):.1f} ms "
          f"({', '.join(f'{v:.1f}' for v in scans)})")
    print(f"again, nothing changed (cached): median {statistics.median(cached):.3f} ms")


if __name__ == "__main__":
    main()
