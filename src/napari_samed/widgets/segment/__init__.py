"""The Segment widget, split by concern: the form (`form`), each image's state (`state`) and layers (`layers`), the
session files (`persistence`), the objects' colours (`styling`) and the widget that wires them to the controller
(`widget`)."""

from .widget import SegmentWidget

__all__ = ["SegmentWidget"]
