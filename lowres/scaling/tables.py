"""Numeric columns of a CSV table (a sweep's results.csv: one row per run) for the power-law fits."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lowres.errors import DataError, MissingFileError, UsageError


def read_columns(path: str | Path, columns: Sequence[tuple[str, str]]) -> list[np.ndarray]:
    """The named columns as float arrays, over the rows where every one of them has a value.

    `columns` pairs each column name with the option that named it (for the error message). Rows with
    an empty cell in any of them are skipped (a run that failed or has no score yet), and so are rows
    whose `state` column (a sweep's results.csv) says anything but "done": the last value of a run still
    going is not its final one. Several rows with the same sizes (seeds) are all kept. A cell that is
    not a number, or a size that is not positive, is an error naming the row.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            rows = list(reader)
    except FileNotFoundError as error:
        raise MissingFileError(f"{path} not found; give --table the CSV of a sweep (one row per run)") from error
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path} is not a readable CSV file ({error})") from error
    for name, option in columns:
        if name not in header:
            raise UsageError(
                f"{option}={name}: {path} has no column {name!r}; its columns: {', '.join(header) or 'none'}"
            )
    values: list[list[float]] = [[] for _ in columns]
    for number, row in enumerate(rows, 2):  # line 1 is the header
        cells = [(row.get(name) or "").strip() for name, _ in columns]
        if not all(cells) or row.get("state", "done") != "done":
            continue
        parsed = []
        for cell, (name, option) in zip(cells, columns):
            try:
                value = float(cell)
            except ValueError:
                raise DataError(f"{path}:{number}: column {name!r} holds {cell!r}, not a number") from None
            if not math.isfinite(value) or value <= 0:
                raise DataError(f"{path}:{number}: column {name!r} holds {cell}; a loss or size must be positive")
            parsed.append(value)
        for column, value in zip(values, parsed):
            column.append(value)
    return [np.array(column) for column in values]
