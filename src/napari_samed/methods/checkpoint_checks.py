"""What a trained checkpoint must pass before use: the digest of its content, its schema, finite weights.

A schema maps each entry to a check: a function of the entry's value that returns what is wrong with it (a short
phrase) or None. The combinators below build them; `first_problem` runs a schema over a checkpoint.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping

import torch

#: The entry holding `content_digest` of all the others.
DIGEST = "digest"

Check = Callable[[object], "str | None"]


def content_digest(state: Mapping) -> str:
    """SHA-256 of a checkpoint's entries (tensors by dtype, shape and bytes), the `DIGEST` entry left out."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != DIGEST})
    return digest.hexdigest()


def _feed(digest, value) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, Mapping):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(repr((type(value).__name__, value)).encode())


def non_finite(state: Mapping, where: str = "") -> str | None:
    """The name of the first floating-point tensor in ``state`` holding NaN or infinity, or None."""
    items = state.items() if isinstance(state, Mapping) else enumerate(state)
    for key, value in items:
        name = f"{where}.{key}" if where else str(key)
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return name
        elif isinstance(value, Mapping | list | tuple):
            found = non_finite(value, name)
            if found:
                return found
    return None


def first_problem(state: Mapping, schema: Mapping[str, Check]) -> tuple[str, str] | None:
    """The first (entry, what is wrong) of ``state`` under ``schema``, or None; absent entries are not checked."""
    for key, check in schema.items():
        if key in state:
            problem = check(state[key])
            if problem:
                return key, problem
    return None


# -- checks ------------------------------------------------------------------------------------------------------
def text(value) -> str | None:
    return None if isinstance(value, str) else f"is {_kind(value)}, not text"


def whole(low: int | None = None) -> Check:
    """An integer (not a bool), at least ``low``."""

    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"is {_kind(value)}, not a whole number"
        if low is not None and value < low:
            return f"is {value}, below {low}"
        return None

    return check


def number(low: float | None = None, high: float | None = None, finite: bool = True) -> Check:
    """A real number in [``low``, ``high``], finite unless ``finite`` is False."""

    def check(value):
        if isinstance(value, bool) or not isinstance(value, int | float) or finite and not math.isfinite(value):
            return f"is {_kind(value)}, not a finite number"
        if (low is not None and value < low) or (high is not None and value > high):
            return f"is {value:g}, out of range"
        return None

    return check


def one_of(*choices) -> Check:
    def check(value):
        return None if value in choices else f"is {value!r}, not one of {', '.join(map(repr, choices))}"

    return check


def optional(inner: Check) -> Check:
    def check(value):
        return None if value is None else inner(value)

    return check


def list_of(item: Check, min_len: int = 0, max_len: int | None = None, unique: bool = False) -> Check:
    """A list or tuple of ``min_len`` to ``max_len`` items, each passing ``item`` (distinct when ``unique``)."""

    def check(value):
        if not isinstance(value, list | tuple):
            return f"is {_kind(value)}, not a list"
        if len(value) < min_len or (max_len is not None and len(value) > max_len):
            return f"has {len(value)} items"
        for i, v in enumerate(value):
            problem = item(v)
            if problem:
                return f"item {i} {problem}"
        if unique and len(set(map(repr, value))) != len(value):
            return "repeats an item"
        return None

    return check


def items(*each: Check) -> Check:
    """A list or tuple of exactly these items, each passing its own check."""

    def check(value):
        if not isinstance(value, list | tuple) or len(value) != len(each):
            return f"is {_kind(value)}, not a list of {len(each)}"
        return next((f"item {i} {p}" for i, p in enumerate(c(v) for c, v in zip(each, value, strict=True)) if p),
                    None)

    return check


def mapping(values: Check, keys: Check = text) -> Check:
    """A dict whose keys pass ``keys`` and values pass ``values``."""

    def check(value):
        if not isinstance(value, Mapping):
            return f"is {_kind(value)}, not a mapping"
        for key, v in value.items():
            problem = keys(key) or values(v)
            if problem:
                return f"[{key!r}] {problem}"
        return None

    return check


def tensor(ndim: int | None = None, last: int | None = None) -> Check:
    """A tensor of ``ndim`` dimensions, the last of size ``last``."""

    def check(value):
        if not isinstance(value, torch.Tensor):
            return f"is {_kind(value)}, not a tensor"
        if ndim is not None and value.ndim != ndim or last is not None and (not value.ndim or value.shape[-1] != last):
            return f"has shape {tuple(value.shape)}"
        return None

    return check


def anything(value) -> None:
    return None


#: Trained weights: parameter name -> tensor.
WEIGHTS = mapping(tensor())


def _kind(value) -> str:
    return repr(value) if isinstance(value, int | float | str | type(None)) and len(repr(value)) < 30 \
        else f"a {type(value).__name__}"
