"""Every built-in task loads and yields items with unique sample ids."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.tasks import build_index, builtin_tasks_dir, load_tasks

SELF_CONTAINED = ["instructions-mini", "style-probes", "ifeval-sample"]
# task -> file under ../shared/data
NEEDS_DATA = {
    "alpaca-eval": "alpaca_eval/alpaca_eval.jsonl",
    "ifeval": "ifeval/input_data.jsonl",
    "implicit-ins-val": "single_task/implicit_ins_val.jsonl",
    "single-task-poetry": "single_task/poetry.jsonl",
    "single-task-gsm": "single_task/gsm.jsonl",
    "single-task-code": "single_task/mbpp.jsonl",
    "single-task-chess": "single_task/chess.jsonl",
    "single-task-recipe": "single_task/recipes.jsonl",
}


def test_index_lists_every_builtin():
    index = build_index()
    assert set(SELF_CONTAINED) | set(NEEDS_DATA) <= set(index.entries)
    assert index.broken == []
    assert builtin_tasks_dir().name == "tasks"


@pytest.mark.parametrize("name", SELF_CONTAINED)
def test_self_contained_task_items(name):
    (task,) = load_tasks([name])
    items = task.items()
    assert len({i.sample_id for i in items}) == len(items)
    assert all(i.task == name and i.task_version == task.version and i.instruction.strip() for i in items)
    json.loads(items[0].doc_json)


def test_instructions_mini_content():
    items = load_tasks(["instructions-mini"])[0].items()
    cats = {json.loads(i.doc_json)["category"] for i in items}
    assert len(items) >= 48 and len(cats) >= 8
    assert items[0].sample_id == "mini-001"


def test_style_probes_cover_domains_near_and_far():
    rows = [json.loads(i.doc_json) for i in load_tasks(["style-probes"])[0].items()]
    near = {r["near_domain"] for r in rows}
    assert len(rows) >= 40
    assert near == {"poetry", "gsm", "code", "chess", "recipe", None}


def test_ifeval_sample_uses_valid_instruction_ids():
    pytest.importorskip("lm_eval")
    registry_src = (__import__("importlib.util").util.find_spec("lm_eval").submodule_search_locations[0]
                    + "/tasks/ifeval/instructions_registry.py")
    text = open(registry_src, encoding="utf-8").read()
    rows = [json.loads(i.doc_json) for i in load_tasks(["ifeval-sample"])[0].items()]
    ids = {iid for r in rows for iid in r["instruction_id_list"]}
    assert len(rows) >= 12 and len(ids) >= 8
    for iid in ids:  # read as text: importing lm_eval's ifeval downloads NLTK data
        prefix, name = iid.split(":")
        assert f'"{name}"' in text, iid
    assert all(len(r["kwargs"]) == len(r["instruction_id_list"]) for r in rows)


@pytest.mark.parametrize("name", sorted(NEEDS_DATA))
def test_data_task_errors_cleanly_without_data(name):
    (task,) = load_tasks([name])
    with pytest.raises(HarnessError, match=rf"--data {name}=PATH"):
        task.items()


@pytest.mark.parametrize("name", sorted(NEEDS_DATA))
def test_data_task_with_shared_file(name, shared_data):
    path = shared_data / NEEDS_DATA[name]
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    (task,) = load_tasks([name], data_overrides={name: path})
    items = task.items()
    assert len({i.sample_id for i in items}) == len(items) > 0
    if name == "alpaca-eval":
        assert len(items) == 805 and items[0].reference
    if name == "ifeval":
        assert items[0].sample_id == "1000"
    if name == "implicit-ins-val":
        assert len(items) == 56 and all(i.reference for i in items)
    if name.startswith("single-task-"):
        assert task.domain == name.removeprefix("single-task-") and items[0].reference


def test_tag_expands_to_members():
    names = [t.name for t in load_tasks(["single-task"])]
    assert names == sorted(n for n in NEEDS_DATA if n.startswith("single-task-"))
