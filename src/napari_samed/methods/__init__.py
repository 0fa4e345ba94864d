"""Segmentation methods, listed in a registry (`METHODS`) by the CLI and the widgets.

The names below load their modules on first use (PEP 562): ``napari_samed.methods.prompts`` stays light, and
`METHOD_NAMES` lets the CLI's parser list the methods without importing them (torch).
"""

from importlib import import_module

_WHERE = {
    "Progress": "..tasks", "Task": "..tasks", "run_task": "..tasks",
    "METHODS": ".base", "PROMPT_KINDS": ".prompts", "Method": ".base", "get_method": ".base", "register": ".base",
    "CoTrain": ".cotrain", "FewShot": ".fewshot", "Promise": ".promise",
    "BoxPrompt3D": ".prompts", "ObjectPrompt3D": ".prompts", "Prompt": ".prompts", "SlicePrompt": ".prompts",
    "check_prompts": ".prompts", "group_prompts": ".prompts",
    "DEFAULT_STOP": ".propagation", "SliceQuality": ".propagation", "StopRule": ".propagation",
    "TrainedMethod": ".trained", "open_trained": ".trained", "trained_class": ".trained",
    "Object3D": ".zero_shot", "ZeroShot": ".zero_shot",
}
#: The modules whose import registers a method in `METHODS`, and the names they register (checked by a test).
_REGISTERING = (".zero_shot", ".cotrain", ".fewshot", ".promise")
METHOD_NAMES = ("zero-shot", "cotrain", "fewshot", "promise")
__all__ = sorted([*_WHERE, "METHOD_NAMES"])


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in ("METHODS", "get_method"):
        for module in _REGISTERING:  # the registry is whole only once every method has registered
            import_module(module, __name__)
    return getattr(import_module(_WHERE[name], __name__), name)
