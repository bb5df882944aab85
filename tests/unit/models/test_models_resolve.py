"""resolve(): built-ins, local dirs, errors, fingerprint cache; and the `models` CLI."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from harness.errors import HarnessError
from harness.models import BUILTINS, ResolvedModel, resolve
from harness.models import fingerprint as fp_mod
from harness.models.fingerprint import fingerprint_dir
from harness.models.home import harness_home as home_of
from harness.models.tiny import build_tiny_random_llama


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_random_llama(tmp_path_factory.mktemp("tiny") / "my-tiny")


def test_unknown_name_suggests_and_lists(harness_home):
    with pytest.raises(HarnessError) as e:
        resolve("tiny-random-lama")
    msg = str(e.value)
    assert "did you mean 'tiny-random-llama'" in msg
    assert all(name in msg for name in BUILTINS)
    assert "\n" not in msg


def test_prefix_of_builtin_is_suggested(harness_home):
    with pytest.raises(HarnessError, match="did you mean 'smollm2-135m-instruct'"):
        resolve("smollm2")


def test_hub_id_uses_snapshot_download_when_online(harness_home, tiny_dir, monkeypatch):
    import huggingface_hub

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    seen = {}

    def fake_snapshot(repo_id, revision=None, allow_patterns=None, local_files_only=False):
        seen.update(repo_id=repo_id, revision=revision, local_files_only=local_files_only)
        return str(tiny_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    m = resolve("someorg/tiny@v1")
    assert (m.name, m.source, m.path) == ("someorg/tiny@v1", "hub", tiny_dir)
    assert seen == {"repo_id": "someorg/tiny", "revision": "v1", "local_files_only": False}


def test_missing_paths_are_named(harness_home, tmp_path):
    for spec in (str(tmp_path / "nope"), "./no/such/dir", str(tmp_path / "x.gguf")):
        with pytest.raises(HarnessError, match="no such file or directory") as e:
            resolve(spec)
        assert spec in str(e.value)


def test_offline_hub_id_fails_fast(harness_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HarnessError, match="HF_HUB_OFFLINE") as e:
        resolve("someorg/some-model")
    assert "someorg/some-model" in str(e.value)


def test_deepspeed_prefix_names_a_missing_path(harness_home):
    with pytest.raises(HarnessError, match=r"^/ckpt/step3: no such file or directory$"):
        resolve("deepspeed:/ckpt/step3")


def test_dir_without_config_and_non_model_file(harness_home, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no config.json"):
        resolve(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(HarnessError, match="notes.txt"):
        resolve(str(tmp_path / "notes.txt"))


def test_local_dir_resolves(harness_home, tiny_dir):
    m = resolve(str(tiny_dir))
    assert isinstance(m, ResolvedModel)
    assert (m.name, m.path, m.source, m.default_prompt_format) == ("my-tiny", tiny_dir, "local", "tulu")
    assert m.fingerprint == fingerprint_dir(tiny_dir, harness_home) and len(m.fingerprint) == 64
    with pytest.raises(Exception):
        m.name = "other"  # frozen


def test_builtin_not_pulled_without_pull_missing(tmp_path):
    with pytest.raises(HarnessError, match="harness models pull tiny-random-llama"):
        resolve("tiny-random-llama", home=tmp_path / "fresh", pull_missing=False)


def test_builtin_pull_and_resolve(harness_home):
    m = resolve("tiny-random-llama")
    assert m.source == "builtin" and m.default_prompt_format == "tulu"
    assert m.path == home_of() / "models" / "tiny-random-llama"
    meta = json.loads((m.path / "harness_model.json").read_text())
    assert meta["name"] == "tiny-random-llama" and meta["fingerprint"] == m.fingerprint
    assert {"source", "sha256", "created_at"} <= set(meta)
    # the pulled dir, given as a path, keeps its built-in name and prompt format
    again = resolve(str(m.path), pull_missing=False)
    assert (again.name, again.source, again.fingerprint) == ("tiny-random-llama", "local", m.fingerprint)


def test_fingerprint_cache_reused_then_invalidated(harness_home, tmp_path, monkeypatch):
    d = build_tiny_random_llama(tmp_path / "t")
    first = fingerprint_dir(d, harness_home)
    cache = json.loads((harness_home / "fingerprints.json").read_text())
    assert os.path.realpath(d / "model.safetensors") in cache

    hashed = []
    real = fp_mod.sha256_file
    monkeypatch.setattr(fp_mod, "sha256_file", lambda p, *a: hashed.append(p.name) or real(p, *a))
    assert fingerprint_dir(d, harness_home) == first
    assert "model.safetensors" not in hashed  # cache hit
    assert "config.json" in hashed  # small files are always re-read

    st = os.stat(d / "model.safetensors")
    os.utime(d / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    hashed.clear()
    assert fingerprint_dir(d, harness_home) == first  # same content, same fingerprint
    assert "model.safetensors" in hashed  # but the changed mtime forced a re-hash

    data = bytearray((d / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (d / "model.safetensors").write_bytes(bytes(data))
    assert fingerprint_dir(d, harness_home) != first


def test_gguf_without_pull_and_garbage_gguf(harness_home, tmp_path):
    g = tmp_path / "junk.gguf"
    g.write_bytes(b"not a gguf file")
    with pytest.raises(HarnessError, match="not converted yet"):
        resolve(str(g), pull_missing=False)
    with pytest.raises(HarnessError, match="junk.gguf"):
        resolve(str(g))
    assert not list((harness_home / "models").glob(".gguf-*"))  # failed build left nothing behind


def _parser():
    from harness.models.cli import register

    p = argparse.ArgumentParser(prog="harness")
    register(p.add_subparsers())
    return p


def test_cli_list_path_and_help(harness_home, capsys):
    p = _parser()
    args = p.parse_args(["models", "path", "tiny-random-llama"])
    assert args.func(args) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(home_of() / "models" / "tiny-random-llama")

    args = p.parse_args(["models", "list"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for name in BUILTINS:
        assert name in out
    row = next(line for line in out.splitlines() if line.startswith("tiny-random-llama"))
    assert "yes" in row and path in row

    with pytest.raises(SystemExit) as e:
        p.parse_args(["models", "pull", "--help"])
    assert e.value.code == 0
    assert "harness models pull smollm2-135m-instruct" in capsys.readouterr().out

    args = p.parse_args(["models", "pull", "smollm-135m"])
    with pytest.raises(HarnessError, match="did you mean"):
        args.func(args)
