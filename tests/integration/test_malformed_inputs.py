"""A corpus of malformed inputs: each is exit code 2, ONE line on stderr, no traceback, nothing written.

Table-driven: adding a case is one ``Case(...)`` line. ``argv`` is split with shlex after
formatting ``{tmp}`` (the case's directory, holding ``files``), ``{store}`` (a store that
must not come into being), ``{good}`` (a store holding one finished run) and ``{run}``
(that run's id). Every case runs in-process through :func:`harness.cli.main`; none starts Ray.
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.cli import main


@dataclass(frozen=True)
class Case:
    id: str
    argv: str
    match: str  # a substring of the one error line
    files: dict[str, str | bytes] = field(default_factory=dict)
    xfail: str = ""  # a known gap, with the reason (strict: the case fails loudly once it is fixed)


LONG = json.dumps({"id": "long", "instruction": "word " * 3000}) + "\n"
MINI = "--model tiny-random-llama --tasks instructions-mini --no-ray --store {store}"
CFG = "run {tmp}/c.yaml --model tiny-random-llama --no-ray --store {store}"
TASK = "task: t\ndataset_path: d.jsonl\ndoc_to_text: instruction\n"

CASES = [
    # run: flags
    Case("run-no-tasks", "run --no-ray --store {store}", "give --tasks"),
    Case("run-limit-0", f"run {MINI} --limit 0", "limit: must be a positive"),
    Case("run-cap-0", f"run {MINI} --max-new-tokens 0", "--max-new-tokens: must be positive"),
    Case("run-cap-huge", f"run {MINI} --max-new-tokens 1000000000", "max_new_tokens: 1000000000 (task instructions-mini) leaves no room for a prompt in 2048"),
    Case("run-threads-neg", f"run {MINI} --threads -1", "threads: must be a positive"),
    Case("run-threads-text", f"run {MINI} --threads many", "argument --threads: invalid int value"),
    Case("run-num-cpus-0", "run --tasks instructions-mini --num-cpus 0 --store {store}", "--num-cpus: must be a positive"),
    Case("run-address-down", "run --model tiny-random-llama --tasks instructions-mini --address 127.0.0.1:1 --store {store}",
         "--address 127.0.0.1:1: cannot connect"),
    Case("run-address-syntax", "run --tasks instructions-mini --address http://head --store {store}", "address: expected HOST:PORT"),
    Case("run-device-name", f"run {MINI} --device gpu", "argument --device: invalid choice"),
    Case("run-same-expert-twice", f"run {MINI} --variants rules,rules:eos-uniform-diversity",
         "variants 'rules' and 'rules:eos-uniform-diversity' are the same expert"),
    Case("run-variant-typo", f"run {MINI} --variants none,rules:eos-unifrom", "unknown option 'unifrom'"),
    Case("run-unknown-task", "run --model tiny-random-llama --tasks instructions-mni --store {store}", "instructions-mni"),
    Case("run-unknown-model", "run --model gemma-3-27m --tasks instructions-mini --store {store}", "gemma-3-27m"),
    Case("run-replicas", f"run {MINI} --replicas -2", "replicas: a positive number or 'auto'"),
    Case("run-batch-0", f"run {MINI} --batch-size 0", "--batch-size: must be positive"),
    Case("run-tp-0", f"run {MINI} --tp 0", "tp: tensor-parallel ranks"),
    Case("run-tp-no-ray", f"run {MINI} --tp 2", "drop --no-ray"),
    Case("run-data-syntax", f"run {MINI} --data instructions-mini", "data: expected TASK=PATH"),
    Case("run-data-missing", f"run {MINI} --data instructions-mini={{tmp}}/nope.jsonl", "nope.jsonl"),
    Case("run-hf-format-no-template", f"run {MINI} --prompt-format hf", "has no chat template"),
    Case("run-expert-multi-token", f"run {MINI} --expert {{tmp}}/e.yaml --variants none,multi", "is not a single token",
         {"e.yaml": "name: multi\nuniform: [{token: 'xyzzy plugh', delta: 1}]\n"}),
    Case("run-expert-bad-key", f"run {MINI} --expert {{tmp}}/e.yaml", "eos.per_tokn: unknown key",
         {"e.yaml": "name: x\neos: {per_tokn: 1}\n"}),
    Case("run-expert-bad-number", f"run {MINI} --expert {{tmp}}/e.yaml", "eos.until: expected an integer, got 'soon'",
         {"e.yaml": "name: x\neos: {until: soon}\n"}),
    # run: prompt files
    Case("prompts-too-long", "run --model tiny-random-llama --prompts {tmp}/p.jsonl --no-ray --store {store}",
         "task prompts, sample long: ", {"p.jsonl": LONG}),
    Case("prompts-missing", "run --model tiny-random-llama --prompts {tmp}/none.jsonl --no-ray --store {store}", "none.jsonl"),
    Case("prompts-bad-json", "run --model tiny-random-llama --prompts {tmp}/p.jsonl --no-ray --store {store}", "p.jsonl:2",
         {"p.jsonl": '{"instruction": "ok"}\n{"instruction": broken\n'}),
    Case("prompts-dup-id", "run --model tiny-random-llama --prompts {tmp}/p.jsonl --no-ray --store {store}", "p.jsonl",
         {"p.jsonl": '{"id": "a", "instruction": "x"}\n{"id": "a", "instruction": "y"}\n'}),
    Case("prompts-not-utf8", "run --model tiny-random-llama --prompts {tmp}/p.jsonl --no-ray --store {store}", "p.jsonl",
         {"p.jsonl": b'{"instruction": "caf\xe9"}\n'}),
    # run: config files
    Case("cfg-missing", "run {tmp}/none.yaml --store {store}", "none.yaml: config file not found"),
    Case("cfg-limit-text", CFG, "c.yaml: limit: expected an integer or null, got 'four'",
         {"c.yaml": "tasks: instructions-mini\nlimit: four\n"}),
    Case("cfg-cap-list", CFG, "c.yaml: max_new_tokens: expected an integer or null, got [1]",
         {"c.yaml": "tasks: instructions-mini\nmax_new_tokens: [1]\n"}),
    Case("cfg-trace-word", CFG, "c.yaml: trace: expected true or false, got 'maybe'",
         {"c.yaml": "tasks: instructions-mini\ntrace: maybe\n"}),
    Case("cfg-no-ray-number", CFG, "c.yaml: no_ray: expected true or false, got 2", {"c.yaml": "tasks: instructions-mini\nno_ray: 2\n"}),
    Case("cfg-unknown-key", CFG, "c.yaml: limt: unknown setting (did you mean 'limit'?)", {"c.yaml": "tasks: instructions-mini\nlimt: 2\n"}),
    Case("cfg-bad-yaml", CFG, "c.yaml:2: invalid YAML", {"c.yaml": "tasks: [instructions-mini\nlimit: 2\n"}),
    Case("cfg-list", CFG, "c.yaml: expected a mapping at the top level", {"c.yaml": "- tasks\n"}),
    Case("cfg-tasks-mapping", CFG, "c.yaml: tasks: expected a list of strings", {"c.yaml": "tasks: {instructions-mini: 1}\n"}),
    Case("cfg-variant-list", CFG, "c.yaml: variants[1]: expected a string", {"c.yaml": "tasks: instructions-mini\nvariants: [none, [rules]]\n"}),
    Case("cfg-device", CFG, "c.yaml: device: 'gpu' is not one of auto, cpu, cuda", {"c.yaml": "tasks: instructions-mini\ndevice: gpu\n"}),
    Case("cfg-temperature", CFG, "c.yaml: temperature: expected a number or null, got 'hot'", {"c.yaml": "tasks: instructions-mini\ntemperature: hot\n"}),
    Case("cfg-not-utf8", CFG, "c.yaml: not UTF-8", {"c.yaml": b"tasks: caf\xe9\n"}),
    Case("cfg-key-number", CFG, "c.yaml: 3: setting names must be strings", {"c.yaml": "tasks: instructions-mini\n3: x\n"}),
    # task YAML
    Case("task-yaml-run", "run --model tiny-random-llama --tasks t --tasks-dir {tmp}/tasks --no-ray --store {store}",
         "t.yaml:4: doc_to_txt: unknown key", {"tasks/t.yaml": TASK + "doc_to_txt: instruction\n"}),
    Case("task-yaml-no-data", "run --model tiny-random-llama --tasks t --tasks-dir {tmp}/tasks --no-ray --store {store}",
         "d.jsonl", {"tasks/t.yaml": TASK}),
    Case("task-yaml-bad-column", "run --model tiny-random-llama --tasks t --tasks-dir {tmp}/tasks --no-ray --store {store}",
         "instruction", {"tasks/t.yaml": TASK, "tasks/d.jsonl": '{"prompt": "hi"}\n'}),
    Case("task-yaml-validate", "tasks validate {tmp}/t.yaml", "t.yaml", {"t.yaml": "task: t\ndoc_to_text: [\n"}),
    Case("task-show-unknown", "tasks show instructions-mni", "instructions-mni"),
    # resume
    Case("resume-unknown", "resume nosuchrun --store {good}", "no run 'nosuchrun'"),
    Case("resume-threads", "resume {run} --store {good} --threads 0", "threads: must be a positive"),
    Case("resume-batch", "resume {run} --store {good} --batch-size -4", "--batch-size: must be positive"),
    Case("resume-address-no-ray", "resume {run} --store {good} --address 127.0.0.1:1", "address: '127.0.0.1:1' needs Ray"),
    Case("run-replicas-no-ray", f"run {MINI} --replicas 2", "replicas: '2' needs Ray"),
    # query
    Case("query-no-store", "query --store {tmp}/nostore 'select 1'", "nostore"),
    Case("query-syntax", "query --store {good} 'selec 1'", "selec"),
    Case("query-no-table", "query --store {good} 'select * from nosuch'", "nosuch"),
    Case("query-format", "query --store {good} --format xml 'select 1'", "argument --format: invalid choice"),
    # judge
    Case("judge-no-run", "judge nosuchrun --treatment rules --baseline none --store {good}", "nosuchrun"),
    Case("judge-no-variant", "judge {run} --treatment rulez --baseline none --store {good}", "rulez"),
    Case("judge-bad-judge", "judge {run} --treatment rules --baseline none --judge oracle --store {good}", "oracle"),
    # compare
    Case("compare-no-run", "compare nosuchrun --store {good}", "nosuchrun"),
    Case("compare-no-variant", "compare {run} --baseline none --treatment rulez --store {good}", "rulez"),
    Case("compare-no-metric", "compare {run} --metric nosuchmetric --store {good}", "nosuchmetric"),
    # finetune config
    Case("finetune-lr-text", "finetune {tmp}/ft.yaml", "ft.yaml: lr: expected a number, got 'fast'",
         {"ft.yaml": "output_dir: out\nlr: fast\ndata: {format: gsm, path: g.jsonl}\n"}),
]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


@pytest.fixture(scope="module")
def good_store(tmp_path_factory, harness_home) -> tuple[Path, str]:
    """One finished run (2 prompts x none/rules, 4 tokens each), generated in-process."""
    store = tmp_path_factory.mktemp("good") / "store"
    assert main(["run", "--model", "tiny-random-llama", "--tasks", "instructions-mini", "--limit", "2",
                 "--max-new-tokens", "4", "--no-ray", "-q", "--store", str(store)]) == 0
    (run_id,) = [p.stem for p in (store / "manifests").glob("*.json")]
    return store, run_id


def test_corpus_is_large_and_unique():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.xfail(reason=c.xfail, strict=True)) if c.xfail else c
                                  for c in CASES], ids=[c.id for c in CASES])
def test_malformed_input(case: Case, tmp_path, good_store, capsys, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default ./results would land here, and is checked below
    good, run_id = good_store
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    argv = shlex.split(case.argv.format(tmp=tmp_path, store=tmp_path / "store", good=good, run=run_id))
    before, files_before = _tree(good), _tree(tmp_path)
    capsys.readouterr()
    caplog.clear()
    caplog.set_level(logging.WARNING)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out = capsys.readouterr()
    err = out.err.strip()
    assert code == 2, f"exit {code}; stderr: {err}"
    assert err.count("\n") == 0 and err, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err and "Traceback" not in out.out
    assert case.match in err, err
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, f"a real CLI prints these to stderr too: {warnings}"
    assert _tree(good) == before, "the existing store changed"
    assert _tree(tmp_path) == files_before, "something was written next to the inputs"


def test_one_line_from_a_real_process(tmp_path, harness_home, good_store):
    """The in-process cases miss what a fresh interpreter prints (import-time warnings, progress bars)."""
    import os
    import subprocess
    import sys

    (tmp_path / "p.jsonl").write_text(LONG)
    env = os.environ | {"HARNESS_HOME": str(harness_home)}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--model", "tiny-random-llama", "--prompts",
                           str(tmp_path / "p.jsonl"), "--store", str(tmp_path / "store")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "sample long: " in proc.stderr and "> 2048" in proc.stderr
    assert not (tmp_path / "store").exists()
