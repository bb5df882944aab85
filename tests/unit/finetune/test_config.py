"""Config validation: one-line errors naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.finetune.config import FinetuneConfig

REPO = Path(__file__).resolve().parents[3]
BASE = {"model": "tiny-random-llama", "output_dir": "/tmp/x", "data": {"format": "gsm", "path": "g.jsonl"}}


def _cfg(**kw):
    return FinetuneConfig.from_dict({**BASE, **kw}, source="ft.yaml")


def _err(match, **kw):
    with pytest.raises(HarnessError, match=match) as info:
        _cfg(**kw)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("ft.yaml")


def test_defaults_follow_the_paper():
    cfg = _cfg()
    assert (cfg.lr, cfg.batch_size, cfg.micro_batch_size, cfg.max_seq_length) == (1e-5, 64, 1, 2048)
    assert (cfg.weight_decay, cfg.schedule, cfg.warmup, cfg.zero_stage, cfg.seed) == (0.0, "linear", 0.03, 3, 42)
    assert cfg.grad_accum_steps == 32  # 64 / (2 workers x 1)
    assert (cfg.user_tag, cfg.assistant_tag) == ("<|user|>", "<|assistant|>")
    assert _cfg(schedule="cosine").warmup == 0.10
    assert _cfg(schedule="cosine", warmup_ratio=0.05).warmup == 0.05


def test_string_numbers_and_tags():
    cfg = _cfg(lr="1e-5", user_tag="<|A|>", assistant_tag="<|B|>")
    assert cfg.lr == 1e-5 and (cfg.user_tag, cfg.assistant_tag) == ("<|A|>", "<|B|>")


def test_typed_coercion():
    cfg = _cfg(epochs="3", use_gpu="no", overwrite="true", data={"format": "gsm", "path": "g", "limit": "5"})
    assert (cfg.epochs, cfg.use_gpu, cfg.overwrite, cfg.data[0].limit) == (3, False, True, 5)


@pytest.mark.parametrize("kw, match", [
    ({"epoch": 3}, r"ft.yaml: epoch: unknown key \(did you mean 'epochs'\?\)"),
    ({"objective": "responses"}, r"objective: unknown value 'responses' \(did you mean 'response'\?\)"),
    ({"schedule": "constant"}, r"schedule: unknown value 'constant'"),
    ({"zero_stage": 1}, r"zero_stage: must be 2 or 3"),
    ({"batch_size": 10, "num_workers": 4}, r"batch_size: 10 is not a multiple of num_workers x micro_batch_size = 4 x 1"),
    ({"epochs": "five"}, r"epochs: expected an integer, got 'five'"),
    ({"epochs": 2.5}, r"epochs: expected an integer"),
    ({"use_gpu": "maybe"}, r"use_gpu: expected true or false, got 'maybe'"),
    ({"lr": [1e-5]}, r"lr: expected a number, got \[1e-05\]"),
    ({"data": {"format": "gsm", "path": "g", "limit": "many"}}, r"data.limit: expected an integer or null, got 'many'"),
    ({"lr": 0}, r"lr: must be > 0"),
    ({"warmup_ratio": 1.5}, r"warmup_ratio: must be in \[0, 1\)"),
    ({"weight_decay": -0.1}, r"weight_decay: must be >= 0"),
    ({"cpus_per_worker": 0}, r"cpus_per_worker: must be > 0"),
    ({"max_steps": 0}, r"max_steps: must be >= 1"),
    ({"assistant_tag": "<|user|>"}, r"assistant_tag: must differ"),
    ({"user_tag": " "}, r"user_tag: must be a non-empty tag"),
    ({"output_dir": ""}, r"output_dir: required"),
    ({"seed": None}, r"seed: must not be empty"),
    ({"data": {"format": "gsmk", "path": "g.jsonl"}}, r"data.format: unknown format 'gsmk' \(did you mean 'gsm'\?\)"),
    ({"data": {"format": "gsm"}}, r"data.path: required string"),
    ({"data": {"format": "gsm", "path": "g", "lmit": 3}}, r"data.lmit: unknown key \(did you mean 'limit'\?\)"),
    ({"data": [{"format": "gsm", "path": "g", "limit": 0}]}, r"data\[0\].limit: expected a positive integer"),
    ({"data": {"format": "messages", "path": "g", "odd_turns": "keep"}}, r"data.odd_turns: expected 'drop' or 'error'"),
    ({"data": "g.jsonl"}, r"data: expected a mapping with format and path"),
])
def test_errors(kw, match):
    _err(match, **kw)


def test_missing_data():
    with pytest.raises(HarnessError, match="ft.yaml: data: required"):
        FinetuneConfig.from_dict({"output_dir": "/tmp/x"}, source="ft.yaml")


def test_load_yaml_resolves_data_paths_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("output_dir: out\ndata:\n  - {format: poetry, path: poems.jsonl, limit: 5}\nepochs: 3\n")
    cfg = FinetuneConfig.load(p, {"epochs": 7, "max_steps": None})
    assert cfg.epochs == 7 and cfg.max_steps is None and cfg.output_dir == str(tmp_path / "out")
    assert cfg.data[0].path == str(tmp_path / "poems.jsonl") and cfg.data[0].limit == 5
    assert cfg.to_json()["grad_accum_steps"] == 32


def test_load_errors(tmp_path):
    with pytest.raises(HarnessError, match="config file not found"):
        FinetuneConfig.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(HarnessError, match=r"bad.yaml:\d+: invalid YAML"):
        FinetuneConfig.load(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n")
    with pytest.raises(HarnessError, match="expected a mapping"):
        FinetuneConfig.load(lst)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs" / "finetune").glob("*.yaml")))
def test_example_configs_validate(name):
    cfg = FinetuneConfig.load(REPO / "configs" / "finetune" / name)
    assert cfg.data and cfg.output_dir


def test_cli_rejects_bad_config(tmp_path, capsys):
    from harness.cli import main

    p = tmp_path / "c.yaml"
    p.write_text("output_dir: out\ndata: {format: gsm, path: g.jsonl}\nlearning_rate: 1e-5\n")
    assert main(["finetune", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"harness: {p}: learning_rate: unknown key")
    assert "\n" not in err
