"""``harness run --engine``: the refusal, the auto fallback, and a run on vLLM in-process.

The vLLM run starts one in-process engine on the head-size-32 tiny model (about 15 s).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.store import read_table

sys.path.insert(0, str(Path(__file__).parent))
from vllm_model import build_vllm_tiny  # noqa: E402

BASE = ["run", "--tasks", "instructions-mini", "--limit", "2", "--max-new-tokens", "6", "--no-ray", "-q"]


def test_explicit_vllm_that_cannot_run_exits_2_and_writes_nothing(capsys, tmp_path, tiny_model_dir):
    store = tmp_path / "store"
    code = main(BASE + ["--model", "tiny-random-llama", "--engine", "vllm", "--store", str(store)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("harness: --engine vllm: cannot run here") and "\n" not in err, err
    assert "head size 16" in err and not store.exists()


def test_auto_says_why_it_runs_hf_and_records_it(capsys, tmp_path, tiny_model_dir):
    store = tmp_path / "store"
    assert main(BASE + ["--model", "tiny-random-llama", "--store", str(store)]) == 0
    captured = capsys.readouterr()
    notes = [line for line in captured.out.splitlines() if line.startswith("engine auto -> hf: ")]
    assert len(notes) == 1 and "head size 16" in notes[0]
    assert "engine hf" in captured.out
    assert set(read_table(store, "samples").column("engine").to_pylist()) == {"hf"}


@pytest.fixture(scope="module")
def vtiny(tiny_model_dir, harness_home) -> Path:
    return build_vllm_tiny(tiny_model_dir, harness_home / "vllm-tiny")


def test_vllm_run_records_engine_in_rows_and_keys(capsys, tmp_path, vtiny):
    store = tmp_path / "store"
    assert main(BASE + ["--model", str(vtiny), "--engine", "vllm", "--store", str(store)]) == 0
    assert "engine vllm" in capsys.readouterr().out
    assert main(BASE + ["--model", str(vtiny), "--engine", "hf", "--store", str(store)]) == 0
    rows = read_table(store, "samples").to_pylist()
    by_engine = {e: {(r["sample_id"], r["variant"]): r for r in rows if r["engine"] == e} for e in ("vllm", "hf")}
    assert len(by_engine["vllm"]) == len(by_engine["hf"]) == 4
    for k, r in by_engine["vllm"].items():
        h = by_engine["hf"][k]
        assert r["key"] != h["key"] and r["run_id"] != h["run_id"]  # the engine is in the content key and run id
        assert r["output_token_ids"] == h["output_token_ids"] and r["max_new_tokens"] == 6
