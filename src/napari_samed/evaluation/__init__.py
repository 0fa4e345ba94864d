"""Metrics against a reference label and (later) benchmark reports."""

from .metrics import evaluate_masks, per_slice_dsc

__all__ = ["evaluate_masks", "per_slice_dsc"]
