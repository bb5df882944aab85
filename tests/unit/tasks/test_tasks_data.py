"""Rows to PromptItems: local formats, columns, ids, limits and prompt files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.tasks import Task, TaskSpec, load_prompt_file
from harness.tasks.data import read_local


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


ROWS = [{"id": "x1", "instruction": "Say hi.", "ref": "hi"}, {"id": "x2", "instruction": "Count.", "ref": None}]


def jsonl(tmp_path, rows=ROWS, name="d.jsonl") -> Path:
    return write(tmp_path / name, "".join(json.dumps(r) + "\n" for r in rows))


def spec_task(tmp_path, extra: str = "", doc_to_text: str = "instruction") -> Task:
    p = write(tmp_path / "t.yaml", f"task: t\ndataset_path: d.jsonl\ndoc_to_text: '{doc_to_text}'\n{extra}")
    return Task.from_spec(TaskSpec.from_yaml(p))


def test_column_and_reference(tmp_path):
    jsonl(tmp_path)
    items = spec_task(tmp_path, "reference_field: ref\n").items()
    assert [(i.sample_id, i.instruction, i.reference) for i in items] == [("x1", "Say hi.", "hi"), ("x2", "Count.", None)]
    assert json.loads(items[0].doc_json) == ROWS[0]


def test_template_and_row_index_ids(tmp_path):
    jsonl(tmp_path, [{"q": "a"}, {"q": "b"}])
    items = spec_task(tmp_path, doc_to_text="Question: {{q}}").items()
    assert [(i.sample_id, i.instruction) for i in items] == [("0", "Question: a"), ("1", "Question: b")]


@pytest.mark.parametrize("doc_to_text", ["instr", "{{ instr }}"])
def test_missing_column_names_file_field_column(tmp_path, doc_to_text):
    jsonl(tmp_path)
    with pytest.raises(HarnessError, match=r"t\.yaml:3: doc_to_text: unknown column 'instr' in .*d\.jsonl "
                                           r"\(columns: id, instruction, ref\) \(did you mean 'instruction'\?\)"):
        spec_task(tmp_path, doc_to_text=doc_to_text).items()


def test_missing_id_field_column(tmp_path):
    jsonl(tmp_path)
    with pytest.raises(HarnessError, match=r"t\.yaml:4: id_field: unknown column 'key'"):
        spec_task(tmp_path, "id_field: key\n").items()


def test_malformed_jsonl_line(tmp_path):
    write(tmp_path / "d.jsonl", '{"instruction": "ok"}\n\n{"instruction": oops}\n')
    with pytest.raises(HarnessError, match=r"d\.jsonl:3: malformed JSON"):
        spec_task(tmp_path).items()


def test_duplicate_ids(tmp_path):
    jsonl(tmp_path, [{"id": 1, "instruction": "a"}, {"id": 1, "instruction": "b"}])
    with pytest.raises(HarnessError, match=r"d\.jsonl:2: id: duplicate sample id '1' \(first at .*d\.jsonl:1\)"):
        spec_task(tmp_path).items()


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
def test_bad_limit(tmp_path, limit):
    jsonl(tmp_path)
    with pytest.raises(HarnessError, match="limit: expected a positive integer"):
        spec_task(tmp_path).items(limit=limit)


def test_limit(tmp_path):
    jsonl(tmp_path)
    assert [i.sample_id for i in spec_task(tmp_path).items(limit=1)] == ["x1"]
    assert len(spec_task(tmp_path).items(limit=99)) == 2


def test_unknown_data_file(tmp_path):
    with pytest.raises(HarnessError, match=r"t\.yaml:2: dataset_path: no such file .*d\.jsonl'; pass --data t=PATH"):
        spec_task(tmp_path).items()


def test_builder_data_files_and_splits(tmp_path):
    jsonl(tmp_path, name="test.jsonl")
    p = write(tmp_path / "t.yaml", "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
              "    test: test.jsonl\n    validation: missing.jsonl\ntest_split: test\ndoc_to_text: instruction\n")
    assert len(Task.from_spec(TaskSpec.from_yaml(p)).items()) == 2
    p2 = write(tmp_path / "t2.yaml", p.read_text().replace("test_split: test", "test_split: validation"))
    with pytest.raises(HarnessError, match=r"t2\.yaml:3: dataset_kwargs: data_files: no such file .*missing\.jsonl"):
        Task.from_spec(TaskSpec.from_yaml(p2)).items()
    p3 = write(tmp_path / "t3.yaml", p.read_text().replace("test_split: test", "test_split: train"))
    with pytest.raises(HarnessError, match=r"t3\.yaml:7: test_split: split 'train' is not in"):
        Task.from_spec(TaskSpec.from_yaml(p3)).items()


def test_csv_parquet_json(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write(tmp_path / "d.csv", "id,instruction\n1,Say hi.\n2,Count.\n")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    write(tmp_path / "d.json", json.dumps(ROWS))
    for name in ("d.csv", "d.parquet", "d.json"):
        rows = read_local(tmp_path / name)
        assert [r["instruction"] for r in rows.rows] == ["Say hi.", "Count."], name
    spec = TaskSpec.from_dict({"task": "c", "doc_to_text": "instruction",
                               "dataset_path": str(tmp_path / "d.csv")})
    assert [i.sample_id for i in Task.from_spec(spec).items()] == ["1", "2"]


def test_data_override_and_hub_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = TaskSpec.from_dict({"task": "h", "dataset_path": "org/some-dataset", "test_split": "test",
                               "doc_to_text": "instruction"})
    with pytest.raises(HarnessError, match=r"hub is offline .*pass --data h=PATH"):
        Task.from_spec(spec).items()
    task = Task.from_spec(spec, data_path=jsonl(tmp_path))
    assert len(task.items()) == 2
    with pytest.raises(HarnessError, match=r"--data h=.*nope\.jsonl: no such file"):
        Task.from_spec(spec, data_path=tmp_path / "nope.jsonl").items()


def test_non_text_instruction(tmp_path):
    jsonl(tmp_path, [{"instruction": 3}])
    with pytest.raises(HarnessError, match=r"d\.jsonl:1: doc_to_text: column 'instruction': expected text, got int"):
        spec_task(tmp_path).items()


def test_prompt_file(tmp_path):
    p = write(tmp_path / "p.jsonl", '{"instruction": "One"}\n{"id": "b", "instruction": "Two"}\n')
    task = load_prompt_file(p)
    assert (task.name, task.version, task.spec, task.source) == ("prompts", "1", None, p)
    assert [(i.sample_id, i.instruction) for i in task.items()] == [("0", "One"), ("b", "Two")]
    all_ids = write(tmp_path / "q.jsonl", '{"id": 7, "instruction": "One"}\n')
    assert load_prompt_file(all_ids).items()[0].doc_json == '{"id": 7, "instruction": "One"}'


@pytest.mark.parametrize("text, pattern", [
    ('{"instruction": "a"}\n{"instruction": \n', r"p\.jsonl:2: malformed JSON"),
    ('{"instruction": "a"}\n{"prompt": "b"}\n', r"p\.jsonl:2: instruction: missing"),
    ('["instruction"]\n', r"p\.jsonl:1: expected a JSON object"),
    ("", r"p\.jsonl: no prompts"),
])
def test_prompt_file_errors(tmp_path, text, pattern):
    with pytest.raises(HarnessError, match=pattern):
        load_prompt_file(write(tmp_path / "p.jsonl", text))


def test_from_rows_and_process_docs(tmp_path):
    task = Task.from_rows("r", [{"text": "hello"}], doc_to_text="{{ text | upper }}")
    assert task.items()[0].instruction == "HELLO"
    jsonl(tmp_path)
    write(tmp_path / "utils.py", "def keep_first(rows):\n    return rows[:1]\n")
    p = write(tmp_path / "t.yaml", "task: t\ndataset_path: d.jsonl\ndoc_to_text: instruction\n"
              "process_docs: !function utils.keep_first\n")
    assert len(Task.from_spec(TaskSpec.from_yaml(p, (tmp_path,))).items()) == 1


def test_missing_column_in_doc_to_target(tmp_path):
    jsonl(tmp_path)
    with pytest.raises(HarnessError, match=r"t\.yaml:4: doc_to_target: unknown column 'answer'"):
        spec_task(tmp_path, "doc_to_target: '{{answer}}'\n").items()
    assert len(spec_task(tmp_path, "doc_to_target: ref\n").items()) == 2
