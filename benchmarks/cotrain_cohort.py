"""Does a co-trained decoder trained on some patients work on the next? Leave one BraTS patient out.

    PYTHONPATH=src python benchmarks/cotrain_cohort.py [--structure "whole tumour"] [--shots 5] [--cache DIR]
        [--patients 0002 ...] [--epochs N]

The co-trained multi-prompt decoder (`CoTrain`, seed 000) against zero-shot LiteMedSAM, on the five BraTS 2013
patients of ../shared/data, on the CPU. ``whole tumour`` co-trains whole=1+2+3+4 and core=1+3+4 on FLAIR;
``enhancing`` co-trains whole=1+2+3+4 and enhancing=4 on T1c; the scored structure is the named one. For each
held-out patient the decoder is trained at the defaults of ``napari-samed train cotrain`` (10 epochs, batch 4,
AdamW lr 1e-4, jitter 0.1, seed 0) on ``--shots`` slices of each of three other patients (spread over the scored
structure's slices as `realdata.spread` spreads them, as `fewshot_cohort.py` trains few-shot; 0: every slice holding
a structure) and validated on as many of the fourth (the patient after the held-out one, in order), keeping the
best validation epoch;
`load_slices` embeds them with the ``mr`` window rule (the rule agrees; its numbers, percentiles of the whole
volume there and of the crop here, differ a little). Scored as `fewshot_cohort.py` scores: the held-out patient's
crop (`realdata.load_structure`, ±10 slices) embedded with ``mr``, DSC over the crop without its 5 spread slices,
a box on every slice (`realdata.slice_boxes`) for both ``box`` (zero-shot) and the co-trained decoder. ``--epochs``
and ``--patients`` (the held-out ones) are for a quick check only. Prints a markdown table and the means.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.masks import dice  # noqa: E402
from napari_samed.methods import CoTrain, ZeroShot, run_task  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402
from napari_samed.training import Dataset, SliceSplits, load_slices, parse_structures  # noqa: E402

PATIENTS = ("0002", "0003", "0004", "0005", "0006")
STRUCTURES = {"whole tumour": "whole=1+2+3+4,core=1+3+4", "enhancing": "whole=1+2+3+4,enhancing=4"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structure", default="whole tumour", choices=list(STRUCTURES))
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    parser.add_argument("--patients", nargs="+", default=list(PATIENTS), choices=PATIENTS, help="held out")
    parser.add_argument("--epochs", type=int, default=10, help="the default of train cotrain; less for a check")
    parser.add_argument("--shots", type=int, default=rd.SHOTS, help="labelled slices per patient (0: every one)")
    args = parser.parse_args()
    backbone = load_backbone(device="cpu")
    structures = parse_structures(STRUCTURES[args.structure])
    scored = 0 if args.structure == "whole tumour" else 1
    entries = {p: rd.select([f"BraTS {p} {args.structure}"])[0] for p in PATIENTS}
    dataset = Dataset.from_pairs((rd.DEFAULT_DATA / e.image, rd.DEFAULT_DATA / e.label) for e in entries.values())
    every = run_task(load_slices(dataset, structures, backbone, "mr", args.cache))  # its own split is not used
    names = {case.name: p for case, p in zip(dataset.cases, PATIENTS, strict=True)}
    slices = {p: [s for s in every.train + every.val + every.test if names[s.case] == p] for p in PATIENTS}
    if args.shots:
        for p, held in slices.items():
            chosen = rd.spread(np.array(sorted(s.z for s in held if s.masks[scored].any())), args.shots)
            slices[p] = [s for s in held if s.z in chosen]
    print(f"{args.shots or 'every'} labelled slices per patient\n")
    print(f"| held-out patient ({args.structure}; validated on) | box on every slice | co-trained decoder, box on "
          f"every slice | epoch kept / trained | training s |\n|---|---:|---:|---|---:|", flush=True)
    rows = []
    for patient in args.patients:
        case = rd.load_structure(entries[patient], rd.DEFAULT_DATA)
        emb = VolumeEmbeddings(case.volume, backbone, "mr", args.cache)
        ref = case.mask
        shots = rd.spread(np.flatnonzero(ref.any(axis=(1, 2))))
        others = [z for z in range(len(ref)) if z not in shots]
        val = PATIENTS[(PATIENTS.index(patient) + 1) % len(PATIENTS)]
        train = [s for p in PATIENTS if p not in (patient, val) for s in slices[p]]
        method = CoTrain(backbone, structures)
        start = time.perf_counter()
        history = run_task(method.fit(SliceSplits(structures, train, slices[val], window=every.window), args.epochs))
        seconds = time.perf_counter() - start
        if method.window != emb.window_rule:
            raise SystemExit(f"window rules differ: trained {method.window!r}, scored {emb.window_rule!r}")
        boxes = rd.slice_boxes(ref)
        scores = [dice(pred[others], ref[others]) for pred in
                  (run_task(ZeroShot(backbone).segment(emb, boxes)) > 0, run_task(method.segment(emb, boxes)) > 0)]
        rows.append(scores)
        kept = max(history, key=lambda h: h["val_dsc"])["epoch"]
        print(f"| {patient} ({val}) | {scores[0]:.3f} | {scores[1]:.3f} | {kept} / {len(history)} | {seconds:.0f} |",
              flush=True)
    mean = np.mean(rows, axis=0)
    print(f"| **mean** | {mean[0]:.3f} | {mean[1]:.3f} | | |\n\n{structures[scored].name} scored; training "
          f"slices: {every.summary()} before regrouping by patient, window rule {every.window!r}", flush=True)


if __name__ == "__main__":
    main()
