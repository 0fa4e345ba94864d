"""Interactive effort on the real-data structures: volume DSC after k simulated clicks, and clicks to box quality.

    python benchmarks/interactive.py [--data DIR] [--cache DIR] [--only SUBSTRING ...] [--clicks 10]
        [--starts click,box] [--json OUT.json]

The Segment widget's 3D mode, headless (`InteractiveSession.segment_3d`, project defaults: LiteMedSAM, CPU), on
each structure of `realdata.MANIFEST` (cropped in z to its extent ± 10 slices, the window resolved on the whole
image, embeddings cached up front). A simulated user (`evaluation.simulated_user`) starts with one positive click
at the deepest point of the reference's largest slice (``click``), or with the reference's box on that slice
(``box``); each next click goes to the deepest point of the largest error region on the slice with the most wrong
voxels (missed voxels: a positive click; extra voxels: a negative click), and corrects the object from that
slice. Recorded per start: the volume DSC after 1, 3, 5 and 10 interactions (the start is the first), and NoC,
the interactions needed to reach the DSC of the reference's box on every slice (``box``, `realdata.slice_boxes`),
"> k" when k were not enough; ``s`` is the mean seconds per interaction.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.evaluation.simulated_user import first_click, next_click  # noqa: E402
from napari_samed.interactive import InteractiveSession  # noqa: E402
from napari_samed.masks import dice, mask_bbox  # noqa: E402
from napari_samed.methods import SlicePrompt, ZeroShot, run_task  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402

STARTS = ("click", "box")
REPORTED = (1, 3, 5, 10)


def simulate(session: InteractiveSession, ref: np.ndarray, start: str, clicks: int) -> tuple[list[float], float]:
    """Volume DSC after each of ``clicks`` interactions from ``start``, and the mean seconds per interaction."""
    first = first_click(ref)
    z = first.z
    prompts = {z: SlicePrompt(z, 1, mask_bbox(ref[z])) if start == "box" else
               SlicePrompt(z, 1, points=[(first.y, first.x)], point_labels=[1])}
    scores, seconds = [], 0.0
    for _ in range(clicks):
        begin = time.perf_counter()
        session.apply(run_task(session.segment_3d(list(prompts.values()), z)))
        seconds += time.perf_counter() - begin
        pred = session.labels == 1
        scores.append(dice(pred, ref))
        click = next_click(pred, ref)
        if click is None:
            break
        z = click.z
        prompt = prompts.setdefault(z, SlicePrompt(z, 1))
        prompt.points.append((click.y, click.x))
        prompt.point_labels.append(int(click.positive))
    scores += scores[-1:] * (clicks - len(scores))  # a perfect result stays perfect
    return scores, seconds / clicks


def noc(scores: list[float], target: float) -> int | None:
    """Interactions needed to reach ``target`` (None when never)."""
    return next((k for k, d in enumerate(scores, start=1) if d >= target), None)


def run_structure(entry: rd.Entry, backbone, cache: Path, root: Path, starts, clicks: int) -> dict:
    case = rd.load_structure(entry, root)
    ref = case.mask
    emb = VolumeEmbeddings(case.volume, backbone, case.window, cache)
    list(emb.compute())
    target = dice(run_task(ZeroShot(backbone).segment(emb, rd.slice_boxes(ref))) > 0, ref)
    row = {"structure": entry.name, "slices": int(ref.any(axis=(1, 2)).sum()), "box_slices": target}
    for start in starts:
        session = InteractiveSession(case.volume.data, cache, case.volume.spacing)
        session.configure(window=case.window)
        scores, seconds = simulate(session, ref, start, clicks)
        row[start] = {"dsc": scores, "noc": noc(scores, target), "s": seconds}
    return row


def markdown(rows: list[dict], starts, clicks: int) -> str:
    ks = [k for k in REPORTED if k <= clicks]
    head = "| structure | slices | box every slice |"
    for start in starts:
        head += "".join(f" {start} {k} |" for k in ks) + f" {start} NoC | {start} s |"
    lines = [head, "|" + "---|" * (3 + len(starts) * (len(ks) + 2))]
    for r in rows:
        cells = [r["structure"], str(r["slices"]), f"{r['box_slices']:.3f}"]
        for start in starts:
            s = r[start]
            cells += [f"{s['dsc'][k - 1]:.3f}" for k in ks]
            cells += [str(s["noc"]) if s["noc"] else f"> {clicks}", f"{s['s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    for name, chosen in (("mean, all", rows), ("mean, >= 10 slices", [r for r in rows if r["slices"] >= 10])):
        cells = [f"**{name}** ({len(chosen)})", "", f"{np.mean([r['box_slices'] for r in chosen]):.3f}"]
        for start in starts:
            cells += [f"{np.mean([r[start]['dsc'][k - 1] for r in chosen]):.3f}" for k in ks]
            reached = sum(r[start]["noc"] is not None and r[start]["noc"] <= 5 for r in chosen)
            cells += [f"{reached} reach it in ≤ 5", f"{np.mean([r[start]['s'] for r in chosen]):.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = rd.argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=rd.DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    parser.add_argument("--only", nargs="+", default=[], help="run the structures whose name holds one of these")
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--starts", default=",".join(STARTS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    starts = [s for s in args.starts.split(",") if s]
    if unknown := set(starts) - set(STARTS):
        parser.error(f"unknown starts {sorted(unknown)}; choose from {','.join(STARTS)}")
    print(f"`python benchmarks/interactive.py {' '.join(sys.argv[1:] if argv is None else argv)}`", flush=True)
    backbone = load_backbone(device="cpu")
    rows = []
    for entry in rd.select(args.only):
        rows.append(run_structure(entry, backbone, args.cache, args.data, starts, args.clicks))
        print(json.dumps(rd.rounded(rows[-1])), file=sys.stderr, flush=True)
    print(markdown(rows, starts, args.clicks))
    if args.json:
        args.json.write_text(json.dumps(rd.rounded({"clicks": args.clicks, "rows": rows}), indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
