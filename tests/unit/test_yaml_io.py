"""The one typed YAML loader: coercion by field type, one-line errors naming file, field, type and value."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.run.config import RunConfig
from harness.errors import HarnessError
from harness.yaml_io import coerce, typed_fields


@dataclass
class Inner:
    rate: float = 1.0


@dataclass
class Outer:
    n: int = 1
    cap: int | None = None
    on: bool = False
    name: str = ""
    names: tuple[str, ...] = ()
    inner: Inner | None = None


@pytest.mark.parametrize("tp, value, expected", [
    (int, "4", 4), (int, " -3 ", -3), (int, 2.0, 2), (int, 7, 7),
    (float, "1e-5", 1e-5), (float, 3, 3.0),
    (bool, "no", False), (bool, "False", False), (bool, "YES", True), (bool, "on", True), (bool, 1, True), (bool, 0, False),
    (str, 2, "2"), (str, "x", "x"),
    (int | None, None, None), (tuple[str, ...], "a, b,,c", ("a", "b", "c")), (tuple[str, ...], ["a", 1], ("a", "1")),
    (tuple[str, ...], None, ()),
])
def test_coercions(tp, value, expected):
    assert coerce(value, tp, "f.yaml: k") == expected


@pytest.mark.parametrize("tp, value, message", [
    (int, [1], "f.yaml: k: expected an integer, got [1]"),
    (int, "four", "f.yaml: k: expected an integer, got 'four'"),
    (int, 2.5, "f.yaml: k: expected an integer, got 2.5"),
    (int, True, "f.yaml: k: expected an integer, got True"),
    (float, "fast", "f.yaml: k: expected a number, got 'fast'"),
    (float, "nan", "f.yaml: k: expected a number, got 'nan'"),
    (bool, "maybe", "f.yaml: k: expected true or false, got 'maybe'"),
    (bool, 2, "f.yaml: k: expected true or false, got 2"),
    (str, False, "f.yaml: k: expected a string, got False"),
    (str, {"a": 1}, "f.yaml: k: expected a string, got {'a': 1}"),
    (int, None, "f.yaml: k: must not be empty (expected an integer)"),
    (int | None, "x", "f.yaml: k: expected an integer or null, got 'x'"),
    (tuple[str, ...], {"a": 1}, "f.yaml: k: expected a list of strings, got {'a': 1}"),
    (tuple[str, ...], ["a", ["b"]], "f.yaml: k[1]: expected a string, got ['b']"),
])
def test_errors_are_one_line_with_file_field_type_value(tp, value, message):
    with pytest.raises(HarnessError) as err:
        coerce(value, tp, "f.yaml: k")
    assert str(err.value) == message


def test_typed_fields_nested_and_unknown_keys():
    out = typed_fields(Outer, {"n": "2", "on": "yes", "inner": {"rate": "0.5"}, "names": "a,b"}, "f.yaml")
    assert out == {"n": 2, "on": True, "inner": Inner(0.5), "names": ("a", "b")}
    with pytest.raises(HarnessError, match=r"^f.yaml: inner.rat: unknown key \(did you mean 'rate'\?\)$"):
        typed_fields(Outer, {"inner": {"rat": 1}}, "f.yaml")
    with pytest.raises(HarnessError, match=r"^f.yaml: inner.rate: expected a number, got 'x'$"):
        typed_fields(Outer, {"inner": {"rate": "x"}}, "f.yaml")
    with pytest.raises(HarnessError, match=r"^f.yaml: nn: unknown key \(did you mean 'n'\?\); keys: n, cap"):
        typed_fields(Outer, {"nn": 1}, "f.yaml", list_keys=True)


@pytest.mark.parametrize("text, field, value", [
    ('limit: "4"', "limit", 4),
    ("no_ray: 'no'", "no_ray", False),
    ('trace: "false"', "trace", False),
    ("trace: 'true'", "trace", True),
    ("replicas: 2", "replicas", "2"),
    ("max_new_tokens: 64.0", "max_new_tokens", 64),
    ("variants: none, rules", "variants", ("none", "rules")),
    ("temperature: '0.7'", "temperature", 0.7),
])
def test_run_config_values_are_typed(tmp_path, text, field, value):
    path = tmp_path / "c.yaml"
    path.write_text(f"tasks: instructions-mini\n{text}\n")
    assert getattr(RunConfig.from_sources(path, {}), field) == value


@pytest.mark.parametrize("text, message", [
    ("max_new_tokens: [1]", "c.yaml: max_new_tokens: expected an integer or null, got [1]"),
    ("no_ray: perhaps", "c.yaml: no_ray: expected true or false, got 'perhaps'"),
    ("limit: 0", "c.yaml: limit: must be a positive number"),
    ("num_cpus: 0", "c.yaml: num_cpus: must be a positive number"),
    ("threads: -1", "c.yaml: threads: must be a positive number"),
    ("device: tpu", "c.yaml: device: 'tpu' is not one of auto, cpu, cuda"),
    ("address: 'http://head:8265'", "c.yaml: address: expected HOST:PORT"),
    ("no_ray: true\nreplicas: 3", "c.yaml: replicas: '3' needs Ray"),
])
def test_run_config_errors(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(f"tasks: instructions-mini\n{text}\n")
    with pytest.raises(HarnessError) as err:
        RunConfig.from_sources(path, {})
    assert str(err.value).startswith(str(tmp_path / message)) and "\n" not in str(err.value)


def test_flags_override_the_file_and_name_the_flag(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("tasks: instructions-mini\nlimit: 3\n")
    assert RunConfig.from_sources(path, {"limit": 5, "threads": None}).limit == 5
    with pytest.raises(HarnessError, match=r"^--threads: must be a positive number"):
        RunConfig.from_sources(None, {"tasks": "instructions-mini", "threads": 0})


def test_truncate_prompts_changes_the_run_id_only_when_set():
    base = RunConfig.from_sources(None, {"tasks": "instructions-mini"})
    assert base.output_hash() == RunConfig.from_sources(None, {"tasks": "instructions-mini", "truncate_prompts": False}).output_hash()
    assert base.output_hash() != base.with_(truncate_prompts=True).output_hash()
