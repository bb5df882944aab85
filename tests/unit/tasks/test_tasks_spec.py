"""TaskSpec parsing and YAML errors: file and line in every message."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.tasks.spec import TaskSpec
from harness.tasks.yaml_loader import FunctionRef, load_yaml



def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


BASE = "task: t\ndataset_path: d.jsonl\ndoc_to_text: instruction\n"


def test_minimal_spec_and_paths_resolved(tmp_path):
    spec = TaskSpec.from_yaml(write(tmp_path / "t.yaml", BASE + "metadata: {version: 1.5}\n"))
    assert spec.version == "1.5"
    assert spec.dataset_path == str(tmp_path / "d.jsonl")
    assert spec.data_kind == "file" and not spec.text_is_template


def test_invalid_yaml_has_line(tmp_path):
    p = write(tmp_path / "bad.yaml", "task: t\ndoc_to_text: instruction\ngeneration_kwargs: [a, b\n")
    with pytest.raises(HarnessError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_yaml(p)


def test_unknown_key_did_you_mean_with_line(tmp_path):
    p = write(tmp_path / "t.yaml", BASE + "doc_to_txt: prompt\n")
    with pytest.raises(HarnessError, match=r"t\.yaml:4: doc_to_txt: unknown key \(did you mean 'doc_to_text'\?\)"):
        TaskSpec.from_yaml(p)


def test_unsupported_lm_eval_key(tmp_path):
    p = write(tmp_path / "t.yaml", BASE + "doc_to_choice: choices\n")
    with pytest.raises(HarnessError, match=r"t\.yaml:4: doc_to_choice: lm-eval key not supported"):
        TaskSpec.from_yaml(p)


def test_duplicate_key(tmp_path):
    with pytest.raises(HarnessError, match=r"t\.yaml:4: task: duplicate key"):
        TaskSpec.from_yaml(write(tmp_path / "t.yaml", BASE + "task: u\n"))


@pytest.mark.parametrize("extra, pattern", [
    ("domain: poem\n", r":4: domain: unknown 'poem' \(did you mean 'poetry'\?\)"),
    ("prompt_format: tulo\n", r":4: prompt_format: unknown 'tulo' \(did you mean 'tulu'\?\)"),
    ("generation_kwargs:\n  max_gen_tok: 5\n", r":5: generation_kwargs.max_gen_tok: unknown key \(did you mean"),
    ("generation_kwargs:\n  max_gen_toks: 0\n", r":5: generation_kwargs.max_gen_toks: expected a positive"),
    ("metric_list:\n  - metric: acc\n    aggregation: meen\n",
     r":6: metric_list\[0\].aggregation: unknown 'meen' \(did you mean 'mean'\?\)"),
    ("output_type: loglikelihood\n", r":4: output_type: only 'generate_until'"),
    ("num_fewshot: 5\n", r":4: num_fewshot: only 0"),
    ("metadata: {version: [1]}\n", r":4: version: metadata.version"),
])
def test_bad_values(tmp_path, extra, pattern):
    with pytest.raises(HarnessError, match=pattern):
        TaskSpec.from_yaml(write(tmp_path / "t.yaml", BASE + extra))


def test_bad_template_syntax(tmp_path):
    p = write(tmp_path / "t.yaml", "task: t\ndoc_to_text: '{{ instruction '\n")
    with pytest.raises(HarnessError, match=r"t\.yaml:2: doc_to_text: invalid template"):
        TaskSpec.from_yaml(p)


def test_missing_required(tmp_path):
    with pytest.raises(HarnessError, match=r"doc_to_text: required"):
        TaskSpec.from_yaml(write(tmp_path / "t.yaml", "task: t\n"))


def test_include_merges_local_wins(tmp_path):
    write(tmp_path / "base" / "_base.yaml",
          "doc_to_text: instruction\ndataset_path: data.jsonl\ngeneration_kwargs: {max_gen_toks: 7}\n"
          "metadata: {version: 3}\n")
    child = write(tmp_path / "child.yaml", "include: base/_base.yaml\ntask: c\nmetadata: {version: 4}\n")
    raw = load_yaml(child)
    assert raw.origins["doc_to_text"][0].name == "_base.yaml"
    spec = TaskSpec.from_dict(raw, source=child)
    assert spec.version == "4" and spec.generation_kwargs == {"max_gen_toks": 7}
    # relative paths resolve against the file that wrote them
    assert spec.dataset_path == str(tmp_path / "base" / "data.jsonl")


def test_include_cycle_rejected(tmp_path):
    write(tmp_path / "a.yaml", "include: b.yaml\ntask: a\ndoc_to_text: x\n")
    write(tmp_path / "b.yaml", "include: a.yaml\n")
    with pytest.raises(HarnessError, match=r"b\.yaml:1: include: cycle .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_yaml(tmp_path / "a.yaml")


def test_include_missing_file(tmp_path):
    p = write(tmp_path / "a.yaml", "task: a\ninclude: nope.yaml\n")
    with pytest.raises(HarnessError, match=r"a\.yaml:2: include: no such file"):
        load_yaml(p)


def test_function_refused_outside_named_dirs(tmp_path):
    write(tmp_path / "utils.py", "def pr(doc, results):\n    return {'x': 1.0}\n")
    p = write(tmp_path / "t.yaml", BASE + "process_results: !function utils.pr\n")
    with pytest.raises(HarnessError, match=r"t\.yaml:4: !function utils\.pr: code is only run from task directories"):
        TaskSpec.from_yaml(p)
    spec = TaskSpec.from_yaml(p, trusted_dirs=(tmp_path,))
    assert isinstance(spec.process_results, FunctionRef)
    assert spec.process_results.resolve()({}, [""]) == {"x": 1.0}


def test_function_is_lazy_and_sibling_only(tmp_path):
    write(tmp_path / "utils.py", "raise RuntimeError('must not run at load time')\n")
    p = write(tmp_path / "t.yaml", BASE + "process_results: !function utils.pr\n")
    spec = TaskSpec.from_yaml(p, trusted_dirs=(tmp_path,))  # does not import utils.py
    with pytest.raises(RuntimeError):
        spec.process_results.resolve()
    p2 = write(tmp_path / "t2.yaml", BASE + "process_results: !function os.path.join\n")
    with pytest.raises(HarnessError, match=r"t2\.yaml:4: !function 'os.path.join': expected 'module.function'"):
        TaskSpec.from_yaml(p2, trusted_dirs=(tmp_path,))
    p3 = write(tmp_path / "t3.yaml", BASE + "process_results: !function helpers.pr\n")
    with pytest.raises(HarnessError, match=r"no file helpers\.py next to t3\.yaml"):
        TaskSpec.from_yaml(p3, trusted_dirs=(tmp_path,))


def test_builder_needs_data_files(tmp_path):
    p = write(tmp_path / "t.yaml", "task: t\ndataset_path: json\ndoc_to_text: x\n")
    with pytest.raises(HarnessError, match=r"t\.yaml:2: dataset_path: 'json' needs dataset_kwargs.data_files"):
        TaskSpec.from_yaml(p)


def test_as_dict_is_plain():
    spec = TaskSpec.from_dict({"task": "t", "doc_to_text": "{{x}}", "tag": "a"})
    d = spec.as_dict()
    assert d["tag"] == ["a"] and d["doc_to_text"] == "{{x}}" and d["source"] is None
