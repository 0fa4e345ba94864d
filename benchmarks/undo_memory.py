"""Memory of undo: 20 successive 3D edits of one object on a 100-slice 512² volume, peak RSS growth.

    python benchmarks/undo_memory.py [--edits 20] [--slices 100]

Each edit replaces the object on every slice it spans (a 3D correction: the object moved by a few voxels and
grown), as the Segment widget applies a 3D result. The figure is the growth of the process's peak RSS from after
the image and labels exist to after the last edit, and the undo steps' own bytes; then every edit is undone and the
labels are checked against the empty volume. Run it on an older commit (``PYTHONPATH=<checkout>/src``) for the
figure before.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from napari_samed.interactive import InteractiveSession


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ellipsoid(shape: tuple[int, int, int], centre: tuple[float, float, float], radii: tuple[float, float, float]):
    """{slice: mask} of an ellipsoid, made slice by slice (no volume-sized temporaries)."""
    y, x = np.ogrid[:shape[1], :shape[2]]
    masks = {}
    for z in range(shape[0]):
        rest = 1 - ((z - centre[0]) / radii[0]) ** 2
        if rest > 0:
            masks[z] = ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2 <= rest
    return masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--slices", type=int, default=100)
    args = parser.parse_args()
    shape = (args.slices, 512, 512)
    session = InteractiveSession(np.zeros(shape, np.int16))
    session.labels[...] = 0  # touch the pages, so that they count before the edits
    start, seconds = peak_mb(), 0.0
    for i in range(args.edits):
        masks = ellipsoid(shape, (shape[0] / 2, 256 + 3 * i, 256 - 2 * i), (shape[0] / 2 + 1, 80 + 2 * i, 60 + i))
        began = time.perf_counter()
        session.apply_objects({1: masks})
        seconds += time.perf_counter() - began
    growth = peak_mb() - start
    history = getattr(session, "history", None)
    kept = f"{history.nbytes / 2**20:.0f} MB in {len(history)} steps" if history is not None else "n/a"
    undone = 0
    while session.undo():
        undone += 1
    print(f"{args.edits} edits of {len(masks)} slices on {shape}: peak RSS growth {growth:.0f} MB, "
          f"undo holds {kept}, {seconds / args.edits * 1000:.0f} ms per edit; {undone} undone, "
          f"labels empty again: {not session.labels.any()}")


if __name__ == "__main__":
    main()
