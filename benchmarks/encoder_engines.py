"""Other engines for LiteMedSAM's encoder, as ratios to today's fp32 path in one process (issue 25's probe).

    .venv/bin/pip install openvino   # optional: without it only the torch candidates run
    flock /tmp/cpu.lock .venv/bin/python benchmarks/encoder_engines.py [--repeats 7]
    flock /tmp/cpu.lock env ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \\
        .venv/bin/python benchmarks/encoder_engines.py          # an AVX2 CPU's kernels

Candidates, each timed on the same random 256² model input in turn (median over ``--repeats`` rounds after two
warm-up calls): the fp32 inference copy (`models.encoder.InferenceEncoder`, the default on CPUs without native
bf16), that copy traced, frozen and optimised by TorchScript, and OpenVINO's CPU plugin compiled from it at f32
and bf16 (bf16 cannot compile when oneDNN is held to AVX2). Relative embedding error against the fp32 path.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from napari_samed.models import load_backbone
from napari_samed.models.encoder import InferenceEncoder


def candidates(module: torch.nn.Module, x: torch.Tensor) -> dict:
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
        request = compiled.create_infer_request()
        out[f"OpenVINO {hint}"] = (lambda r: lambda x: torch.from_numpy(r.infer([x.numpy()])[0].copy()))(request)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads")
    x = torch.rand(1, 3, 256, 256)
    paths = candidates(load_backbone(precision="fp32").image_encoder, x)
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


if __name__ == "__main__":
    main()
