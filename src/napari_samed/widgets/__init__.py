"""Thin napari widgets over the headless core: Segment (`segment/`), Few-shot, Compare, each docked by napari.yaml.

The model code is loaded off the GUI thread (`model_code`), where triton is kept away from Mesa's OpenGL.
"""
