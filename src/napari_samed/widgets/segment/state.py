"""`ImageState`: what the Segment widget holds for one image layer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from napari.layers import Labels, Points, Shapes

from ...interactive import InteractiveSession


@dataclass(eq=False)
class ImageState:
    """One image's session, its result and prompt layers (None until made, or once removed), the file its session is
    saved to (found once), and what was last saved (`saved`: a signature of the state, so that an unchanged state
    is not written again)."""

    session: InteractiveSession
    result: Labels | None = None
    points: Points | None = None
    boxes: Shapes | None = None
    file: Path | None = None
    saved: tuple | None = None
    prompt_edits: int = 0  # counts the edits of the prompt layers

    def forget_layer(self, layer) -> None:
        """Drop the reference to a removed result or prompt layer."""
        for name in ("result", "points", "boxes"):
            if getattr(self, name) is layer:
                setattr(self, name, None)

    def owns(self, layer) -> bool:
        return layer is not None and layer in (self.result, self.points, self.boxes)
