"""Training data shared by the learning methods: labelled datasets, structures, splits and 2D slices."""

from .datasets import Case, Dataset, Structure, parse_structures, split_indices
from .slices import SliceSplits, TrainingSlice, load_slices

__all__ = ["Case", "Dataset", "SliceSplits", "Structure", "TrainingSlice", "load_slices", "parse_structures",
           "split_indices"]
