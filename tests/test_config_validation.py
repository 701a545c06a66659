"""Every field of every gin-bound config is checked when the config is built: a wrong type or a value
outside its range is one error naming the class, the field and the value; through the command line,
exit code 2 and one line, never "internal error"."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import pkgutil
import typing

import gin
import pytest

import lowres
from lowres.config_fields import VALIDATED, Rule
from lowres.errors import ConfigError

# Import every module, so every configurable class is registered with gin and with VALIDATED.
for module in pkgutil.walk_packages(lowres.__path__, "lowres."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)

CLASSES = {cls.__name__: cls for cls in VALIDATED}
# Fields a class cannot be built without, and a combination its own checks need.
REQUIRED = {
    "BuildConfig": dict(source="text:x.txt", src="eng", tgt="pan", output="out"),
    "CorpusSpec": dict(name="c", source="text:x.txt"),
    "FilterConfig": dict(keep_percent=50.0),
    "MixtureSchedule": dict(phases=[(10, "m")]),
}
# What `lowres train` builds from gin before it reads any data.
TRAIN_CLASSES = ("TrainConfig", "DataConfig", "ModelConfig", "OptimizerConfig", "CheckpointConfig", "MeshConfig",
                 "VocabularyConfig", "InitConfig", "StreamConfig", "EvalConfig")  # fmt: skip


def _plain(hint):
    """The annotation without None: (origin, args)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) and len(args) == 1:
        return _plain(args[0])
    return hint


def _wrong_type(hint):
    """A value of another type than `hint` allows, or None where any value is allowed."""
    hint = _plain(hint)
    if hint is typing.Any:
        return None
    if hint in (int, float):
        return "abc"
    if hint is bool:
        return "yes"
    return 5  # strings, lists, dicts, nested configs


def _fields():
    for name, cls in sorted(CLASSES.items()):
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            yield name, cls, field.name, hints[field.name]


def test_every_gin_configurable_class_is_validated():
    registered = {c.wrapped.__name__ for _, c in gin.config._REGISTRY.items()
                  if isinstance(c.wrapped, type) and c.wrapped.__module__.startswith("lowres.")}  # fmt: skip
    assert registered and registered <= set(CLASSES), sorted(registered - set(CLASSES))


def test_every_number_and_name_has_a_declared_range_or_choices():
    missing = []
    for name, cls, field, hint in _fields():
        plain = _plain(hint)
        if plain in (int, float, str) and field not in cls.field_rules:
            missing.append(f"{name}.{field}")
    assert not missing, f"numeric or string fields without a rule (at_least, one_of, any_value, ...): {missing}"


@pytest.mark.parametrize("name, field", [(n, f) for n, _, f, _ in _fields()])
def test_wrong_types_and_out_of_range_values_name_the_field(name, field):
    cls = CLASSES[name]
    required = REQUIRED.get(name, {})
    cls(**required)  # the defaults (and the required values) are valid
    hint = typing.get_type_hints(cls)[field]
    rule: Rule | None = cls.field_rules.get(field)
    bad = [_wrong_type(hint), *(rule.outside if rule else ())]
    for value in [b for b in bad if b is not None]:
        with pytest.raises(ConfigError) as caught:
            cls(**{**required, field: value})
        assert str(caught.value).startswith(f"{name}.{field}={value!r}: "), str(caught.value)


def _cli(binding: str) -> tuple[int, str]:
    from lowres import cli

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["train", "--gin_file=smoke.gin", "--model_dir=/nonexistent/never-written", "--no_progress",
                         binding])  # fmt: skip
    return code, err.getvalue()


def test_train_command_refuses_each_bad_value_in_one_line():
    """Through `lowres train` (in-process, gin parsed afresh each time): exit 2, one line naming the field."""
    failures = []
    for name, cls, field, hint in _fields():
        if name not in TRAIN_CLASSES:
            continue
        rule = cls.field_rules.get(field)
        for value in [v for v in (_wrong_type(hint), *(rule.outside if rule else ())) if v is not None]:
            code, stderr = _cli(f"--gin.{name}.{field}={value!r}")
            lines = [line for line in stderr.splitlines() if line.strip()]
            if code != 2 or not lines or not lines[-1].startswith(f"lowres: error: {name}.{field}=") \
                    or "internal error" in stderr:  # fmt: skip
                failures.append(f"{name}.{field}={value!r}: exit {code}: {lines[-1:] or stderr[-300:]}")
    assert not failures, "\n".join(failures)


def test_issue_cases_end_in_one_line():
    for binding, message in [
        ("--gin.TrainConfig.num_steps=-5", "TrainConfig.num_steps=-5: must be >= 1"),
        ("--gin.OptimizerConfig.learning_rate=-1.0", "OptimizerConfig.learning_rate=-1.0: must be >= 0.0"),
        ("--gin.DataConfig.batch_size=0", "DataConfig.batch_size=0: must be >= 1"),
        ("--gin.TrainConfig.num_steps='abc'", "TrainConfig.num_steps='abc': expected an int"),
    ]:
        code, stderr = _cli(binding)
        assert code == 2 and stderr.strip().splitlines()[-1] == f"lowres: error: {message}", stderr
