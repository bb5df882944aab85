"""Task sources: user dirs, HARNESS_TASKS_PATH, entry points; unknown names."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.errors import HarnessError
from harness.tasks import Task, TaskSpec, build_index, load_tasks


def test_user_dir_loads_and_lists(user_dir):
    (task,) = load_tasks(["my-qs"], tasks_dirs=[user_dir])
    assert (task.version, task.domain, task.source) == ("2", "gsm", user_dir / "qs.yaml")
    items = task.items()
    assert [(i.sample_id, i.instruction, i.reference) for i in items] == [
        ("a", "Q: What is 2+2?", "4"), ("b", "Q: Name a fruit.", "apple")]
    index = build_index([user_dir])
    assert "my-qs" in index.entries and "instructions-mini" in index.entries


def test_env_var_dirs(user_dir, monkeypatch):
    monkeypatch.setenv("HARNESS_TASKS_PATH", f"{user_dir}")
    assert [t.name for t in load_tasks(["my-qs"])] == ["my-qs"]
    monkeypatch.setenv("HARNESS_TASKS_PATH", "/no/such/dir")
    with pytest.raises(HarnessError, match="HARNESS_TASKS_PATH: /no/such/dir: not a directory"):
        build_index()


def test_missing_tasks_dir():
    with pytest.raises(HarnessError, match="--tasks-dir /no/where: not a directory"):
        load_tasks(["x"], tasks_dirs=[Path("/no/where")])


def test_unknown_task_lists_close_matches():
    with pytest.raises(HarnessError, match=r"unknown task 'instructions-mnii' \(did you mean 'instructions-mini'"):
        load_tasks(["instructions-mnii"])
    with pytest.raises(HarnessError, match=r"unknown task 'alpaca-evl'"):
        load_tasks(["instructions-mini"], data_overrides={"alpaca-evl": Path("x.jsonl")})


def test_function_honoured_in_user_dir(user_dir):
    (user_dir / "utils.py").write_text("def pr(doc, results):\n    return {'ok': 1.0}\n")
    (user_dir / "fn.yaml").write_text("include: qs.yaml\ntask: my-fn\nprocess_results: !function utils.pr\n")
    (task,) = load_tasks(["my-fn"], tasks_dirs=[user_dir])
    assert task.spec.process_results.resolve()({}, []) == {"ok": 1.0}


def test_duplicate_names_across_dirs(user_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "dup.yaml").write_text((user_dir / "qs.yaml").read_text().replace("data/qs.jsonl", "x.jsonl"))
    with pytest.raises(HarnessError, match=r"task: 'my-qs' is also defined at .*qs\.yaml"):
        build_index([user_dir, other])


def test_broken_user_file_is_named_on_lookup(user_dir):
    (user_dir / "broken.yaml").write_text("task: oops\ndoc_to_txt: x\n")
    (task,) = load_tasks(["my-qs"], tasks_dirs=[user_dir])  # other tasks still load
    with pytest.raises(HarnessError, match=r"unknown task 'oops'.*failed to load, first: .*broken\.yaml:2: doc_to_txt"):
        load_tasks(["oops"], tasks_dirs=[user_dir])


def _fake_eps(monkeypatch, value):
    ep = SimpleNamespace(name="plugin", value="plugin_pkg:tasks", load=lambda: value)

    def entry_points(**kw):
        assert kw == {"group": "harness.tasks"}
        return [ep]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_entry_point_directory(monkeypatch, user_dir):
    _fake_eps(monkeypatch, lambda: str(user_dir))
    assert load_tasks(["my-qs"])[0].items()[0].sample_id == "a"


def test_entry_point_objects(monkeypatch):
    spec = TaskSpec.from_dict({"task": "ep-spec", "doc_to_text": "instruction"})
    task = Task.from_rows("ep-rows", [{"instruction": "hello"}])
    _fake_eps(monkeypatch, [spec, task])
    index = build_index()
    assert index.entries["ep-spec"].kind == "entry-point"
    assert load_tasks(["ep-rows"])[0].items()[0].instruction == "hello"


def test_entry_point_bad_value(monkeypatch):
    _fake_eps(monkeypatch, 42)
    with pytest.raises(HarnessError, match=r"entry point plugin = plugin_pkg:tasks: expected a directory path"):
        build_index()


def test_indexing_runs_no_task_code(user_dir):
    (user_dir / "utils.py").write_text("raise RuntimeError('task code ran at index time')\n")
    (user_dir / "fn.yaml").write_text("include: qs.yaml\ntask: my-fn\nprocess_results: !function utils.pr\n")
    (task,) = load_tasks(["my-fn"], tasks_dirs=[user_dir])
    assert len(task.items()) == 2  # rows render without touching process_results
    with pytest.raises(RuntimeError, match="index time"):
        task.spec.process_results.resolve()
