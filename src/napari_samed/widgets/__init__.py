"""Thin napari widgets over the headless core.

Importing this package keeps triton and Mesa's OpenGL from crashing a napari process together (see
`keep_triton_out`), before any widget module pulls in torch.
"""

from __future__ import annotations

import sys
from pathlib import Path


def keep_triton_out(maps: Path = Path("/proc/self/maps")) -> bool:
    """Keep triton and Mesa's LLVM from meeting in this process; True when triton was marked absent.

    torchvision (imported by segment-anything, timm and MONAI) imports ``torch._dynamo``, which imports triton
    if it is installed. triton's bundled LLVM crashes the process (segmentation fault) when it is loaded after
    Mesa's ``libLLVM``, that is, after a napari viewer has drawn with Mesa: the plugin's widgets are docked
    exactly then, and a script that imports them first draws before it loads a model. So: with Mesa's LLVM
    already mapped, triton is marked absent (torch then treats it as not installed; eager CPU and CUDA inference
    and training do not use it); before that, triton is loaded now, first, which is safe. Nothing changes when
    triton is already imported or not installed, or off Linux.
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


keep_triton_out()
