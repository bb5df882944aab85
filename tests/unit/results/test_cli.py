"""The runs / compare / export / report verbs through harness.cli.main."""

from __future__ import annotations

import json

import pytest

from harness.cli import main


def test_runs_list(store_root, capsys):
    assert main(["runs", "list", "--store", str(store_root)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["run_id", "created", "status", "model", "tasks", "variants", "samples"]
    assert lines[2].split() == ["r1", "2025-01-01", "00:00:00", "finished", "tiny", "mini", "none,rules", "11"]
    assert "(3 runs)" in out
    assert main(["runs", "--store", str(store_root), "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["n_samples"] for r in rows] == [11, 4, 60]


def test_compare_prints_deltas_and_flips(store_root, capsys):
    assert main(["compare", "r1", "--baseline", "none", "--treatment", "rules", "--store", str(store_root),
                 "--metric", "eos", "echo"]) == 0
    out = capsys.readouterr().out
    assert "4 pairs" in out
    eos = next(line for line in out.splitlines() if line.startswith("eos "))
    assert eos.split()[:6] == ["eos", "bool", "4", "0.250", "1.000", "+0.750"]
    assert eos.split()[-4:] == ["3", "0", "0.25", "higher"]  # b01, b10, McNemar p, direction
    assert "mini/0  +eos: length -> eos; +echo: echo -> no echo" in out
    assert "mini/3  -echo: no echo -> echo" in out


def test_compare_two_runs_json(store_root, capsys):
    assert main(["compare", "r1", "r2", "--store", str(store_root), "--format", "json",
                 "--metric", "output_tokens"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["baseline"] == {"run": "r1", "variant": "rules"}  # the one shared variant
    assert data["deltas"][0]["delta"] == pytest.approx(1.25)


def test_export_to_file_and_stdout(store_root, tmp_path, capsys):
    out = tmp_path / "o" / "rules.json"
    assert main(["export", "r1", "--format", "alpaca-eval", "--variant", "rules", "--out", str(out),
                 "--store", str(store_root)]) == 0
    assert len(json.loads(out.read_text())) == 4
    assert "left out 1 rows" in capsys.readouterr().err
    assert main(["export", "r2", "--format", "jsonl", "--store", str(store_root)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_report_verb(store_root, tmp_path, capsys):
    assert main(["report", "r1", "--out", str(tmp_path / "rep"), "--store", str(store_root), "--iters", "100"]) == 0
    assert (tmp_path / "rep" / "report.md").is_file()
    assert "plots in" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["runs", "list", "--store", "{missing}"], "no results store there"),
    (["compare", "nope", "--store", "{store}"], "run 'nope': not in store"),
    (["compare", "r1", "--treatment", "rulez", "--store", "{store}"], "no variant 'rulez'"),
    (["compare", "r1", "--metric", "eso", "--store", "{store}"], "unknown per-sample metric 'eso'"),
    (["compare", "r1", "abl", "--store", "{store}"], "share variants none, rules; pick one with --variant"),
    (["compare", "r1", "--variant", "rules", "--store", "{store}"], "--variant is for two runs"),
    (["export", "r1", "--format", "alpaca-eval", "--store", "{store}"], "pick one with --variant"),
    (["export", "r9", "--store", "{store}"], "run 'r9'"),
    (["report", "r1", "--store", "{missing}"], "no results store there"),
    (["query", "--store", "{store}", "selec 1"], "query: "),
])
def test_errors_are_one_line_exit_2(store_root, tmp_path, capsys, argv, message):
    argv = [a.format(store=store_root, missing=tmp_path / "missing") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("verb", [["runs", "list"], ["runs"], ["compare"], ["export"], ["report"]])
def test_help_has_description_and_examples(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*verb, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--store" in out
