"""Fixtures for the tasks tests: no user task dirs or plugins leak in from the environment."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from harness.tasks import registry


@pytest.fixture(autouse=True)
def _isolated_sources(monkeypatch):
    monkeypatch.delenv("HARNESS_TASKS_PATH", raising=False)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])


@pytest.fixture
def fresh_tasks_registry(monkeypatch):
    """An empty task registry for the test (plus the built-in Python tasks)."""
    fresh = registry.Registry("task")
    monkeypatch.setattr(registry, "TASKS", fresh)
    from harness.tasks import builtin

    fresh.register("implicit-ins-val", builtin.implicit_ins_val)
    return fresh


@pytest.fixture
def user_dir(tmp_path) -> Path:
    """A user tasks dir with one YAML over a local jsonl."""
    d = tmp_path / "my_tasks"
    (d / "data").mkdir(parents=True)
    (d / "data" / "qs.jsonl").write_text(
          '{"qid": "a", "question": "What is 2+2?", "answer": "4"}\n'
          '{"qid": "b", "question": "Name a fruit.", "answer": "apple"}\n')
    (d / "qs.yaml").write_text(
          "task: my-qs\n"
          "dataset_path: data/qs.jsonl\n"
          "doc_to_text: 'Q: {{question}}'\n"
          "id_field: qid\n"
          "reference_field: answer\n"
          "domain: gsm\n"
          "metadata:\n  version: 2\n")
    return d
