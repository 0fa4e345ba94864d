"""Thin napari widgets over the headless core."""
