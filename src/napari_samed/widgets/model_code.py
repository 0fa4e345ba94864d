"""Loading the model code (torch, the SAM family) into a napari process: off the GUI thread, and without letting
triton and Mesa's OpenGL crash the process together (`keep_triton_out`)."""

from __future__ import annotations

import sys
from pathlib import Path


def keep_triton_out(maps: Path = Path("/proc/self/maps")) -> bool:
    """Keep triton and Mesa's LLVM from meeting in this process; True when triton was marked absent.

    torchvision (imported by segment-anything, timm and MONAI) imports ``torch._dynamo``, which imports triton
    if it is installed. triton's bundled LLVM crashes the process (segmentation fault) when it is loaded after
    Mesa's ``libLLVM``, that is, after a napari viewer has drawn with Mesa. So: with Mesa's LLVM already mapped,
    triton is marked absent (torch then treats it as not installed; eager CPU and CUDA inference and training do
    not use it); before that, triton is loaded now, first, which is safe. Nothing changes when triton is already
    imported or not installed, or off Linux.

    Called where this plugin loads torch into a napari process (`import_model_code`, the widgets' workers) and by
    scripts that open a viewer and load models (the demo, the tests), never at import: a napari session that
    does not use the plugin's models is left as it is.
    """
    if "triton" in sys.modules:
        return False
    try:
        mapped = maps.read_text()
    except OSError:
        return False
    if "libLLVM" not in mapped:
        try:
            import triton  # noqa: F401  (before Mesa's LLVM: they coexist)
        except ImportError:
            pass
        return False
    sys.modules["triton"] = None  # `import triton` now raises ImportError
    return True


def import_model_code() -> None:
    """Import the model code (torch, the SAM family), triton kept out first: run in a thread while the user draws
    the first prompt, so that opening a widget does not wait for it, and the first result does not either."""
    keep_triton_out()
    from ..methods import propagation, trained, zero_shot  # noqa: F401
    from ..models import backbone, cache  # noqa: F401


def interactive_use(trained: str) -> str | None:
    """What a trained model file does in the Segment widget (`TrainedMethod.interactive`)."""
    keep_triton_out()
    from ..methods.trained import trained_class

    return trained_class(trained).interactive
