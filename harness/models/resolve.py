"""Turn a model spec typed by the user into a local HF directory plus a fingerprint.

Accepted specs, tried in this order:

1. a registered prefix (``deepspeed:...``; see :data:`PREFIX_RESOLVERS`);
2. a built-in name (``gemma-3-270m``), pulled when missing;
3. an existing local HF dir (has ``config.json``);
4. an existing ``.gguf`` file, converted once into ``$HARNESS_HOME/models/gguf-<sha[:16]>``;
5. a hub id ``org/name`` (optionally ``org/name@revision``), only when
   ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` are not set.

Example:
    >>> m = resolve("tiny-random-llama")           # doctest: +SKIP
    >>> m.source, m.default_prompt_format          # doctest: +SKIP
    ('builtin', 'tulu')
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError
from harness.models.builtin import BUILTINS, suggest
from harness.models.deepspeed_source import looks_like_zero_checkpoint, resolve_deepspeed
from harness.models.fingerprint import cached_sha256, fingerprint_dir
from harness.models.home import harness_home, models_dir
from harness.models.local_dir import ResolvedModel, describe_dir
from harness.models.pull import build_atomically, is_complete, pull, read_meta
from harness.offline import hub_offline

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


Resolver = Callable[[str, Path, bool], ResolvedModel]


#: Spec prefix -> resolver ``(spec, home, pull_missing) -> ResolvedModel``.
#: Adding a source kind is one line here (or a call to :func:`register_prefix`).
PREFIX_RESOLVERS: dict[str, Resolver] = {
    "deepspeed:": resolve_deepspeed,
}


def register_prefix(prefix: str, resolver: Resolver) -> None:
    """Route specs starting with ``prefix`` (e.g. ``"deepspeed:"``) to ``resolver``.

    Example:
        >>> register_prefix("demo:", lambda spec, home, pull_missing: None)
        >>> "demo:" in PREFIX_RESOLVERS
        True
        >>> del PREFIX_RESOLVERS["demo:"]
    """
    PREFIX_RESOLVERS[prefix] = resolver


def _resolve_builtin(name: str, home: Path, pull_missing: bool) -> ResolvedModel:
    path = models_dir(home) / name
    if not is_complete(path):
        if not pull_missing:
            raise HarnessError(f"model {name!r} is not pulled yet; run: harness models pull {name}")
        path = pull(name, home)
    entry = BUILTINS[name]
    return ResolvedModel(name=name, path=path, fingerprint=fingerprint_dir(path, home),
                         source="builtin", default_prompt_format=entry.default_prompt_format)


def _resolve_gguf(gguf: Path, home: Path, pull_missing: bool) -> ResolvedModel:
    gguf = gguf.resolve()
    sha = cached_sha256([gguf], home)[gguf]
    final = models_dir(home) / f"gguf-{sha[:16]}"
    if not is_complete(final):
        if not pull_missing:
            raise HarnessError(f"{gguf}: not converted yet; run: harness models pull {gguf}")

        def build(tmp: Path) -> dict:
            from harness.models.gguf import convert_gguf

            convert_gguf(gguf, tmp)
            return {"name": gguf.stem, "source": f"gguf:{gguf}", "sha256": sha}

        build_atomically(final, home, final.name, build)
    return describe_dir(final, home, "gguf", name=read_meta(final).get("name") or gguf.stem)


def _resolve_hub(spec: str, home: Path, pull_missing: bool) -> ResolvedModel:
    repo_id, _, revision = spec.partition("@")
    if hub_offline("models"):
        raise HarnessError(
            f"model {spec!r}: not a built-in name or an existing path, and HF_HUB_OFFLINE is set so the hub "
            f"cannot be used; built-in models: {', '.join(BUILTINS)}"
        )
    from huggingface_hub import snapshot_download

    logger.info("%s: fetching from the Hugging Face hub", spec)
    patterns = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]
    try:
        local = snapshot_download(repo_id=repo_id, revision=revision or None, allow_patterns=patterns,
                                  local_files_only=not pull_missing)
    except Exception as exc:  # hub errors come in many types; keep the message to one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarnessError(f"model {spec!r}: hub download failed: {first}") from exc
    return describe_dir(Path(local), home, "hub", name=spec)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or spec.endswith(".gguf") or spec in (".", "..")


def resolve(spec: str, *, home: Path | str | None = None, pull_missing: bool = True) -> ResolvedModel:
    """Resolve a model spec to a local HF directory with a content fingerprint.

    Args:
        spec: built-in name, local HF dir, ``.gguf`` file, hub id, or ``prefix:...``.
        home: harness home; default ``$HARNESS_HOME`` or ``~/.cache/harness``.
        pull_missing: download/build/convert when needed; when False, only already
            local models resolve (use in workers after the driver resolved once).

    Returns:
        A frozen :class:`ResolvedModel`.

    Raises:
        HarnessError: unknown name (with a suggestion), missing path, offline hub id,
            unsupported prefix, or a directory that is not a model.

    Example:
        >>> resolve("tiny-random-lama")   # doctest: +SKIP
        HarnessError: unknown model 'tiny-random-lama' (did you mean 'tiny-random-llama'?); ...
    """
    spec = str(spec).strip()
    if not spec:
        raise HarnessError(f"model: empty spec; built-in models: {', '.join(BUILTINS)}")
    root = harness_home(home)
    for prefix, resolver in PREFIX_RESOLVERS.items():
        if spec.startswith(prefix):
            return resolver(spec, root, pull_missing)
    if spec in BUILTINS:
        return _resolve_builtin(spec, root, pull_missing)
    path = Path(spec).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_dir():
            if looks_like_zero_checkpoint(path):  # latest / global_step* / zero_pp_rank_*: a raw ZeRO dir
                return resolve_deepspeed(str(path), root, pull_missing)
            return describe_dir(path, root, "local")
        if path.suffix == ".gguf":
            return _resolve_gguf(path, root, pull_missing)
        raise HarnessError(f"{path}: not a model directory (with config.json) or a .gguf file")
    if _looks_like_path(spec):
        raise HarnessError(f"{spec}: no such file or directory")
    if _HUB_ID.match(spec):
        return _resolve_hub(spec, root, pull_missing)
    raise HarnessError(
        f"unknown model {spec!r}{suggest(spec)}; built-in models: {', '.join(BUILTINS)}; "
        "or pass a local HF dir, a .gguf file or a hub id org/name"
    )
