"""Content fingerprints of HF model directories.

A fingerprint is the sha256 over ``(file name, file sha256)`` for ``config.json``, the
tokenizer files and the weight files, sorted by name. Two dirs with the same content
get the same fingerprint wherever they live. Weight-file hashes are cached in
``$HARNESS_HOME/fingerprints.json`` keyed by (absolute path, size, mtime_ns), so a
1 GB model is hashed once.

Example:
    >>> fp = fingerprint_dir(Path("/tmp/tiny"), Path("/tmp/hh"))   # doctest: +SKIP
    >>> len(fp)                                                     # doctest: +SKIP
    64
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from filelock import FileLock

from harness.models.home import lock_path

logger = logging.getLogger(__name__)

CACHE_FILE = "fingerprints.json"
CONFIG_FILES = ("config.json",)
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt", "chat_template.jinja", "chat_template.json",
)
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks.

    Example:
        >>> sha256_file(Path("/dev/null"))
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def weight_files(model_dir: Path) -> list[Path]:
    """Top-level weight files (``*.safetensors``, ``*model*.bin``) and their index files."""
    def is_weight(p: Path) -> bool:
        if p.name in WEIGHT_INDEXES or p.suffix == ".safetensors":
            return True
        return p.suffix == ".bin" and "model" in p.name

    return sorted(p for p in model_dir.iterdir() if p.is_file() and is_weight(p))


def fingerprint_files(model_dir: Path) -> tuple[list[Path], list[Path]]:
    """Return ``(small files, weight files)`` that make up a directory's fingerprint."""
    small = [model_dir / n for n in CONFIG_FILES + TOKENIZER_FILES if (model_dir / n).is_file()]
    weights = [p for p in weight_files(model_dir) if p.name not in WEIGHT_INDEXES]
    small += [p for p in weight_files(model_dir) if p.name in WEIGHT_INDEXES]
    return small, weights


def _cache_key(path: Path) -> tuple[str, int, int]:
    real = os.path.realpath(path)
    st = os.stat(real)
    return real, st.st_size, st.st_mtime_ns


def _read_cache(home: Path) -> dict:
    try:
        data = json.loads((home / CACHE_FILE).read_text("utf-8"))
        return data if isinstance(data, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def _write_cache(home: Path, updates: dict[str, dict], remove: tuple[str, ...] = ()) -> None:
    """Merge ``updates`` into (and drop ``remove`` from) the cache file under a lock, atomically."""
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path(home, "fingerprints"))):
        cache = _read_cache(home)
        for key in remove:
            cache.pop(key, None)
        cache.update(updates)
        tmp = home / f".{CACHE_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, home / CACHE_FILE)


def cached_sha256(paths: list[Path], home: Path) -> dict[Path, str]:
    """sha256 of each path, reusing ``fingerprints.json`` entries whose size and mtime match.

    Example:
        >>> cached_sha256([Path("model.safetensors")], Path("/tmp/hh"))   # doctest: +SKIP
        {PosixPath('model.safetensors'): '9f86...'}
    """
    cache = _read_cache(home)
    out: dict[Path, str] = {}
    updates: dict[str, dict] = {}
    for p in paths:
        real, size, mtime = _cache_key(p)
        hit = cache.get(real)
        if isinstance(hit, dict) and hit.get("size") == size and hit.get("mtime_ns") == mtime:
            out[p] = hit["sha256"]
            continue
        logger.info("hashing %s (%.1f MB)", real, size / 1e6)
        out[p] = sha256_file(p)
        updates[real] = {"size": size, "mtime_ns": mtime, "sha256": out[p]}
    if updates:
        _write_cache(home, updates)
    return out


def rekey_cache(old_dir: Path, new_dir: Path, home: Path) -> None:
    """Move cache entries of files under ``old_dir`` to the same names under ``new_dir``.

    Used after a build dir is renamed into place, so the new path is not hashed again.
    Entries are only moved when the file at the new path has the cached size and mtime.
    """
    old_prefix = os.path.realpath(old_dir) + os.sep
    cache = _read_cache(home)
    updates = {}
    moved = tuple(k for k in cache if k.startswith(old_prefix))
    for key in moved:
        entry = cache[key]
        if not isinstance(entry, dict):
            continue
        new_path = Path(new_dir) / key[len(old_prefix):]
        try:
            real, size, mtime = _cache_key(new_path)
        except FileNotFoundError:
            continue
        if entry.get("size") == size and entry.get("mtime_ns") == mtime:
            updates[real] = dict(entry)
    if moved:
        _write_cache(home, updates, remove=moved)


def fingerprint_dir(model_dir: Path, home: Path) -> str:
    """Content fingerprint (sha256 hex) of an HF model directory.

    Args:
        model_dir: directory holding ``config.json``, tokenizer and weight files.
        home: harness home whose ``fingerprints.json`` caches weight-file hashes.

    Example:
        >>> fingerprint_dir(Path("/tmp/tiny"), Path("/tmp/hh"))   # doctest: +SKIP
        '3c1a...'
    """
    model_dir = Path(model_dir)
    small, weights = fingerprint_files(model_dir)
    hashes = {p: sha256_file(p) for p in small}
    hashes.update(cached_sha256(weights, home))
    h = hashlib.sha256()
    for p in sorted(hashes, key=lambda q: q.name):
        h.update(f"{p.name}\0{hashes[p]}\n".encode())
    return h.hexdigest()
