"""The generic Registry and the task decorator."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.tasks import Task, TaskSpec, load_tasks, registry
from harness.tasks.registry import Registry, UnknownNameError


def test_register_get_and_close_matches():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    assert reg.get("alpha") == 1 and "alpha" in reg and reg.names() == ["alpha"] and len(reg) == 1
    with pytest.raises(UnknownNameError, match=r"unknown widget 'alpah' \(did you mean 'alpha'\?\); known: alpha") as info:
        reg.get("alpah")
    assert isinstance(info.value, KeyError) and isinstance(info.value, HarnessError)


def test_decorator_origin_and_duplicates():
    reg = Registry("fn")

    @reg.register("f")
    def f():
        return 1

    assert reg.get("f") is f and reg.origin("f").endswith(f"test_tasks_registry.py:{f.__code__.co_firstlineno}")
    reg.register("f", f)  # same object again: fine (module imported twice)
    with pytest.raises(HarnessError, match="'f' is already registered at"):
        reg.register("f", lambda: 2)


def test_lazy_target():
    reg = Registry("thing")
    reg.register("join", "os.path:join")
    assert reg.get("join")("a", "b").endswith("b")
    reg.register("bad", "os.path:nope")
    with pytest.raises(HarnessError, match="has no attribute 'nope'"):
        reg.get("bad")


def test_register_task_function_and_spec(fresh_tasks_registry, tmp_path):
    @registry.register_task("py-rows")
    def rows():
        return Task.from_rows("py-rows", [{"instruction": "Hi", "id": "q"}])

    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "From spec"}\n')

    @registry.register_task("py-spec")
    def spec():
        return TaskSpec.from_dict({"task": "py-spec", "doc_to_text": "instruction", "domain": "chess"})

    a, b = load_tasks(["py-rows", "py-spec"], data_overrides={"py-spec": data})
    assert a.items()[0].sample_id == "q"
    assert b.domain == "chess" and b.items()[0].instruction == "From spec"
    with pytest.raises(HarnessError, match="built in Python and does not take --data"):
        load_tasks(["py-rows"], data_overrides={"py-rows": data})


def test_register_task_name_mismatch_and_clash(fresh_tasks_registry):
    @registry.register_task("wrong-name")
    def wrong():
        return Task.from_rows("other", [{"instruction": "x"}])

    with pytest.raises(HarnessError, match="factory returned a task named 'other'"):
        load_tasks(["wrong-name"])

    @registry.register_task("instructions-mini")
    def clash():
        return Task.from_rows("instructions-mini", [{"instruction": "x"}])

    with pytest.raises(HarnessError, match=r"'instructions-mini' is also defined at .*instructions_mini\.yaml"):
        load_tasks(["style-probes"])
