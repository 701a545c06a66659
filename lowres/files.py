"""Writing files so that a crash or kill mid-write leaves the previous complete file, never half a one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lowres.errors import DataError, MissingFileError


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str | os.PathLike, data: str | bytes, *, durable: bool = True) -> Path:
    """Writes `data` (text as UTF-8) to `path` through a temporary file in the same directory and
    `os.replace`; parents are created. The file gets the mode of the file it replaces, else the usual
    mode for new files (0666 minus the umask; temporary files would otherwise stay owner-only).
    `durable` flushes the bytes to disk before the rename, so a power loss cannot leave an empty file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    mode = path.stat().st_mode & 0o7777 if path.exists() else _default_mode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class AtomicFile:
    """A file written in pieces that appears at `path` only when `commit` is called: the bytes go to a
    temporary file beside it, renamed over `path` on commit (mode as in write_atomic); `abort` (or a
    crash) leaves `path` as it was. For outputs too large to hold in memory (token arrays)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.tmp = Path(tmp)
        self.handle = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.handle.write(data)

    @property
    def closed(self) -> bool:
        return self.handle.closed

    def commit(self, *, durable: bool = True) -> Path:
        mode = self.path.stat().st_mode & 0o7777 if self.path.exists() else _default_mode()
        self.handle.flush()
        if durable:
            os.fsync(self.handle.fileno())
        self.handle.close()
        os.chmod(self.tmp, mode)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


def move_atomic(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Renames a complete file onto `target` (same filesystem): readers see the old file or the new one."""
    os.replace(source, target)
    return Path(target)


def write_json(path: str | os.PathLike, value: Any, *, indent: int | None = 2) -> Path:
    """`value` as JSON (UTF-8, non-ASCII kept, newline-terminated), written atomically."""
    return write_atomic(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """The JSON in `path`; a missing or unparsable file raises a one-line error naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise MissingFileError(f"{path} not found ({what})") from error
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({what}): {error.reason} at byte {error.start}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path} is not valid JSON ({what}): {error.msg} at line {error.lineno} column {error.colno}; "
            "restore it from a copy or remove it"
        ) from error


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """A directory written in full before it appears at `path`: the body fills a temporary sibling,
    which then replaces `path` (an older `path` is moved aside first and removed after). A crash
    inside the body leaves `path` as it was; one between the two renames leaves the older copy beside
    it as `<name>.old-<pid>`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    os.chmod(scratch, _default_mode() | 0o111)  # a directory: readable and searchable like a new one
    for file in scratch.rglob("*"):  # writers that create owner-only files (safetensors) get the usual mode
        if file.is_file():
            os.chmod(file, _default_mode())
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(scratch, path)
    shutil.rmtree(old, ignore_errors=True)
