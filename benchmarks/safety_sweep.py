"""The bad-input sweep: careless and hostile inputs through the command line, the checkpoint loader and the session
loader, each case classified as clean, traceback, silent or data loss.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/safety_sweep.py [--only TEXT] [--json OUT]

- **clean**: a refusal in one line with exit status 2; for an input that is fine, success (with the warning the
  case calls for); for a killed run, nothing half-written and a rerun that completes.
- **traceback**: an exception escaped (or the process died another way).
- **silent**: a bad input accepted without a word, a warning missing, or a refusal that wrote files first.
- **data loss**: a file that was there before the run changed or vanished (files the command owns aside).

Every case runs in a fresh folder holding a five-slice sample CT (`ct.nii.gz`) and its reference labels
(`reference.nii.gz`, written by another tool); commands run in this process (`napari_samed.cli.main`), kill cases
in a child process.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from napari_samed import Volume
from napari_samed.cli import main
from napari_samed.errors import SamedError
from napari_samed.io import write_volume
from napari_samed.io.session import SavedSession, load_session, save_session
from napari_samed.masks import mask_bbox
from napari_samed.methods import CoTrain, FewShot, Promise
from napari_samed.methods.fewshot import FewShotDecoder
from napari_samed.methods.promise import CPU
from napari_samed.models import load_backbone
from napari_samed.phantom import make_phantom
from napari_samed.training import Structure

try:
    from napari_samed.methods.checkpoint_checks import DIGEST, content_digest
except ImportError:  # an earlier napari-samed, swept for comparison: its checkpoints carry no digest
    DIGEST, content_digest = "digest", None

CLI = [sys.executable, "-m", "napari_samed.cli"]


@dataclass
class Case:
    """``make(folder)`` prepares the folder and returns the command's arguments, or a function to call (a loader
    case: a `SamedError` is clean), or a `Kill`. ``expect``: refuse, warn or ok; ``owned``: files (relative to the
    folder) the command may replace; ``absent``: paths that must not exist afterwards; ``child``: run it in a child
    process."""

    category: str
    name: str
    make: Callable[[Path], list | Callable | Kill]
    expect: str = "refuse"
    owned: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()  #: paths that must not exist afterwards (a folder made for nothing)
    child: bool = False  #: run the command in a child process (it may abort the process)


@dataclass
class Kill:
    """Run ``argv`` in a child, kill it with SIGKILL after ``after`` seconds, then run ``check`` (a problem, or
    None) and ``rerun``, which must complete."""

    argv: list
    after: float
    check: Callable[[], str | None]
    rerun: list


# -- the sample, checkpoints and their forgeries ----------------------------------------------------------------
VOLUME, LABELS = make_phantom(0)
LITE = load_backbone()


def sample_case(folder: Path) -> tuple[Path, Path]:
    vol = Volume(VOLUME.data[30:35], spacing=VOLUME.spacing)
    write_volume(vol.data, folder / "ct.nii.gz", vol)
    nib.Nifti1Image(LABELS[30:35].transpose(2, 1, 0)[::-1, ::-1].copy(), vol.affine).to_filename(
        str(folder / "reference.nii.gz"))
    return folder / "ct.nii.gz", folder / "reference.nii.gz"


BOX = ",".join(map(str, (2, *mask_bbox(LABELS[32] > 0))))


def fewshot_ckpt(path: Path) -> Path:
    method = FewShot(LITE)
    method.labels, method.targets, method.decoder = [1], [torch.rand(2, 256)], FewShotDecoder(LITE, 1)
    return method.save(path)


def cotrain_ckpt(path: Path) -> Path:
    return CoTrain(LITE, [Structure("organ", (1,))]).save(path)


def promise_ckpt(path: Path, target=(2,), crop: int = 8) -> Path:
    try:
        method = Promise(LITE, replace(CPU, crop=crop), target)
    except TypeError:  # an earlier napari-samed, which recorded no target
        method = Promise(LITE, replace(CPU, crop=crop))
    return method.save(path)


CKPTS = {"fewshot": (fewshot_ckpt, []), "cotrain": (cotrain_ckpt, ["--box", BOX]),
         "promise": (promise_ckpt, ["--point", "2,100,80"])}


def forged(kind: str, change: Callable[[dict], object], sign: bool = True) -> Callable[[Path], list]:
    """A case: ``kind``'s checkpoint changed by ``change`` (re-signed unless ``sign`` is False), then segmented."""

    def make(folder: Path) -> list:
        image, _ = sample_case(folder)
        make_ckpt, prompts = CKPTS[kind]
        path = make_ckpt(folder / "model.ckpt")
        state = torch.load(path, weights_only=True)
        change(state)
        if sign and content_digest:
            state[DIGEST] = content_digest(state)
        torch.save(state, path)
        return ["segment", image, "--trained", path, *prompts, "-o", folder / "out.nii.gz"]

    return make


def first(entries: dict) -> str:
    return next(iter(entries))


def fill(value: float, key: str = "decoder") -> Callable[[dict], None]:
    return lambda state: state[key][first(state[key])].fill_(value)


def damaged_file(write: Callable[[Path], None]) -> Callable[[Path], list]:
    def make(folder: Path) -> list:
        image, _ = sample_case(folder)
        path = fewshot_ckpt(folder / "model.ckpt")
        write(path)
        return ["segment", image, "--trained", path, "-o", folder / "out.nii.gz"]

    return make


def flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4096] = bytes(b ^ 0xFF for b in data[middle:middle + 4096])
    path.write_bytes(bytes(data))


class Evil:
    def __reduce__(self):
        return (os.system, ("touch HACKED",))


# -- cases --------------------------------------------------------------------------------------------------------
def command(*args, prepare: Callable[[Path], None] | None = None) -> Callable[[Path], list]:
    """A case running ``args`` (IMAGE, REFERENCE and DIR stand for the sample, its labels and ``folder / "out"``)."""

    def make(folder: Path) -> list:
        image, reference = sample_case(folder)
        (folder / "out").mkdir()
        if prepare:
            prepare(folder)
        names = {"IMAGE": image, "REFERENCE": reference, "DIR": folder / "out", "FILE": folder / "reference.nii.gz"}
        return [names.get(a, a) for a in args]

    return make


def put(name: str, content: bytes | Callable[[Path], object] = b"the user's own file") -> Callable[[Path], None]:
    """Prepare: a file of the user's at ``out/name``."""

    def prepare(folder: Path) -> None:
        path = folder / "out" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)

    return prepare


def nifti(name: str, array: np.ndarray) -> Callable[[Path], None]:
    """Prepare: ``array`` as a NIfTI file of the user's at ``out/name``."""
    return put(name, lambda path: nib.Nifti1Image(array, np.eye(4)).to_filename(str(path)))


def copy_image(name: str) -> Callable[[Path], None]:
    return put(name, lambda path: path.write_bytes((path.parents[1] / "ct.nii.gz").read_bytes()))


def benchmark_data(folder: Path) -> None:
    """A benchmark's data folder: the sample as ``data/ct.nii.gz`` and ``data/ct_label.nii.gz``."""
    (folder / "data").mkdir()
    for source, name in (("ct.nii.gz", "ct.nii.gz"), ("reference.nii.gz", "ct_label.nii.gz")):
        (folder / "data" / name).write_bytes((folder / source).read_bytes())


COTRAIN = ["benchmark", "cotrain", "IMAGE", "REFERENCE", "--structures", "organ=1", "-o", "DIR", "--epochs", "1"]
DEMO = ["demo", "--headless", "-o", "DIR"]
TRAIN_FS = ["train", "fewshot", "IMAGE", "REFERENCE", "--slices", "1,3", "--iterations", "2"]


def cases() -> list[Case]:
    out = [
        Case("output folders", "sample: a foreign sample_ct.nii.gz", command("sample", "-o", "DIR",
                                                                              prepare=copy_image("sample_ct.nii.gz"))),
        Case("output folders", "sample: a text file named sample_ct_labels.nii.gz",
             command("sample", "-o", "DIR", prepare=put("sample_ct_labels.nii.gz"))),
        Case("output folders", "sample --cases: the user's dataset.json",
             command("sample", "--cases", "1", "-o", "DIR", prepare=put("dataset.json", b'{"name": "mine"}'))),
        Case("output folders", "sample --cases: a file in labelsTr/",
             command("sample", "--cases", "1", "-o", "DIR", prepare=put("labelsTr/notes.txt"))),
        Case("output folders", "sample -o ''", command("sample", "-o", "")),
        Case("output folders", "sample -o FILE", command("sample", "-o", "FILE")),
        Case("output folders", "sample twice: replaces its own files", command(
            "sample", "-o", "DIR", prepare=lambda f: main(["sample", "-o", str(f / "out")])), "ok",
             ("out/sample_ct.nii.gz", "out/sample_ct_labels.nii.gz", "out/.napari-samed-outputs.json")),
        Case("output folders", "demo: a foreign sample_ct.nii.gz",
             command(*DEMO, prepare=copy_image("sample_ct.nii.gz"))),
        Case("output folders", "demo: the user's report.md", command(*DEMO, prepare=put("report.md"))),
        Case("output folders", "demo: a co-train checkpoint named fewshot.ckpt",
             command(*DEMO, prepare=put("fewshot.ckpt", cotrain_ckpt))),
        Case("output folders", "demo --device tpu", command(*DEMO, "--device", "tpu")),
        Case("output folders", "demo --cache FILE", command(*DEMO, "--cache", "FILE")),
        Case("output folders", "demo without a display", command("demo"), child=True),
        *[Case("output folders", f"benchmark cotrain: the user's {name}", command(*COTRAIN, prepare=put(name, content)))
          for name, content in [("table1.md", b"# mine"), ("table1.csv", b"a,b"), ("overlays/case.png", b"png"),
                                ("cotrain.ckpt", promise_ckpt), ("single.ckpt", b"text")]],
        Case("output folders", "benchmark: the user's report.md",
             command("benchmark", "--data", "data", "-o", "DIR", prepare=lambda folder: (
                 put("report.md")(folder), benchmark_data(folder)))),
        Case("output folders", "benchmark cotrain --device tpu: no empty folder left",
             command(*COTRAIN[:6], "-o", "NEW", "--device", "tpu"), absent=("NEW",)),
        Case("output folders", "demo --device tpu: no empty folder left",
             command("demo", "--headless", "-o", "NEW", "--device", "tpu"), absent=("NEW",)),
        Case("output files", "segment -o IMAGE", command("segment", "IMAGE", "--box", BOX, "-o", "IMAGE")),
        Case("output files", "segment -o the reference", command("segment", "IMAGE", "--box", BOX, "-o", "FILE")),
        Case("output files", "segment -o a folder", command("segment", "IMAGE", "--box", BOX, "-o", "DIR")),
        Case("output files", "segment -o a foreign file", command("segment", "IMAGE", "--box", BOX, "-o",
                                                                  "out/theirs.nii.gz",
                                                                  prepare=copy_image("theirs.nii.gz"))),
        Case("output files", "train fewshot -o IMAGE", command(*TRAIN_FS, "-o", "IMAGE")),
        Case("output files", "train fewshot -o a ProMISe checkpoint",
             command(*TRAIN_FS, "-o", "out/p.ckpt", prepare=put("p.ckpt", promise_ckpt))),
    ]
    out += [Case("checkpoints", f"{kind}: {name}", forged(kind, change)) for kind, name, change in [
        ("fewshot", "NaN decoder weights", fill(float("nan"))),
        ("fewshot", "infinite decoder weights", fill(float("inf"))),
        ("fewshot", "NaN target embedding", lambda s: s["targets"][0].fill_(float("nan"))),
        ("fewshot", "a decoder entry of the wrong shape", lambda s: s["decoder"].update({first(s["decoder"]):
                                                                                          torch.zeros(3, 3)})),
        ("fewshot", "a decoder entry missing", lambda s: s["decoder"].pop(first(s["decoder"]))),
        ("fewshot", "no labels", lambda s: s.update(labels=[])),
        ("fewshot", "labels as text", lambda s: s.update(labels=["liver"])),
        ("fewshot", "negative label", lambda s: s.update(labels=[-1])),
        ("fewshot", "more targets than labels", lambda s: s.update(targets=s["targets"] * 2)),
        ("fewshot", "targets of the wrong width", lambda s: s.update(targets=[torch.zeros(1, 3)])),
        ("fewshot", "decoder not a mapping", lambda s: s.update(decoder=[1, 2])),
        ("fewshot", "an unknown window", lambda s: s.update(window="soft tissue")),
        ("fewshot", "a reversed window", lambda s: s.update(window=(100.0, -100.0))),
        ("fewshot", "NaN presence", lambda s: s.update(presence=float("nan"))),
        ("fewshot", "an unknown backbone", lambda s: s.update(backbone="sam-vit-z")),
        ("fewshot", "other weights, file changed", lambda s: s.update(weights_id="ab" * 32,
                                                                      weights_path="ct.nii.gz")),
        ("fewshot", "other weights, file gone", lambda s: s.update(weights_id="ab" * 32, weights_path="gone.pth")),
        ("fewshot", "a cotrain kind", lambda s: s.update(kind="napari-samed cotrain")),
        ("fewshot", "an unknown kind", lambda s: s.update(kind="someone else's")),
        ("fewshot", "an unknown precision", lambda s: s.update(precision="fp8")),
        ("cotrain", "negative structure value", lambda s: s.update(structures=[["organ", [-1]]])),
        ("cotrain", "structures as text", lambda s: s.update(structures="organ")),
        ("cotrain", "no structures", lambda s: s.update(structures=[])),
        ("cotrain", "an unknown mode", lambda s: s.update(mode="triple")),
        ("cotrain", "a bad jitter", lambda s: s.update(jitter={"organ": "wide"})),
        ("cotrain", "history not a list", lambda s: s.update(history=3)),
        ("cotrain", "NaN decoder weights", fill(float("nan"))),
        ("promise", "a negative crop", lambda s: s["config"].update(crop=-1)),
        ("promise", "an unknown config field", lambda s: s["config"].update(depth=3)),
        ("promise", "config not a mapping", lambda s: s.update(config=[8, 2.0])),
        ("promise", "a NaN learning rate in its config", lambda s: s["config"].update(lr=float("nan"))),
        ("promise", "config of another backbone", lambda s: s["config"].update(backbone="sam-vit-b")),
        ("promise", "a negative epoch", lambda s: s.update(epoch=-1)),
        ("promise", "a model entry of the wrong shape", lambda s: s["model"].update({first(s["model"]):
                                                                                      torch.zeros(1)})),
        ("promise", "NaN model weights", fill(float("nan"), "model")),
        ("promise", "losses as text", lambda s: s.update(losses="low")),
    ]]
    out += [
        Case("checkpoints", "fewshot: NaN weights, digest not updated", forged("fewshot", fill(float("nan")), False)),
        Case("checkpoints", "fewshot: 4 KiB flipped in the middle", damaged_file(flip_middle)),
        Case("checkpoints", "fewshot: truncated to half", damaged_file(lambda p: p.write_bytes(p.read_bytes()[
            :len(p.read_bytes()) // 2]))),
        Case("checkpoints", "random bytes", damaged_file(lambda p: p.write_bytes(np.random.default_rng(0).bytes(
            4096)))),
        Case("checkpoints", "an empty file", damaged_file(lambda p: p.write_bytes(b""))),
        Case("checkpoints", "a list, not a checkpoint", damaged_file(lambda p: torch.save([1, 2, 3], p))),
        Case("checkpoints", "a malicious pickle", damaged_file(lambda p: p.write_bytes(pickle.dumps(Evil())))),
        Case("checkpoints", "fewshot: written before digests (a warning)", forged(
            "fewshot", lambda s: s.pop(DIGEST, None), sign=False), "warn"),
        Case("checkpoints", "promise: resume on another label", command(
            "train", "promise", "IMAGE", "REFERENCE", "-o", "out/p.ckpt", "--label", "1", "--crop", "8",
            "--epochs", "1", prepare=put("p.ckpt", promise_ckpt))),
        Case("checkpoints", "promise: resume with another crop", command(
            "train", "promise", "IMAGE", "REFERENCE", "-o", "out/p.ckpt", "--label", "2", "--crop", "16",
            "--epochs", "1", prepare=put("p.ckpt", promise_ckpt))),
        Case("checkpoints", "segment --trained IMAGE", command("segment", "IMAGE", "--trained", "IMAGE", "-o",
                                                               "out/o.nii.gz")),
        Case("checkpoints", "segment --trained a missing file", command("segment", "IMAGE", "--trained", "gone.ckpt",
                                                                        "-o", "out/o.nii.gz")),
    ]
    fs = ["segment", "IMAGE", "--trained", "out/fs.ckpt", "-o", "out/o.nii.gz"]
    with_fs = put("fs.ckpt", fewshot_ckpt)
    out += [Case("options a method ignores", name, command(*fs, *extra, prepare=with_fs)) for name, extra in [
        ("few-shot with --box", ["--box", BOX]),
        ("few-shot with --box3d", ["--box3d", "1,50,20,3,160,140"]),
        ("few-shot with --point", ["--point", "2,100,80"]),
        ("few-shot with --model sam-vit-b", ["--model", "sam-vit-b"]),
        ("few-shot with --propagate", ["--propagate"]),
        ("few-shot as --method cotrain", ["--method", "cotrain"]),
    ]]
    out += [
        Case("options a method ignores", "ProMISe with --box", command(
            "segment", "IMAGE", "--trained", "out/p.ckpt", "--box", BOX, "-o", "out/o.nii.gz",
            prepare=put("p.ckpt", promise_ckpt))),
        Case("options a method ignores", "--method fewshot without --trained", command(
            "segment", "IMAGE", "--method", "fewshot", "-o", "out/o.nii.gz")),
        Case("options a method ignores", "few-shot with another --window (a warning)", command(
            *fs, "--window", "0,50", prepare=with_fs), "warn", ("out/o.nii.gz",)),
    ]
    tc = ["train", "cotrain", "IMAGE", "REFERENCE", "-o", "out/c.ckpt", "--structures", "organ=1"]
    tp = ["train", "promise", "IMAGE", "REFERENCE", "-o", "out/p.ckpt", "--label", "1"]
    out += [Case("numbers", name, command(*args)) for name, args in [
        ("train cotrain --lr -1", [*tc, "--lr", "-1"]), ("train cotrain --lr nan", [*tc, "--lr", "nan"]),
        ("train cotrain --lr inf", [*tc, "--lr", "inf"]), ("train cotrain --lr 0", [*tc, "--lr", "0"]),
        ("train cotrain --epochs 0", [*tc, "--epochs", "0"]), ("train cotrain --batch 0", [*tc, "--batch", "0"]),
        ("benchmark cotrain --lr nan", [*COTRAIN, "--lr", "nan"]), ("benchmark cotrain --lr -1",
                                                                    [*COTRAIN, "--lr", "-1"]),
        ("train promise --crop -4", [*tp, "--crop", "-4"]), ("train promise --crop 4", [*tp, "--crop", "4"]),
        ("train promise --crops 0", [*tp, "--crops", "0"]), ("train promise --epochs -1", [*tp, "--epochs", "-1"]),
        ("train fewshot --iterations 0", [*TRAIN_FS, "-o", "x.ckpt", "--iterations", "0"]),
        ("evaluate --tolerance -1", ["evaluate", "FILE", "FILE", "--tolerance", "-1"]),
        ("sample --cases 0", ["sample", "--cases", "0", "-o", "DIR"]),
        ("segment --box of three numbers", ["segment", "IMAGE", "--box", "2,1,1", "-o", "o.nii.gz"]),
        ("segment --point a,b,c", ["segment", "IMAGE", "--point", "a,b,c", "-o", "o.nii.gz"]),
        ("segment --window 5,1", ["segment", "IMAGE", "--window", "5,1", "--box", BOX, "-o", "o.nii.gz"]),
    ]]
    out += [
        Case("input data", "4D labels", command("evaluate", "FILE", "out/l4.nii.gz",
                                                prepare=nifti("l4.nii.gz", np.zeros((8, 8, 5, 2), np.uint8)))),
        Case("input data", "labels of another shape", command(*TRAIN_FS[:3], "out/l.nii.gz", *TRAIN_FS[4:], "-o",
                                                               "x.ckpt", prepare=nifti("l.nii.gz", np.zeros((9, 9, 5),
                                                                                                            np.uint8)))),
        Case("input data", "an image of NaN", command("segment", "out/nan.nii.gz", "--box", BOX, "-o", "o.nii.gz",
                                                      prepare=nifti("nan.nii.gz", np.full((8, 8, 5), np.nan,
                                                                                          np.float32)))),
        Case("input data", "a missing image", command("segment", "gone.nii.gz", "--box", BOX, "-o", "o.nii.gz")),
        Case("input data", "a text file as image", command("segment", "out/t.nii.gz", "--box", BOX, "-o", "o.nii.gz",
                                                           prepare=put("t.nii.gz"))),
        Case("input data", "a box outside the volume", command("segment", "IMAGE", "--box", "9,1,1,5,5", "-o",
                                                               "o.nii.gz")),
        Case("input data", "an image given as labels", command(*TRAIN_FS[:3], "IMAGE", *TRAIN_FS[4:], "-o",
                                                                "x.ckpt")),
        Case("input data", "slices outside the volume", command(*TRAIN_FS[:4], "--slices", "1,40", "-o", "x.ckpt")),
        Case("input data", "a malformed dataset.json", command("train", "cotrain", "DIR", "-o", "c.ckpt",
                                                               "--structures", "organ=1",
                                                               prepare=put("dataset.json", b"{not json"))),
        Case("input data", "a missing dataset folder", command("train", "cotrain", "gone/", "-o", "c.ckpt",
                                                               "--structures", "organ=1")),
        Case("input data", "a structure not in the labels", command(*tc[:-1], "organ=7")),
    ]
    out += [Case("session files", name, session_case(change)) for name, change in SESSION_DAMAGE.items()]
    out += [
        Case("kill -9", "during embed", kill_embed, "ok"),
        Case("kill -9", "during train fewshot over its own checkpoint", kill_train, "ok", ("out/fs.ckpt",)),
    ]
    return out


# -- session files --------------------------------------------------------------------------------------------------
def rewrite(path: Path, **entries) -> None:
    """Replace entries of a session file (arrays, or ``meta`` fields through ``meta=dict``)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta.update(entries.pop("meta", {}))
    arrays.update(entries, meta=np.array(json.dumps(meta)))
    np.savez(path, **arrays)


def huge_header(path: Path) -> None:
    """The labels array replaced by a header claiming 10^15 voxels."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<u2", "fortran_order": False,
                                                  "shape": (10**5, 10**5, 10**5)})
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist() if name != "labels.npy"}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in {**entries, "labels.npy": header.getvalue()}.items():
            archive.writestr(name, data)


SESSION_DAMAGE = {
    "an empty file": lambda p: p.write_bytes(b""),
    "a truncated file": lambda p: p.write_bytes(p.read_bytes()[:200]),
    "a header claiming 10^15 voxels": huge_header,
    "current as text": lambda p: rewrite(p, meta={"current": "abc"}),
    "locked as a number": lambda p: rewrite(p, meta={"locked": 5}),
    "hidden as text": lambda p: rewrite(p, meta={"hidden": "all"}),
    "settings as a list": lambda p: rewrite(p, meta={"settings": [1]}),
    "a newer version": lambda p: rewrite(p, meta={"version": 99}),
    "meta not JSON": lambda p: _raw_meta(p, "{not json"),
    "labels as text": lambda p: rewrite(p, labels=np.full((5, 8, 8), "a")),
    "labels with NaN": lambda p: rewrite(p, labels=np.full((5, 8, 8), np.nan)),
    "negative labels": lambda p: rewrite(p, labels=np.full((5, 8, 8), -1)),
    "labels of another shape": lambda p: rewrite(p, labels=np.zeros((4, 8, 8), np.uint16)),
    "points with 2 columns": lambda p: rewrite(p, points=np.zeros((1, 2)), point_positive=np.ones(1, bool),
                                               point_label=np.ones(1, int)),
    "NaN points": lambda p: rewrite(p, points=np.full((1, 3), np.nan), point_positive=np.ones(1, bool),
                                    point_label=np.ones(1, int)),
    "a point without its polarity": lambda p: rewrite(p, points=np.zeros((1, 3)), point_label=np.ones(1, int)),
    "a point without its object": lambda p: rewrite(p, points=np.zeros((1, 3)), point_positive=np.ones(1, bool)),
    "a negative object label": lambda p: rewrite(p, points=np.zeros((1, 3)), point_positive=np.ones(1, bool),
                                                 point_label=np.full(1, -3)),
    "boxes of 3 corners": lambda p: rewrite(p, boxes=np.zeros((1, 3, 3)), box_label=np.ones(1, int)),
    "NaN boxes": lambda p: rewrite(p, boxes=np.full((1, 4, 3), np.nan), box_label=np.ones(1, int)),
}


def _raw_meta(path: Path, text: str) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["meta"] = np.array(text)
    np.savez(path, **arrays)


def session_case(change: Callable[[Path], object]) -> Callable[[Path], Callable]:
    def make(folder: Path) -> Callable:
        path = folder / "ct.nii.gz.samed-session.npz"
        save_session(path, SavedSession(np.zeros((5, 8, 8), np.uint16)))
        change(path)
        return lambda: load_session(path, (5, 8, 8))

    return make


# -- kills ----------------------------------------------------------------------------------------------------------
def kill_embed(folder: Path) -> Kill:
    path = folder / "ct.nii.gz"
    write_volume(VOLUME.data, path, VOLUME)  # the whole sample: embedding it takes long enough to be killed
    cache = folder / "cache"
    argv = ["embed", path, "--cache", cache]

    def check() -> str | None:
        run(argv)  # finishes the killed run's slices and tidies its temporaries
        leftovers = [p.name for p in cache.rglob("*") if p.is_file() and ".tmp" in p.name]
        return f"temporaries left: {leftovers}" if leftovers else None

    return Kill(argv, 10.0, check, argv)


def kill_train(folder: Path) -> Kill:
    image, reference = sample_case(folder)
    (folder / "out").mkdir()
    argv = ["train", "fewshot", image, reference, "--slices", "1,3", "-o", folder / "out" / "fs.ckpt"]
    run([*argv, "--iterations", "2"])
    before = hashlib.sha256((folder / "out" / "fs.ckpt").read_bytes()).hexdigest()

    def check() -> str | None:
        now = hashlib.sha256((folder / "out" / "fs.ckpt").read_bytes()).hexdigest()
        return None if now == before else "the checkpoint changed under a killed run"

    return Kill([*argv, "--iterations", "400"], 12.0, check, [*argv, "--iterations", "2"])


# -- running --------------------------------------------------------------------------------------------------------
def run(argv: list) -> tuple[int, str, str, str | None]:
    """Exit status, stdout, stderr and the traceback of an exception that escaped, of the command in this process."""
    out, err, trace = io.StringIO(), io.StringIO(), None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
        except BaseException:  # noqa: BLE001 - an escaped exception is what the sweep counts
            code, trace = 1, traceback.format_exc()
    return code, out.getvalue(), err.getvalue(), trace


def files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def outcome(case: Case, folder: Path) -> tuple[str, str]:
    """(class, what happened in one line) of one case in a fresh ``folder``."""
    made = case.make(folder)
    before = files(folder)
    if isinstance(made, Kill):
        child = subprocess.Popen([*CLI, *map(str, made.argv)], cwd=folder, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(made.after)
        child.send_signal(signal.SIGKILL)
        child.wait()
        problem = made.check()
        code, _, err, trace = run(made.rerun)
        detail = problem or (trace or err).strip().splitlines()[-1:] or [f"rerun exit {code}"]
        kind = "data loss" if problem else "traceback" if trace else "clean" if code == 0 else "silent"
        return kind, detail if isinstance(detail, str) else detail[0] if detail else ""
    if callable(made):
        try:
            made()
        except SamedError as exc:
            text = str(exc)
            return ("clean" if "\n" not in text else "traceback"), text
        except Exception as exc:  # noqa: BLE001
            return "traceback", f"{type(exc).__name__}: {exc}"
        return "silent", "accepted"
    if case.child:
        done = subprocess.run([*CLI, *map(str, made)], cwd=folder, capture_output=True, text=True,
                              env={k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")})
        code, err = done.returncode, done.stderr
        trace = err if "Traceback" in err or code not in (0, 2) else None
    else:
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            code, _, err, trace = run(made)
        finally:
            os.chdir(cwd)
    after = files(folder)
    lost = [p for p in before if p not in case.owned and before[p] != after.get(p)]
    text = (trace or err).strip().splitlines()
    line = text[-1] if text else f"exit {code}"
    if lost:
        return "data loss", f"changed: {', '.join(lost)}"
    left = [p for p in case.absent if (folder / p).exists()]
    left += [p for p in after if p not in before] if case.expect == "refuse" else []
    if left:
        return "silent", f"left behind: {', '.join(left)}"
    if trace or code not in (0, 2):
        return "traceback", line
    one_line = code == 2 and err.count("\n") == 1 and err.startswith("napari-samed: error: ")
    if case.expect == "refuse":
        return ("clean" if one_line else "silent" if code == 0 else "traceback"), line
    if case.expect == "warn":
        return ("clean" if code == 0 and "napari-samed: warning:" in err else "silent"), line
    return ("clean" if code == 0 else "silent"), line


def main_sweep() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the cases whose category or name holds this text")
    parser.add_argument("--json", type=Path, help="write every case's outcome here")
    parser.add_argument("--start", type=int, default=0, help="begin with this case (from 0)")
    args = parser.parse_args()
    os.environ.pop("DISPLAY", None)  # the demo case: a machine without a display
    os.environ.pop("WAYLAND_DISPLAY", None)
    results = []
    for case in cases()[args.start:]:
        if args.only and args.only not in f"{case.category} {case.name}":
            continue
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            kind, line = outcome(case, Path(tmp))
            hacked = (Path(tmp) / "HACKED").exists()
        if hacked:
            kind, line = "data loss", "the malicious pickle ran"
        results.append({"category": case.category, "case": case.name, "outcome": kind, "said": line[:300],
                        "seconds": round(time.perf_counter() - start, 2)})
        print(f"{kind:10} {case.category:25} {case.name}: {line[:160]}", flush=True)
    counts = Counter(r["outcome"] for r in results)
    print(f"\n{len(results)} cases: " + ", ".join(f"{counts[k]} {k}" for k in ("clean", "traceback", "silent",
                                                                               "data loss")))
    by = Counter((r["category"], r["outcome"]) for r in results)
    print("\n| category | cases | clean | traceback | silent | data loss |\n|---|---|---|---|---|---|")
    for category in dict.fromkeys(r["category"] for r in results):
        row = [by[(category, k)] for k in ("clean", "traceback", "silent", "data loss")]
        print(f"| {category} | {sum(row)} | " + " | ".join(map(str, row)) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main_sweep()
