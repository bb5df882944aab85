"""Bad input: a one-line error naming the file/field, exit code 2, nothing written."""

import pytest

from harness.cli import main


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


def _check(capsys, store, argv, match):
    code = main(argv + ["--store", str(store)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("harness: ") and "\n" not in err and match in err, err
    assert not store.exists(), "bad input must not write to the store"


def test_missing_config(capsys, store, tmp_path):
    _check(capsys, store, ["run", str(tmp_path / "nope.yaml")], "nope.yaml: config file not found")


def test_malformed_config_yaml(capsys, store, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("tasks: [instructions-mini\nlimit: 2\n")
    _check(capsys, store, ["run", str(cfg)], "bad.yaml:")


def test_unknown_config_key(capsys, store, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("tasks: instructions-mini\nlimt: 2\n")
    _check(capsys, store, ["run", str(cfg)], "limt: unknown setting (did you mean 'limit'?)")


def test_unknown_model(capsys, store, harness_home):
    _check(capsys, store, ["run", "--model", "gemma-3-27m", "--tasks", "instructions-mini"], "gemma-3-27m")


def test_unknown_task(capsys, store):
    _check(capsys, store, ["run", "--model", "tiny-random-llama", "--tasks", "instructions-mni"], "instructions-mni")


def test_malformed_jsonl(capsys, store, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"instruction": "ok"}\n{"instruction": broken\n')
    _check(capsys, store, ["run", "--model", "tiny-random-llama", "--prompts", str(f)], "p.jsonl:2")


def test_limit_zero(capsys, store):
    _check(capsys, store, ["run", "--tasks", "instructions-mini", "--limit", "0"], "limit")


def test_unknown_variant(capsys, store):
    _check(capsys, store, ["run", "--tasks", "instructions-mini", "--variants", "none,rules:eos-unifrom"], "unifrom")
