import os
import subprocess
import sys

import numpy as np
import pytest
from npe2 import PluginManifest

from napari_samed.napari_io import sample_chest_ct
from napari_samed.napari_io import sample_ct as napari_sample
from napari_samed.phantom import LESION, ORGAN
from napari_samed.sample_data import SAMPLES_DIR


def test_manifest_ships_with_the_package_and_validates():
    manifest = PluginManifest.from_distribution("napari-samed")
    assert manifest.name == "napari-samed"
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    samples = {sample.key: commands[sample.command] for sample in manifest.contributions.sample_data}
    assert samples == {"sample_ct": "napari_samed.napari_io:sample_ct",
                       "chest_ct": "napari_samed.napari_io:sample_chest_ct"}


def test_sample_is_a_ct_volume_with_organ_and_lesion_labels():
    (image, image_kw, image_type), (labels, labels_kw, labels_type) = napari_sample()
    assert (image_type, labels_type) == ("image", "labels")
    assert image.shape == labels.shape == (64, 256, 256)
    assert image.min() < -900 and 100 < np.median(image[labels == ORGAN]) < 130  # HU: air, enhanced organ
    assert np.median(image[labels == LESION]) < np.median(image[labels == ORGAN]) - 40
    assert image_kw["scale"] == labels_kw["scale"] == (2.5, 1.0, 1.0)
    assert labels_kw["visible"] is False  # not mistaken for a result
    np.testing.assert_array_equal(napari_sample()[0][0], image)  # deterministic


def test_chest_ct_sample_is_the_real_ct_in_hounsfield_units_with_its_aorta_and_vertebra():
    (image, image_kw, _), (labels, labels_kw, labels_type) = sample_chest_ct()
    assert labels_type == "labels" and labels_kw["visible"] is False
    assert image.shape == labels.shape == (164, 126, 120) and image_kw["scale"] == (1.5, 1.5, 1.5)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert np.median(image[labels == 1]) > 200  # contrast-enhanced blood
    assert np.median(image[labels == 2]) > 150 and image.min() < -900  # bone; air in the lungs
    aorta_slices = np.flatnonzero((labels == 1).any(axis=(1, 2)))
    assert len(aorta_slices) > 100  # a long tube through most slices
    shipped = [p for p in SAMPLES_DIR.iterdir()]
    assert sum(p.stat().st_size for p in shipped) < 5 * 2**20
    assert "wasserth/TotalSegmentator" in (SAMPLES_DIR / "README.md").read_text()
    assert "Apache License" in (SAMPLES_DIR / "LICENSE-Apache-2.0.txt").read_text()


DOCK_AFTER_DRAW = """
import sys
import time
import napari
from qtpy.QtWidgets import QApplication

viewer = napari.Viewer()
for _ in range(50):
    QApplication.processEvents()
assert "torch" not in sys.modules, "torch was imported before the viewer drew"
dock, widget = viewer.window.add_plugin_dock_widget("napari-samed", sys.argv[1])
for _ in range(20):
    QApplication.processEvents()
if hasattr(widget, "loaded"):  # a Deferred dock: the model code loads in a thread, napari keeps drawing
    assert widget.widget is None
    while widget.widget is None:
        QApplication.processEvents()
        time.sleep(0.01)
    widget = widget.widget
print(type(widget).__name__)
viewer.close()
"""


WIDGETS_BEFORE_DRAW = """
import napari
from qtpy.QtWidgets import QApplication

from napari_samed.widgets.demo import open_demo  # a script's order: the widgets first, then the viewer draws

viewer = napari.Viewer()
for _ in range(50):
    QApplication.processEvents()
widget = open_demo(viewer)
from napari_samed.models import load_backbone  # torchvision, through segment-anything

load_backbone()
print("model loaded")
viewer.close()
"""


def test_a_script_may_import_the_widgets_before_the_viewer_draws():
    """`napari-samed demo` and scripts/screenshot.py load a model after the viewer drew: it must not crash."""
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display: run the tests under xvfb-run (bash scripts/test)")
    result = subprocess.run([sys.executable, "-c", WIDGETS_BEFORE_DRAW], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "model loaded"


@pytest.mark.parametrize(("name", "cls"), [("Segment", "SegmentWidget"), ("Few-shot", "FewShotWidget"),
                                           ("Compare methods", "CompareWidget")])
def test_each_widget_docks_from_the_plugins_menu_after_the_viewer_has_drawn(name, cls):
    """Docking imports torch into a process drawing with OpenGL (Mesa under Xvfb): it must not crash it."""
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display: run the tests under xvfb-run (bash scripts/test)")
    result = subprocess.run([sys.executable, "-c", DOCK_AFTER_DRAW, name], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == cls


def test_triton_is_kept_out_only_where_mesa_llvm_is_loaded(tmp_path, monkeypatch):
    from napari_samed.widgets.model_code import keep_triton_out

    monkeypatch.delitem(sys.modules, "triton", raising=False)
    plain = tmp_path / "plain"
    plain.write_text("7f00-7f01 r-xp 0 00:00 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert not keep_triton_out(plain) and sys.modules.get("triton") is not None  # loaded first, while safe
    monkeypatch.delitem(sys.modules, "triton")
    assert not keep_triton_out(tmp_path / "absent") and "triton" not in sys.modules  # not Linux: nothing to read
    mesa = tmp_path / "mesa"
    mesa.write_text("7f00-7f01 r-xp 0 00:00 1 /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1\n")
    assert keep_triton_out(mesa)
    with pytest.raises(ImportError):
        import triton  # noqa: F401
