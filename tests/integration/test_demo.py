"""The headless demo on the real chest CT: every method scored against the aorta (real LiteMedSAM)."""

import csv
from dataclasses import replace

import numpy as np
import pytest
from conftest import run

from napari_samed import read_volume
from napari_samed.io import Volume
from napari_samed.methods import fewshot
from napari_samed.sample_data import SAMPLES


def aortic_arch(volume: Volume, labels: np.ndarray) -> tuple[Volume, np.ndarray]:
    """Twelve slices through the aortic arch: the real CT and its labels, cropped to keep the test short."""
    z = slice(120, 132)
    return Volume(volume.data[z], volume.spacing, volume.affine, volume.meta), labels[z]


@pytest.mark.slow
def test_demo_on_the_chest_ct_scores_every_method_against_the_aorta(capsys, monkeypatch, tmp_path, cache_dir):
    chest = SAMPLES["chest-ct"]
    monkeypatch.setitem(SAMPLES, "chest-ct", replace(chest, load=lambda: aortic_arch(*chest.load())))
    monkeypatch.setattr(fewshot, "MAX_STEPS", 40)  # the demo's wiring; few-shot at its defaults: test_realdata_*
    out = tmp_path / "demo"
    code, stdout, _ = run(capsys, "demo", "--headless", "--sample", "chest-ct", "-o", out, "--cache", cache_dir)
    assert code == 0 and stdout.strip().endswith("report.md")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".napari-samed-outputs.json", "chest_ct.nii.gz", "chest_ct_labels.nii.gz", "chest_ct.png", "fewshot.ckpt",
         "report.md", "results.csv"])
    labels = read_volume(out / "chest_ct_labels.nii.gz").data
    assert labels.shape == (12, 126, 120) and set(np.unique(labels)) == {0, 1}  # the aorta; T12 is lower
    report = (out / "report.md").read_text()
    assert "the object is the thoracic aorta" in report and "--sample chest-ct" in report
    rows = {row["method"]: float(row["dsc"]) for row in csv.DictReader((out / "results.csv").open())}
    assert set(rows) == {f"chest_ct: zero-shot lite-medsam ({p})" for p in ("box", "box3d", "click3d")} | {
        "chest_ct: fewshot"}
    assert rows["chest_ct: zero-shot lite-medsam (box)"] > 0.7  # scored against the aorta, not the vertebra
    assert rows["chest_ct: fewshot"] > 0.5
