"""``harness tasks list | show | validate``."""

from __future__ import annotations

import argparse

import pytest

from harness.errors import HarnessError
from harness.tasks import cli


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness")
    cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_list(capsys, user_dir):
    assert run(["tasks", "list", "--tasks-dir", str(user_dir)]) == 0
    out = capsys.readouterr().out
    assert "instructions-mini" in out and "my-qs" in out and "--data" in out
    line = next(x for x in out.splitlines() if x.startswith("instructions-mini "))
    assert " 56 " in line


def test_show(capsys):
    assert run(["tasks", "show", "style-probes"]) == 0
    out = capsys.readouterr().out
    assert "task: style-probes" in out and out.count("--- sample_id=") == 3


def test_show_needs_data():
    with pytest.raises(HarnessError, match="--data alpaca-eval=PATH"):
        run(["tasks", "show", "alpaca-eval"])
    with pytest.raises(HarnessError, match="expected NAME=PATH"):
        run(["tasks", "show", "alpaca-eval", "--data", "alpaca-eval"])


def test_validate_ok_and_errors(capsys, user_dir, tmp_path):
    assert run(["tasks", "validate", str(user_dir / "qs.yaml")]) == 0
    assert capsys.readouterr().out.startswith("ok")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: b\ndoc_to_text: instruction\ndomian: gsm\n")
    assert run(["tasks", "validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("bad.yaml:3: domian: unknown key (did you mean 'domain'?)") and "\n" not in err


def test_validate_function_needs_named_dir(capsys, tmp_path):
    (tmp_path / "utils.py").write_text("def f(d, r):\n    return {}\n")
    (tmp_path / "data.jsonl").write_text('{"instruction": "x"}\n')
    p = tmp_path / "t.yaml"
    p.write_text("task: t\ndataset_path: data.jsonl\ndoc_to_text: instruction\nprocess_results: !function utils.f\n"
                 "metric_list: [{metric: acc}]\n")
    assert run(["tasks", "validate", str(p)]) == 2
    assert "t.yaml:4: !function utils.f" in capsys.readouterr().err
    assert run(["tasks", "validate", str(p), "--tasks-dir", str(tmp_path)]) == 0


def test_validate_builtin_dir(capsys):
    assert run(["tasks", "validate", str(cli.build_index().dirs[0])]) == 0
    assert "instructions-mini  56 docs" in capsys.readouterr().out
