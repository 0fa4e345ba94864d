"""``napari-samed apply`` with each case's prompts from the manifest: zero-shot, a co-trained decoder and ProMISe."""

import csv
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import refused, run

from napari_samed.evaluation.cohort import NO_PROMPTS
from napari_samed.io import read_labels, write_labels, write_volume
from napari_samed.masks import dice, mask_bbox
from napari_samed.methods import CoTrain, Promise
from napari_samed.methods.promise import CPU
from napari_samed.phantom import LESION, make_phantom
from napari_samed.training import parse_structures

SHAPE, SPACING = (6, 64, 64), (2.5, 4.0, 4.0)  # a 256 mm field of view in few voxels
COLUMNS = ("image", "reference", "box", "box3d", "point")


def write_case(folder, seed, shape=SHAPE, spacing=SPACING):
    """Phantom ``seed`` and its organ (lesion included) as reference; its labels (organ 1, lesion 2)."""
    volume, labels = make_phantom(seed, shape, spacing)
    write_volume(volume.data, folder / f"case{seed:02d}.nii.gz", volume)
    write_labels((labels > 0).astype(np.uint8), folder / f"case{seed:02d}_label.nii.gz", volume)
    return labels


def write_manifest(path, rows):
    with open(path, "w", newline="") as fh:  # csv quotes the cells that hold commas
        writer = csv.DictWriter(fh, COLUMNS, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def box3d(mask):
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    y0, x0, y1, x1 = mask_bbox(mask.any(axis=0))
    return f"{zs[0]},{y0},{x0},{zs[-1]},{y1},{x1}"


def summary(folder):
    with open(folder / "summary.csv") as fh:
        return {row["case"]: row for row in csv.DictReader(fh)}


def outputs(folder):
    return {p.name: read_labels(p).data for p in sorted(folder.glob("*.nii.gz"))}


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """Five phantoms with references; the 3D box of the organ of the first three."""
    folder = tmp_path_factory.mktemp("phantoms")
    boxes = {seed: box3d(write_case(folder, seed) > 0) for seed in range(1, 6)}
    return folder, boxes


def zero_shot_rows(boxes):
    """Cases 1-3 with their 3D boxes, case 4 with a broken box cell, case 5 without prompts."""
    rows = [{"image": f"case{s:02d}.nii.gz", "reference": f"case{s:02d}_label.nii.gz", "box3d": boxes[s]}
            for s in (1, 2, 3)]
    return rows + [{"image": "case04.nii.gz", "box": "2,10,10,40", "box3d": boxes[4]}, {"image": "case05.nii.gz"}]


def test_zero_shot_segments_each_case_from_its_prompts_and_resumes(capsys, phantoms, cache_dir, tmp_path):
    folder, boxes = phantoms
    rows = zero_shot_rows(boxes)
    manifest = write_manifest(folder / "zero_shot.csv", rows)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "apply", "zero-shot:lite-medsam", manifest, "-o", out, "--cache", cache_dir)
    assert code == 1 and stdout.strip() == str(out / "summary.md")
    assert "2 of 5 cases failed" in err and "case04 failed: column box: a box is Z,Y0,X0,Y1,X1" in err
    found = summary(out)
    assert {n: r["status"] for n, r in found.items()} == {"case01": "done", "case02": "done", "case03": "done",
                                                          "case04": "failed", "case05": "failed"}
    assert found["case04"]["reason"] == ("column box: a box is Z,Y0,X0,Y1,X1 or Z,Y0,X0,Y1,X1,LABEL (integers); "
                                         "got '2,10,10,40'")
    assert found["case05"]["reason"] == NO_PROMPTS
    assert all(float(found[f"case0{s}"]["dsc"]) > 0.7 for s in (1, 2, 3)), found
    first = outputs(out)
    assert list(first) == ["case01.nii.gz", "case02.nii.gz", "case03.nii.gz"]
    for name, labels in first.items():
        reference = read_labels(folder / name.replace(".nii.gz", "_label.nii.gz")).data
        assert dice(labels > 0, reference > 0) == pytest.approx(float(found[name[:6]]["dsc"]), abs=1e-4)
        assert int(found[name[:6]]["voxels"]) == np.count_nonzero(labels)

    def written():
        return {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")}

    times = written()
    code, _, err = run(capsys, "apply", "zero-shot:lite-medsam", manifest, "-o", out, "--cache", cache_dir)
    assert code == 1 and "2 of 5 cases failed" in err  # the failed cases fail again, the others are skipped
    assert [n for n, r in summary(out).items() if r["status"] == "skipped"] == ["case01", "case02", "case03"]
    assert written() == times

    z0, y0, x0, z1, y1, x1 = (int(v) for v in boxes[2].split(","))
    rows[1]["box3d"] = f"{z0 + 1},{y0},{x0},{z1 - 1},{y1},{x1}"  # case02's prompts edited
    write_manifest(manifest, rows)
    code, _, err = run(capsys, "apply", "zero-shot:lite-medsam", manifest, "-o", out, "--cache", cache_dir)
    found = summary(out)
    assert [n for n, r in found.items() if r["status"] == "done"] == ["case02"]
    assert written()["case01.nii.gz"] == times["case01.nii.gz"] and written()["case02.nii.gz"] > times["case02.nii.gz"]
    again = outputs(out)["case02.nii.gz"]
    assert not again[[z0, z1]].any() and again[z0 + 1:z1].any()  # the slices outside the new box are empty


def test_zero_shot_propagates_as_segment_does_and_on_two_workers(capsys, phantoms, cache_dir, tmp_path):
    folder, _ = phantoms
    clicks = {}
    rows = []
    for seed in (1, 2):
        labels = read_labels(folder / f"case{seed:02d}_label.nii.gz").data
        z = int(np.argmax(labels.sum(axis=(1, 2))))
        y, x = (int(v) for v in np.argwhere(labels[z])[len(np.argwhere(labels[z])) // 2])
        clicks[seed] = f"{z},{y},{x}"
        rows.append({"image": f"case{seed:02d}.nii.gz", "point": clicks[seed]})
    manifest = write_manifest(folder / "clicks.csv", rows)
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["apply", "zero-shot:lite-medsam", manifest, "--cache", cache_dir, "--propagate"]
    assert run(capsys, *args, "-o", one)[0] == 0
    code, _, err = run(capsys, *args, "-o", two, "--workers", "2")
    assert code == 0, err
    first, second = outputs(one), outputs(two)
    assert list(first) == ["case01.nii.gz", "case02.nii.gz"]
    for seed in (1, 2):
        name = f"case{seed:02d}.nii.gz"
        np.testing.assert_array_equal(first[name], second[name])
        alone = tmp_path / f"alone{seed}.nii.gz"
        code, _, err = run(capsys, "segment", folder / name, "-o", alone, "--point", clicks[seed], "--propagate",
                           "--cache", cache_dir)
        assert code == 0, err
        np.testing.assert_array_equal(first[name], read_labels(alone).data)
        assert len(np.unique(np.nonzero(first[name])[0])) > 1  # one click, several slices
    # --propagate is part of what a case was made with: without it, every case is computed again
    assert run(capsys, "apply", "zero-shot:lite-medsam", manifest, "--cache", cache_dir, "-o", one)[0] == 0
    assert {r["status"] for r in summary(one).values()} == {"done"}


@pytest.fixture(scope="module")
def cotrain(tmp_path_factory, lite):
    method = CoTrain(lite, parse_structures("organ=1,lesion=2"))
    method.decoder.output_hypernetworks_mlps[0].layers[-1].bias.data += 0.05  # a decoder of its own
    return method.save(tmp_path_factory.mktemp("cotrain") / "cotrain.ckpt")


def apply_as_segment(capsys, model, manifest, folder, option, prompts, cache_dir, tmp_path) -> dict:
    """Run apply over ``manifest`` and check each case's label volume equal to ``segment --trained model`` on the
    same ``prompts`` ({seed: prompt texts}, each given as ``option``) of ``folder``'s case; {seed: label volume}."""
    out = tmp_path / "out"
    code, _, err = run(capsys, "apply", model, manifest, "-o", out, "--cache", cache_dir)
    assert code == 0, err
    found = {}
    for seed, texts in prompts.items():
        alone, flags = tmp_path / f"alone{seed}.nii.gz", [a for text in texts for a in (option, text)]
        code, _, err = run(capsys, "segment", folder / f"case{seed:02d}.nii.gz", "-o", alone, "--trained", model,
                           *flags, "--cache", cache_dir)
        assert code == 0, err
        found[seed] = read_labels(out / f"case{seed:02d}.nii.gz").data
        np.testing.assert_array_equal(found[seed], read_labels(alone).data)
    return found


def test_a_co_trained_decoder_segments_the_manifest_boxes_as_segment_does(capsys, phantoms, cotrain, cache_dir,
                                                                          tmp_path):
    folder, _ = phantoms
    prompts = {}
    for seed in (1, 2):
        labels = make_phantom(seed, SHAPE, SPACING)[1]
        prompts[seed] = [f"{z},{','.join(map(str, mask_bbox(labels[z] > 0)))}" for z in (2, 3)]  # one object each
    manifest = write_manifest(folder / "boxes.csv", [{"image": f"case{s:02d}.nii.gz", "box": ";".join(prompts[s])}
                                                     for s in (1, 2)])
    for labels in apply_as_segment(capsys, cotrain, manifest, folder, "--box", prompts, cache_dir, tmp_path).values():
        assert set(np.unique(labels[2])) == {0, 1} and set(np.unique(labels[3])) == {0, 2}
        assert not labels[[0, 1, 4, 5]].any()  # the prompted slices only
    # a model that needs prompts gets none from a folder, and --propagate is for zero-shot: refused, nothing written
    refused(capsys, "apply", cotrain, folder / "case01.nii.gz", "-o", tmp_path / "none",
            message="cotrain segments from prompts: give each case's in a CSV manifest, in columns box, box3d, point")
    refused(capsys, "apply", cotrain, manifest, "-o", tmp_path / "none", "--propagate",
            message="--propagate is for the zero-shot method; cotrain segments the prompted slices only")
    assert not (tmp_path / "none").exists()


def test_a_promise_model_segments_the_manifest_clicks_as_segment_does(capsys, cache_dir, lite, tmp_path):
    torch.manual_seed(0)
    method = Promise(lite, replace(CPU, crop=8))  # untrained: the wiring, not the accuracy
    method.model.decoder.head.bias.data = torch.tensor([-5.0, 5.0])  # foreground over the whole crop
    model = method.save(tmp_path / "promise.ckpt")
    rows, clicks = [], {}
    for seed in (3, 4):
        labels = write_case(tmp_path, seed, (8, 32, 32), (4.0, 4.0, 4.0))
        z, y, x = (int(v) for v in np.argwhere(labels == LESION)[0])
        clicks[seed] = [f"{z},{y},{x}", f"{z},{min(y + 3, 31)},{x},0"]  # a positive and a negative click
        rows.append({"image": f"case{seed:02d}.nii.gz", "point": "; ".join(clicks[seed])})
    manifest = write_manifest(tmp_path / "clicks.csv", rows)
    for labels in apply_as_segment(capsys, model, manifest, tmp_path, "--point", clicks, cache_dir, tmp_path).values():
        assert len(np.unique(np.nonzero(labels)[0])) > 1  # a 3D result around the click


def test_a_zero_shot_model_that_cannot_run_is_refused_before_any_work(capsys, phantoms, tmp_path):
    folder, boxes = phantoms
    manifest = write_manifest(tmp_path / "cases.csv", [{"image": folder / "case01.nii.gz", "box3d": boxes[1]}])
    out = tmp_path / "out"
    refused(capsys, "apply", "zero-shot:sam-vit-b", manifest, "-o", out, message="model sam-vit-b needs its weights "
                                                                                  "file")
    refused(capsys, "apply", f"zero-shot:medsam={tmp_path / 'none.pth'}", manifest, "-o", out,
            message=f"weights file not found: {tmp_path / 'none.pth'}")
    refused(capsys, "apply", "zero-shot:lite-medsam", manifest, "-o", out, "--window", "bright",
            message="window must be ct, mr, auto or LO,HI; got 'bright'")
    refused(capsys, "apply", "zero-shot:lite-medsam,zero-shot:medsam", manifest, "-o", out,
            message="apply runs one model; got 2")
    refused(capsys, "apply", "zero-shot", folder, "-o", out,
            message="zero-shot lite-medsam segments from prompts: give each case's in a CSV manifest")
    assert not out.exists()
