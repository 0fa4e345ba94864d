"""Other engines for LiteMedSAM's encoder, as ratios to today's fp32 path in one process (issue 25's probe).

    .venv/bin/pip install openvino nncf   # optional: without them only the torch candidates run
    flock /tmp/cpu.lock .venv/bin/python benchmarks/encoder_engines.py [--repeats 7] [--dsc]
    flock /tmp/cpu.lock env ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \\
        .venv/bin/python benchmarks/encoder_engines.py          # an AVX2 CPU's kernels

Candidates, each timed on the same random 256² model input in turn (median over ``--repeats`` rounds after two
warm-up calls): the fp32 inference copy (`models.encoder.InferenceEncoder`, the default on CPUs without native
bf16), that copy traced, frozen and optimised by TorchScript, and OpenVINO's CPU plugin compiled from it at f32
and bf16 (bf16 cannot compile when oneDNN is held to AVX2), and at int8 (NNCF's post-training quantisation,
calibrated on 30 real slices of the aorta CT, the abdominal MR and a BraTS T1c, none of them the DeepLesion
cases). Relative embedding error against the fp32 path; with ``--dsc``, each candidate's zero-shot DSC on the
DeepLesion cases with the ground-truth box on every lesion slice (as `benchmarks/embedding.py`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from embedding import DEFAULT_DATA, _cases, box_dsc  # noqa: E402

from napari_samed import read_volume  # noqa: E402
from napari_samed.models import Backbone, load_backbone  # noqa: E402
from napari_samed.models.encoder import InferenceEncoder  # noqa: E402
from napari_samed.models.preprocess import resolve_window, to_model_input  # noqa: E402

CALIBRATION = ("totalseg_aorta_ct/ct_cropped.nii.gz", "totalseg_abdomen_mr/mr.nii.gz",
               "brats2013/brats_2013_pat0003_1_T1c_subtrMeanDivStd.nii.gz")


def calibration_inputs(spec, per_volume: int = 10) -> list[np.ndarray]:
    """Model inputs of ``per_volume`` evenly spaced slices of each `CALIBRATION` volume (automatic window)."""
    out = []
    for name in CALIBRATION:
        data = read_volume(DEFAULT_DATA.parent / name).data
        window = resolve_window("auto", data)
        for z in np.linspace(0, len(data) - 1, per_volume).astype(int):
            out.append(to_model_input(data[z:z + 1], window, spec.image_size, spec.normalize).numpy())
    return out


class Engine:
    """A candidate as a `Backbone` encoder: one slice per call."""

    batch_size = 1

    def __init__(self, run):
        self.run = run

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.run(x[i:i + 1]) for i in range(len(x))]).float()


def candidates(module: torch.nn.Module, x: torch.Tensor, spec) -> dict:
    """name -> function of a (1, 3, S, S) input; OpenVINO's when it is installed and compiles."""
    base = InferenceEncoder(module, torch.device("cpu"), "fp32")
    out = {"torch fp32 (today)": base}
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(
            base.module, x.contiguous(memory_format=torch.channels_last)).eval()))
    out["TorchScript frozen"] = lambda x: frozen(x.contiguous(memory_format=torch.channels_last)).float()
    try:
        import openvino as ov
    except ImportError:
        return out
    start = time.perf_counter()
    model = ov.convert_model(base.module, example_input=x)
    print(f"OpenVINO {ov.__version__}: conversion {time.perf_counter() - start:.1f} s")
    for hint in ("f32", "bf16"):
        try:
            compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                              "PERFORMANCE_HINT": "LATENCY",
                                                              "INFERENCE_NUM_THREADS": torch.get_num_threads()})
        except RuntimeError as exc:
            why = next((line for line in str(exc).splitlines() if "Supported" in line), "see its message")
            print(f"OpenVINO {hint}: does not compile here ({why.strip()[:100]})")
            continue
        out[f"OpenVINO {hint}"] = _infer(compiled)
    try:
        import nncf
    except ImportError:
        return out
    start = time.perf_counter()
    quantised = nncf.quantize(model, nncf.Dataset(calibration_inputs(spec)), model_type=nncf.ModelType.TRANSFORMER)
    print(f"NNCF {nncf.__version__}: int8 quantisation {time.perf_counter() - start:.1f} s")
    out["OpenVINO int8"] = _infer(ov.Core().compile_model(quantised, "CPU", {
        "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": torch.get_num_threads()}))
    return out


def _infer(compiled):
    request = compiled.create_infer_request()
    return lambda x: torch.from_numpy(request.infer([x.numpy()])[0].copy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dsc", action="store_true", help="each candidate's DSC on the DeepLesion cases")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads")
    x = torch.rand(1, 3, 256, 256)
    backbone = load_backbone(precision="fp32")
    paths = candidates(backbone.image_encoder, x, backbone.spec)
    reference = paths["torch fp32 (today)"](x)
    for path in paths.values():
        path(x), path(x)
    times = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, path in paths.items():
            start = time.perf_counter()
            path(x)
            times[name].append(time.perf_counter() - start)
    today = statistics.median(times["torch fp32 (today)"])
    print("| path | s/slice | ratio to today's fp32 | relative embedding error |\n|---|---|---|---|")
    for name, path in paths.items():
        seconds = statistics.median(times[name])
        error = float((path(x) - reference).norm() / reference.norm())
        print(f"| {name} | {seconds:.3f} | {seconds / today:.2f} | {error:.1e} |")
    if args.dsc:
        cases = _cases(DEFAULT_DATA)
        print(f"\n| path | {' | '.join(name for name, _, _ in cases)} | max abs difference to fp32 |")
        print(f"|---|{'---|' * (len(cases) + 1)}")
        exact = None
        for name, path in paths.items():
            engine = Backbone(backbone.spec, backbone.model, backbone.weights_id, "cpu", precision="fp32",
                              encoder=Engine(path))
            scores = box_dsc(engine, cases)
            exact = exact or scores
            print(f"| {name} | {' | '.join(f'{v:.4f}' for v in scores)} "
                  f"| {max(abs(a - b) for a, b in zip(scores, exact, strict=True)):.4f} |")


if __name__ == "__main__":
    main()
