"""DeepSpeed: ZeRO-3 checkpoints as model sources, ``@all`` sweeps, and ``--tp`` AutoTP replicas.

The checkpoints are REAL: ``tests/integration/ds_helpers.py`` runs DeepSpeed ZeRO-3 on CPU
(gloo, 127.0.0.1, shm op disabled) from tiny-random-llama, with 1 rank and with 2 ranks
(torchrun). Tags saved before any optimizer step hold exactly the source weights, so
evaluating them must give the source model's greedy tokens, with and without the expert.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.store import read_table
_spec = importlib.util.spec_from_file_location("ds_helpers", Path(__file__).with_name("ds_helpers.py"))
ds_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ds_helpers)
copy_hf_files, make_zero3_checkpoint = ds_helpers.copy_hf_files, ds_helpers.make_zero3_checkpoint

RUN = ["run", "--tasks", "instructions-mini", "--limit", "2", "--max-new-tokens", "8", "--batch-size", "2",
       "--variants", "none,rules", "-q"]


def _outputs(store: Path, model: str | None = None) -> dict:
    rows = read_table(store, "samples").to_pylist()
    return {(r["task"], r["sample_id"], r["variant"]): r["output_token_ids"] for r in rows
            if model is None or r["model"] == model}


def _converted(home: Path) -> set[str]:
    return {p.name for p in (home / "models").glob("*deepspeed-*")}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, tiny_model_dir) -> SimpleNamespace:
    """run1/ (1 rank; tags global_step2 = source weights, global_step10 = one AdamW step later)
    and out2/ckpt/ (2 ranks; tag global_step1), built concurrently."""
    root = tmp_path_factory.mktemp("zero")
    run1 = copy_hf_files(tiny_model_dir, root / "run1")  # config + tokenizer in the checkpoint dir itself
    out2 = copy_hf_files(tiny_model_dir, root / "out2")  # ... and in the parent of out2/ckpt
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(make_zero3_checkpoint, tiny_model_dir, run1, tags=["global_step2", "global_step10"],
                          step_before=("global_step10",))
        two = pool.submit(make_zero3_checkpoint, tiny_model_dir, out2 / "ckpt", world_size=2, tags=["global_step1"])
        one.result(), two.result()
    return SimpleNamespace(one=run1, two=out2 / "ckpt")


@pytest.fixture(scope="module")
def source(tmp_path_factory, tiny_model_dir) -> dict:
    store = tmp_path_factory.mktemp("source")
    assert main(RUN + ["--model", "tiny-random-llama", "--store", str(store), "--no-ray"]) == 0
    out = _outputs(store)
    assert {k[2] for k in out} == {"none", "rules"} and len(out) == 4
    return out


# ----------------------------------------------------------------------------- specs (no I/O)

def test_spec_parsing_and_natural_tag_order(tmp_path):
    from harness.models.deepspeed_source import natural_key, parse_spec

    zs = parse_spec("deepspeed:/a/b@c/run1@global_step3?base=/m/base")
    assert (str(zs.path), zs.tag, str(zs.base)) == ("/a/b@c/run1", "global_step3", "/m/base")
    assert parse_spec("deepspeed:/a/b@c/run1").tag is None  # an @ inside the path is not a tag
    with pytest.raises(HarnessError, match=r"\?base=HF_DIR"):
        parse_spec("deepspeed:/x?tokenizer=/y")
    tags = ["global_step10", "global_step2", "global_step1", "epoch2"]
    assert sorted(tags, key=natural_key) == ["epoch2", "global_step1", "global_step2", "global_step10"]


# ----------------------------------------------------------------------------- ZeRO sources

def test_one_rank_checkpoint_matches_source(ckpts, source, ray_cluster, harness_home, tmp_path):
    spec = f"deepspeed:{ckpts.one}@global_step2"
    assert main(RUN + ["--model", spec, "--store", str(tmp_path), "--no-ray"]) == 0
    assert _outputs(tmp_path) == source
    assert set(read_table(tmp_path, "samples").column("model").to_pylist()) == {"run1@global_step2"}
    from harness.models import resolve

    first = resolve(spec)
    meta = json.loads((first.path / "harness_model.json").read_text())
    assert meta["converted_in"] == "ray-task" and meta["tag"] == "global_step2"  # the driver never held weights
    before = _converted(harness_home)
    again = resolve(spec)  # content-hash key: reused, not rebuilt
    assert again.path == first.path and _converted(harness_home) == before and first.source == "deepspeed"


def test_two_rank_checkpoint_as_plain_path(ckpts, source, ray_cluster, tmp_path):
    # a plain ZeRO dir is detected (latest + global_step1/), config/tokenizer come from its parent
    assert main(RUN + ["--model", str(ckpts.two), "--store", str(tmp_path), "--no-ray"]) == 0
    assert _outputs(tmp_path) == source
    runs = read_table(tmp_path, "runs").to_pylist()
    assert [r["model"] for r in runs] == ["ckpt@global_step1"]


def test_base_override_and_tag_dir(ckpts, tiny_model_dir, ray_cluster):
    from harness.models import resolve

    plain = resolve(str(ckpts.two))
    with_base = resolve(f"deepspeed:{ckpts.two}@global_step1?base={tiny_model_dir}")
    tag_dir = resolve(str(ckpts.two / "global_step1"))  # the tag dir itself
    assert with_base.path == plain.path == tag_dir.path and tag_dir.name == "ckpt@global_step1"
    with pytest.raises(HarnessError, match=r"base has no config.json"):
        resolve(f"deepspeed:{ckpts.two}?base={ckpts.two}")


def test_in_process_conversion_without_ray(ckpts, tiny_model_dir, tmp_path, monkeypatch):
    import ray
    import torch
    from safetensors.torch import load_file

    from harness.models import resolve

    base = copy_hf_files(tiny_model_dir, tmp_path / "base")  # another base: another content hash
    (base / "generation_config.json").write_text(json.dumps({"max_length": 99}))
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    m = resolve(f"deepspeed:{ckpts.two}@global_step1?base={base}")
    assert json.loads((m.path / "harness_model.json").read_text())["converted_in"] == "process"
    got, want = load_file(m.path / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_sweep_all_tags(ckpts, source, ray_cluster, tmp_path, capsys):
    assert main(RUN + ["--model", f"deepspeed:{ckpts.one}@all", "--store", str(tmp_path), "--no-ray"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"run run1-global_step2-\w+,run1-global_step10-\w+: 8 sample rows", out), out  # natural order
    assert "run1@global_step10" in out and "run1@global_step2" in out  # one summary table for the sweep
    runs = read_table(tmp_path, "runs").to_pylist()
    assert sorted(r["model"] for r in runs) == ["run1@global_step10", "run1@global_step2"]
    assert _outputs(tmp_path, "run1@global_step2") == source
    assert len(_outputs(tmp_path, "run1@global_step10")) == 4


# ----------------------------------------------------------------------------- broken checkpoints

def _break(kind: str, src: Path, dst: Path) -> str:
    ckpt = shutil.copytree(src, dst / "ckpt")
    copy_hf_files(src.parent, dst)
    rank1 = ckpt / "global_step1" / "zero_pp_rank_1_mp_rank_00_optim_states.pt"
    if kind == "truncated":
        rank1.write_bytes(rank1.read_bytes()[: rank1.stat().st_size // 2])
        return str(ckpt)
    if kind == "missing-shard":
        rank1.unlink()
        return str(ckpt)
    if kind == "missing-rank":  # both files of rank 1 gone: only DeepSpeed itself can tell
        rank1.unlink()
        (ckpt / "global_step1" / "zero_pp_rank_1_mp_rank_00_model_states.pt").unlink()
        return str(ckpt)
    return f"deepspeed:{ckpt}@global_step99"


@pytest.mark.parametrize("kind, message", [
    ("truncated", r"zero_pp_rank_1_mp_rank_00_optim_states\.pt: truncated or not a torch checkpoint file"),
    ("missing-shard", r"global_step1: missing shard of rank 1"),
    ("missing-rank", r"global_step1: cannot consolidate the ZeRO checkpoint: ValueError: Expected 2"),
    ("unknown-tag", r"ckpt: no checkpoint tag 'global_step99' \(tags: global_step1; or @all\)"),
])
def test_broken_checkpoint_is_one_line_error(kind, message, ckpts, ray_cluster, harness_home, tmp_path, capsys):
    spec = _break(kind, ckpts.two, tmp_path / "broken")
    before = _converted(harness_home)
    store = tmp_path / "store"
    assert main(RUN + ["--model", spec, "--store", str(store), "--no-ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "broken" / "ckpt") in err[0], err
    assert re.search(message, err[0]), err[0]
    assert not store.exists() and _converted(harness_home) == before  # nothing written, no temp dirs left


# ----------------------------------------------------------------------------- tensor parallelism

def test_tp2_gives_tp1_greedy_outputs(source, ray_cluster, tmp_path):
    assert main(RUN + ["--model", "tiny-random-llama", "--tp", "2", "--store", str(tmp_path)]) == 0
    assert _outputs(tmp_path) == source  # with ("rules") and without ("none") the expert
    run = read_table(tmp_path, "runs").to_pylist()[0]
    replicas = json.loads(run["timings_json"])["replicas"]
    assert len(replicas) == 1 and replicas[0]["tp"] == 2 and len(set(replicas[0]["ranks"])) == 2
    assert json.loads(run["config_json"])["tp"] == 2


def test_tp_gang_that_cannot_fit_is_refused(ray_cluster, tiny_model_dir, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(RUN + ["--model", "tiny-random-llama", "--tp", "2", "--replicas", "3", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "harness: --tp 2 --replicas 3: needs 3 CPU(s) (2 ranks x 0.5 CPU per replica); the cluster has 2"
    assert not store.exists()
    assert main(RUN + ["--model", "tiny-random-llama", "--tp", "2", "--no-ray", "--store", str(store)]) == 2
    assert "drop --no-ray" in capsys.readouterr().err
