"""Where gin files are found (a path as given, else the repository's gin_configs/, with or without
`.gin`) and how they are parsed. The command line, sweep specs and notebooks go through here."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from lowres.errors import ConfigError, LowresError, MissingFileError

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


def parse_gin(files: Sequence[str], bindings: Sequence[str] = (), registers: str | None = None, **options) -> None:
    """Parses gin files (looked up in gin_configs/ too) and bindings into a fresh config. `registers` names
    a module to import first that registers every configurable they may bind (the caller's floor, e.g.
    "lowres.jobs" for training; None: what is imported already); `options` go to
    gin.parse_config_files_and_bindings. Bad files or bindings raise ConfigError."""
    paths = [resolve_gin_file(f) for f in files]  # a missing file fails before the slow import below
    import gin

    if registers:
        importlib.import_module(registers)
    # A command run in-process after another (a notebook, a test) starts from a clean, unlocked config.
    with gin.unlock_config():
        gin.clear_config()
        gin.add_config_file_search_path(str(GIN_CONFIG_DIR))  # `include "models/..."` inside gin files
        try:
            gin.parse_config_files_and_bindings(paths, list(bindings), **options)
        except LowresError:
            raise
        except (ValueError, KeyError, SyntaxError) as error:
            text = str(error).strip()
            raise ConfigError("gin config: " + (text.splitlines()[0] if text else type(error).__name__)) from error
