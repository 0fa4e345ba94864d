"""Checks made before any work starts, so that an output never lands on a user's file or fails at the end."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import SamedError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it; `SamedError` naming ``what`` otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SamedError(f"{what} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise SamedError(f"cannot write to {what} {folder}: {exc.strerror or exc}") from None
    return folder


def check_output_file(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                      is_ours: Callable[[Path], bool] = lambda _path: False, what: str = "output",
                      overwrite: bool = False) -> Path:
    """`SamedError` unless ``path`` can take a new output: not a folder, not one of the command's ``inputs``, not
    an existing file other than an earlier output of the same kind (``is_ours``) unless ``overwrite``, and in a
    folder that can be written."""
    path = Path(path)
    if path.is_dir():
        raise SamedError(f"{path} is a folder; give the {what} a file name")
    for source in filter(None, inputs):
        if _same_file(path, Path(source)) or path.resolve() == Path(source).resolve():
            raise SamedError(f"{path} is an input of this command; write the {what} to another file")
    if path.exists() and not overwrite and not is_ours(path):
        raise SamedError(f"{path} exists and is not a napari-samed {what}; refusing to replace it "
                         f"(choose another name, or pass --overwrite)")
    check_writable_folder(path.parent, "folder")
    return path
