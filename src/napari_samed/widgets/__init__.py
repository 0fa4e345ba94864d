"""Thin napari widgets over the headless core.

Importing this package keeps triton out of a napari process that is already drawing with Mesa's OpenGL (see
`keep_triton_out`), before any widget module pulls in torch.
"""

from __future__ import annotations

import sys
from pathlib import Path


def keep_triton_out(maps: Path = Path("/proc/self/maps")) -> bool:
    """Stop this process from importing triton when Mesa's LLVM is already loaded; True when it did.

    torchvision (imported by segment-anything, timm and MONAI) imports ``torch._dynamo``, which imports triton
    if it is installed. triton's bundled LLVM and Mesa's ``libLLVM`` crash the process (segmentation fault) when
    triton is loaded after a napari viewer has drawn with Mesa: the plugin's widgets are docked exactly then.
    Marking triton absent makes torch treat it as not installed; eager CPU and CUDA inference and training
    do not use it. Elsewhere (no Mesa LLVM mapped, triton already imported, or not Linux) nothing changes.
    """
    if "triton" in sys.modules:
        return False
    try:
        mapped = maps.read_text()
    except OSError:
        return False
    if "libLLVM" not in mapped:
        return False
    sys.modules["triton"] = None  # `import triton` now raises ImportError
    return True


keep_triton_out()
