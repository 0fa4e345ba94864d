"""Segmentation methods, listed in a registry (`METHODS`) by the CLI and the widgets."""

from ..tasks import Progress, Task, run_task
from .base import METHODS, PROMPT_KINDS, Method, get_method, register
from .cotrain import CoTrain
from .fewshot import FewShot
from .promise import Promise
from .prompts import BoxPrompt3D, ObjectPrompt3D, Prompt, SlicePrompt, check_prompts, group_prompts
from .propagation import DEFAULT_STOP, SliceQuality, StopRule
from .trained import TrainedMethod, open_trained, trained_class
from .zero_shot import Object3D, ZeroShot

__all__ = [
    "METHODS",
    "PROMPT_KINDS",
    "DEFAULT_STOP",
    "BoxPrompt3D",
    "CoTrain",
    "FewShot",
    "Method",
    "Object3D",
    "ObjectPrompt3D",
    "Progress",
    "Promise",
    "Prompt",
    "SlicePrompt",
    "SliceQuality",
    "StopRule",
    "Task",
    "TrainedMethod",
    "ZeroShot",
    "check_prompts",
    "get_method",
    "open_trained",
    "group_prompts",
    "register",
    "run_task",
    "trained_class",
]
