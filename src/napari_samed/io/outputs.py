"""Checks made before any work starts, so that an output never lands on a user's file or fails at the end."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import SamedError
from .atomic import atomic_path, file_sha256


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


class OutputFolder:
    """A command's output folder, which it writes only new files into or files it wrote there itself.

    Before any work, `claim` names the files (and the subfolders, with everything in them) the command will write
    and refuses, in one line, the first that is in the way: a file that napari-samed did not write there, or that
    changed since (unless ``overwrite``). Once done, `record` lists what the command wrote, with its SHA-256, in
    `OutputFolder.RECORD` in the folder; nothing else counts as its own (not even a volume marked as written by
    napari-samed: the user may have put it there). As a context manager
    (``with OutputFolder(...).claim(...):``) it records on the way out, or, when the work failed and left the
    folder it made empty, removes that folder.
    """

    RECORD = ".napari-samed-outputs.json"

    def __init__(self, folder: str | os.PathLike, what: str, overwrite: bool = False):
        self.folder, self.what, self.overwrite = Path(folder), what, overwrite
        self._claimed: dict[str, tuple | None] = {}  # name -> (size, mtime) before the command, None if absent
        self._folders: list[str] = []
        self._made = False  # whether `claim` created the folder

    def _recorded(self) -> dict[str, str]:
        try:
            return json.loads((self.folder / self.RECORD).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def _ours(self, path: Path, recorded: dict[str, str]) -> bool:
        name = path.relative_to(self.folder).as_posix()
        return name in recorded and recorded[name] == file_sha256(path)

    def claim(self, names: Iterable[str], folders: Iterable[str] = ()) -> OutputFolder:
        """Check that the command may write ``names`` and fill ``folders`` (relative to the folder); `SamedError`
        for the first file in the way. Writes nothing but the folder itself."""
        if self.folder.exists() and not self.folder.is_dir():
            raise SamedError(f"{self.what} {self.folder} is a file, not a folder")
        recorded = self._recorded()
        self._folders = list(folders)
        paths = [self.folder / name for name in names]
        paths += [p for sub in self._folders if (self.folder / sub).is_dir()
                  for p in sorted((self.folder / sub).rglob("*")) if not p.is_dir()]
        for path in paths:
            if path.is_dir():
                raise SamedError(f"{path} is a folder where {self.what} needs a file; choose another folder")
            if path.exists() and not self.overwrite and not self._ours(path, recorded):
                raise SamedError(f"{path} is in the way: napari-samed did not write it there (or it changed since); "
                                 f"refusing to replace it (choose another folder, or pass --overwrite)")
        self._claimed = {p.relative_to(self.folder).as_posix(): _stat(p) for p in paths}
        self._made = not self.folder.exists()
        check_writable_folder(self.folder, self.what)
        return self

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if error is not None and self._made and not any(self.folder.iterdir()):
            self.folder.rmdir()
        else:
            self.record()

    def record(self) -> None:
        """List the claimed files the command wrote, or that were its own already, as its own."""
        recorded = self._recorded()
        files = dict(self._claimed)  # and the files that appeared in the claimed subfolders, new to the command:
        for sub in self._folders:
            for p in (self.folder / sub).rglob("*") if (self.folder / sub).is_dir() else ():
                if not p.is_dir():
                    files.setdefault(p.relative_to(self.folder).as_posix(), None)
        for name, before in files.items():
            path = self.folder / name
            if path.is_file() and (_stat(path) != before or name in recorded):
                recorded[name] = file_sha256(path)
        with atomic_path(self.folder / self.RECORD) as tmp:
            tmp.write_text(json.dumps({"written by": "napari-samed", "files": recorded}, indent=1))


def _stat(path: Path) -> tuple | None:
    """A file's size and modification time, None when it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns
