"""A sweep spec (YAML) and its expansion into named runs.

    gin_files: [smoke.gin]                 # every run's gin files (relative to the spec, or in gin_configs/)
    bindings:                              # gin bindings every run shares
      TrainConfig.num_steps: 100
    arms:                                  # optional named variants, each with its own files and bindings
      - name: ul2
        bindings: {DataConfig.objective: r_and_s}
      - name: causal
        gin_files: [objectives/causal_lm.gin]
    grid:                                  # every combination of these values
      OptimizerConfig.learning_rate: [1.0e-3, 3.0e-3]
    zip:                                   # lists of one length, varied together
      ModelConfig.preset: [tiny, mini]
      DataConfig.batch_size: [8, 4]
    seeds: [0, 1, 2]                       # bound to each of `seed_binding` (default TrainConfig.seed;
                                           # [TrainConfig.seed, DataConfig.seed] varies the data order too)
    name: "{arm}-lr{OptimizerConfig.learning_rate}-s{seed}"   # optional; the default names every varied value
    metrics: {loss: min, eval/loss: min, eval/chrf: max}      # or a list (direction guessed from the name)

The runs are arms x grid x zip x seeds. A run's identity is a hash of its gin file names and bindings
(not the files' contents, so fixing a comment in a gin file does not orphan finished runs); a rerun
whose expansion gives an existing name a different hash is refused, so results never mix settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lowres.errors import ConfigError, DataError, MissingFileError
from lowres.gin_files import GIN_CONFIG_DIR, find_gin_file

SPEC_KEYS = ("gin_files", "bindings", "arms", "grid", "zip", "seeds", "seed_binding", "name", "metrics")
ARM_KEYS = ("name", "gin_files", "bindings")
DEFAULT_METRICS = ("loss", "eval/loss", "eval/bits_per_byte")
# Metrics where larger is better; every other metric is a loss (smaller is better).
HIGHER_IS_BETTER = ("chrf", "bleu", "acc", "accuracy", "tokens_per_sec", "mfu")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._=+-]+")
# YAML 1.1 (PyYAML) reads 1e-3 as a string (it wants 1.0e-3); a sweep means the number.
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _numbers(value: Any) -> Any:
    """`value` with strings such as '1e-3' (YAML 1.1 leaves them strings) read as floats."""
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value):
        return float(value)
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _numbers(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    gin_files: tuple[str, ...] = ()
    bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep: what `lowres train` gets, and the swept values that tell it apart."""

    name: str
    index: int
    gin_files: tuple[str, ...]
    bindings: Mapping[str, Any]  # every binding, shared ones included, in order
    swept: Mapping[str, Any]  # the values this run varies: arm, grid and zip keys, seed

    @property
    def run_hash(self) -> str:
        identity = json.dumps({"gin_files": list(self.gin_files), "bindings": dict(self.bindings)},
                              sort_keys=True, default=str)
        return hashlib.sha256(identity.encode()).hexdigest()[:12]

    def gin_arguments(self) -> list[str]:
        return [f"--gin_file={name}" for name in self.gin_files] + [
            f"--gin.{key}={gin_literal(value)}" for key, value in self.bindings.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index, "hash": self.run_hash, "gin_files": list(self.gin_files),
                "bindings": dict(self.bindings), "swept": dict(self.swept)}


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    path: Path
    gin_files: tuple[str, ...] = ()
    bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    arms: tuple[Arm, ...] = ()
    grid: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    zipped: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    seed_binding: tuple[str, ...] = ("TrainConfig.seed",)
    name_template: str | None = None
    metrics: Mapping[str, str] = dataclasses.field(default_factory=dict)  # metric -> "min" | "max"

    @property
    def swept_keys(self) -> list[str]:
        keys = (["arm"] if self.arms else []) + list(self.grid) + list(self.zipped)
        return keys + (["seed"] if len(self.seeds) > 1 else [])


def gin_literal(value: Any) -> str:
    """A YAML value as gin source: strings quoted unless they are gin references (@name, %MACRO)."""
    if isinstance(value, str):
        return value if value.startswith(("@", "%")) else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(gin_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{gin_literal(k)}: {gin_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def metric_direction(name: str) -> str:
    return "max" if any(word in name.lower() for word in HIGHER_IS_BETTER) else "min"


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{where} must be a mapping of gin binding names to values")
    return _numbers(value)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of gin file names")
    return tuple(value)


def _resolve_files(names: Sequence[str], spec_dir: Path, where: str) -> tuple[str, ...]:
    """Gin files next to the spec become absolute paths; other names are left to `lowres train`
    (the current directory, then gin_configs/), after checking they exist there."""
    resolved = []
    for name in names:
        beside = spec_dir / name
        if beside.is_file():
            resolved.append(str(beside.resolve()))
        elif find_gin_file(name) is not None:
            resolved.append(name)
        else:
            raise MissingFileError(f"{where}: gin file {name!r} not found beside the spec, here or in {GIN_CONFIG_DIR}")
    return tuple(resolved)


def load_spec(path: str | Path) -> SweepSpec:
    """Reads and checks a sweep spec; every problem is one line naming the spec file and the key."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"sweep spec {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise DataError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a sweep spec is a YAML mapping with keys {', '.join(SPEC_KEYS)}")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; a sweep spec may have {', '.join(SPEC_KEYS)}")
    spec_dir = path.parent
    arms = []
    for number, arm in enumerate(data.get("arms") or []):
        where = f"{path}: arms[{number}]"
        if not isinstance(arm, Mapping) or not isinstance(arm.get("name"), str) or set(arm) - set(ARM_KEYS):
            raise ConfigError(f"{where} must be a mapping with a name and optional gin_files and bindings")
        arms.append(Arm(arm["name"], _resolve_files(_names(arm.get("gin_files"), where), spec_dir, where),
                        dict(_mapping(arm.get("bindings"), f"{where}.bindings"))))
    if len({arm.name for arm in arms}) != len(arms):
        raise ConfigError(f"{path}: arms must have different names")
    grid = dict(_mapping(data.get("grid"), f"{path}: grid"))
    zipped = dict(_mapping(data.get("zip"), f"{path}: zip"))
    for key, values in [*grid.items(), *zipped.items()]:
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: {key} must list one or more values to sweep")
    if len({len(v) for v in zipped.values()}) > 1:
        lengths = ", ".join(f"{k}: {len(v)}" for k, v in zipped.items())
        raise ConfigError(f"{path}: the zip lists must have one length ({lengths})")
    seeds = data.get("seeds", [0])
    seeds = [seeds] if isinstance(seeds, int) else seeds
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"{path}: seeds must be a list of integers >= 0, e.g. [0, 1, 2]")
    metrics = data.get("metrics") or list(DEFAULT_METRICS)
    if isinstance(metrics, list) and all(isinstance(m, str) for m in metrics):
        metrics = {m: metric_direction(m) for m in metrics}
    if not isinstance(metrics, Mapping) or not all(v in ("min", "max") for v in metrics.values()):
        raise ConfigError(f"{path}: metrics must be a list of metric names or a mapping of names to min/max")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{path}: name must be a template string such as \"lr{{OptimizerConfig.learning_rate}}-s{{seed}}\"")
    shared = _mapping(data.get("bindings"), f"{path}: bindings")
    swept_keys = set(grid) | set(zipped)
    for key in swept_keys & set(shared):
        raise ConfigError(f"{path}: {key} is both bound in `bindings` and swept; keep one")
    return SweepSpec(
        path=path.resolve(),
        gin_files=_resolve_files(_names(data.get("gin_files"), f"{path}: gin_files"), spec_dir, f"{path}: gin_files"),
        bindings=dict(shared), arms=tuple(arms), grid=grid, zipped=zipped, seeds=tuple(seeds),
        seed_binding=_seed_binding(data.get("seed_binding", "TrainConfig.seed"), path), name_template=name,
        metrics=dict(metrics),
    )


def _seed_binding(value: Any, path: Path) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and "." in n for n in names):
        raise ConfigError(f"{path}: seed_binding must name one or more gin bindings, e.g. [TrainConfig.seed, DataConfig.seed]")
    return tuple(names)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(_short(v) for v in value)
    return str(value).lstrip("@%")


def _default_name(swept: Mapping[str, Any]) -> str:
    parts = []
    for key, value in swept.items():
        if key == "arm":
            parts.append(_short(value))
        elif key == "seed":
            parts.append(f"s{value}")
        else:
            parts.append(f"{key.rsplit('.', 1)[-1]}={_short(value)}")
    return "-".join(parts) or "run"


def _format_name(template: str, swept: Mapping[str, Any], spec: SweepSpec) -> str:
    values = {key: _short(value) for key, value in swept.items()}
    values.setdefault("seed", str(swept.get("seed", spec.seeds[0])))
    try:
        return re.sub(r"\{([^{}]+)\}", lambda m: values[m.group(1)], template)
    except KeyError as error:
        raise ConfigError(f"{spec.path}: name template {template!r} uses {{{error.args[0]}}}, which the sweep does "
                          f"not vary; use one of {', '.join(values)}") from None


def expand(spec: SweepSpec) -> list[Run]:
    """The sweep's runs in a stable order: arms, then the grid (last key fastest), zip, seeds."""
    arms = spec.arms or (Arm(""),)
    grid_rows = [dict(zip(spec.grid, values)) for values in itertools.product(*spec.grid.values())]
    zip_rows = [dict(zip(spec.zipped, values)) for values in zip(*spec.zipped.values())] or [{}]
    runs: list[Run] = []
    for arm, grid_row, zip_row, seed in itertools.product(arms, grid_rows, zip_rows, spec.seeds):
        swept: dict[str, Any] = {"arm": arm.name} if spec.arms else {}
        swept.update(grid_row)
        swept.update(zip_row)
        if len(spec.seeds) > 1:
            swept["seed"] = seed
        bindings = {**spec.bindings, **arm.bindings, **grid_row, **zip_row, **dict.fromkeys(spec.seed_binding, seed)}
        template = spec.name_template
        name = _format_name(template, swept, spec) if template else _default_name(swept)
        runs.append(Run(_NAME_CHARS.sub("_", name), len(runs), spec.gin_files + arm.gin_files, bindings, swept))
    names = [run.name for run in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{spec.path}: the name template gives several runs the name {twice[0]!r}; "
                          "put every swept value in `name`")
    return runs
