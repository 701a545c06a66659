"""Where gin files are found: a path as given, else the repository's gin_configs/ (with or without
`.gin`). The command line and sweep specs look names up the same way."""

from __future__ import annotations

from pathlib import Path

from lowres.errors import MissingFileError

GIN_CONFIG_DIR = Path(__file__).resolve().parents[1] / "gin_configs"


def find_gin_file(name: str) -> Path | None:
    for candidate in (Path(name), GIN_CONFIG_DIR / name, GIN_CONFIG_DIR / f"{name}.gin"):
        if candidate.is_file():
            return candidate
    return None


def resolve_gin_file(name: str) -> str:
    found = find_gin_file(name)
    if found is None:
        raise MissingFileError(f"gin file {name!r} not found (looked in the current directory and {GIN_CONFIG_DIR})")
    return str(found)
