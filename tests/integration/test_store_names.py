"""Run ids are names, not paths: no user input makes the harness write outside --store and HARNESS_HOME."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.cli import main

RUN = ["run", "--model", "tiny-random-llama", "--tasks", "instructions-mini", "--limit", "1", "--max-new-tokens", "2",
       "--no-ray"]

# (argv, text the one-line error must contain); {sandbox} is the test's sandbox directory
BAD = [
    (RUN + ["--run-id", "../../escaped"], "--run-id '../../escaped': not a valid name"),
    (RUN + ["--run-id", "a/b"], "--run-id 'a/b'"),
    (RUN + ["--run-id", "{sandbox}/absolute"], "not a valid name"),
    (RUN + ["--run-id", ".."], "--run-id '..'"),
    (RUN + ["--run-id", ".hidden"], "--run-id '.hidden'"),
    (RUN + ["--run-id", "x=y"], "--run-id 'x=y'"),
    (RUN + ["--run-id", "two words"], "--run-id 'two words'"),
    (RUN + ["--run-id", "line\nbreak"], "--run-id 'line\\nbreak'"),
    (RUN + ["--run-id", "a\\b"], "not a valid name"),
    (RUN + ["--run-id", "x" * 129], "not a valid name"),
    (["resume", "../../escaped"], "resume: run id '../../escaped': not a valid name"),
    (["resume", "/etc"], "resume: run id '/etc'"),
    (["run", "--model", "tiny-random-llama", "--tasks", "../../../etc/passwd", "--limit", "1"], "../../../etc/passwd"),
    (["run", "--model", "tiny-random-llama", "--tasks", "instructions-mini", "--variants", "none,../x"], "../x"),
    (["runs", "list"], "no results store there"),
    (["query", "copy (select 42 as x) to '{sandbox}/copied.csv'"], "no results store there"),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def sandbox(tmp_path, monkeypatch, harness_home):
    cwd = tmp_path / "work" / "cwd"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    return tmp_path


@pytest.mark.parametrize("argv,needle", BAD, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(BAD)])
def test_path_like_names_are_one_line_errors_before_any_write(sandbox, capsys, argv, needle, tiny_model_dir):
    before = _tree(sandbox)
    argv = [a.replace("{sandbox}", str(sandbox)) for a in argv] + ["--store", "store"]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("harness: ") and "\n" not in err and needle.replace("{sandbox}", str(sandbox)) in err, err
    assert _tree(sandbox) == before, "nothing may be written anywhere"


def test_hostile_but_valid_inputs_write_only_under_the_store(sandbox, capsys, tiny_model_dir):
    prompts = sandbox / "work" / "prompts.jsonl"
    ids = ["../../../escaped", "/etc/passwd", "run_id=evil", "a/b/c", ".hidden", "x\ny"]
    prompts.write_text("".join(json.dumps({"id": i, "instruction": f"Say {n}."}) + "\n" for n, i in enumerate(ids)))
    before = _tree(sandbox)
    code = main(["run", "--model", "tiny-random-llama", "--prompts", str(prompts), "--variants", "none",
                 "--max-new-tokens", "2", "--no-ray", "--store", "store", "-q"])
    assert code == 0, capsys.readouterr().err
    new = _tree(sandbox) - before
    assert new and all(p.startswith(os.path.join("work", "cwd", "store")) for p in new), sorted(new)
    runs = [d.name for d in (sandbox / "work" / "cwd" / "store" / "samples").iterdir()]
    assert len(runs) == 1 and runs[0].startswith("run_id=tiny-random-llama-")
    capsys.readouterr()
    assert main(["query", "--store", "store", "--format", "json", "select sample_id from samples order by 1"]) == 0
    got = [json.loads(line)["sample_id"] for line in capsys.readouterr().out.splitlines()]
    assert got == sorted(ids)
