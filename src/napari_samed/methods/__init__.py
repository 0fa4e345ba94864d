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
    "Object3D": ".zero_shot", "ZeroShot": ".zero_shot", "Suggestion": ".next_slice", "suggest": ".next_slice",
}
#: The names the registering modules (`base.REGISTERING`) register, for the CLI's parser (checked by a test).
METHOD_NAMES = ("zero-shot", "cotrain", "fewshot", "promise")
__all__ = sorted([*_WHERE, "METHOD_NAMES"])


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "METHODS":  # the registry is whole only once every method has registered
        return import_module(".base", __name__).complete_registry()
    return getattr(import_module(_WHERE[name], __name__), name)
