"""A local Hugging Face model directory as the harness sees it: :class:`ResolvedModel`.

Every model source (built-in pulls, local dirs, GGUF conversions, hub snapshots,
DeepSpeed ZeRO conversions) ends in a local HF directory; :func:`describe_dir` checks it
and fingerprints it. Kept apart from :mod:`harness.models.resolve` so that the sources
it dispatches to (e.g. :mod:`harness.models.deepspeed_source`) can use it without an
import circle.

Example:
    >>> guess_prompt_format(Path("/nonexistent"))
    'tulu'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.models.builtin import BUILTINS
from harness.models.fingerprint import fingerprint_dir, weight_files
from harness.models.pull import read_meta


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load with ``from_pretrained(path)``.

    Attributes:
        name: display name (built-in name, dir name, GGUF stem or hub id).
        path: local HF directory.
        fingerprint: sha256 hex over config, tokenizer and weight file contents.
        source: ``builtin``, ``local``, ``gguf`` or ``hub``.
        default_prompt_format: ``tulu`` or ``hf`` (chat template).
    """

    name: str
    path: Path
    fingerprint: str
    source: str
    default_prompt_format: str


def guess_prompt_format(model_dir: Path) -> str:
    """``hf`` when the tokenizer ships a chat template, else ``tulu``.

    Example:
        >>> guess_prompt_format(Path("/nonexistent"))
        'tulu'
    """
    if (model_dir / "chat_template.jinja").is_file() or (model_dir / "chat_template.json").is_file():
        return "hf"
    try:
        cfg = json.loads((model_dir / "tokenizer_config.json").read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return "tulu"
    return "hf" if cfg.get("chat_template") else "tulu"


def describe_dir(path: Path, home: Path, source: str, name: str | None = None) -> ResolvedModel:
    """Build a :class:`ResolvedModel` for an HF dir, checking that it has weights."""
    if not (path / "config.json").is_file():
        raise HarnessError(f"{path}: not a model directory (no config.json)")
    if not [p for p in weight_files(path) if not p.name.endswith(".json")]:
        raise HarnessError(f"{path}: no weight files (*.safetensors or *model*.bin)")
    meta = read_meta(path)
    name = name or meta.get("name") or path.name
    builtin = BUILTINS.get(meta.get("name", ""))
    fmt = builtin.default_prompt_format if builtin else guess_prompt_format(path)
    return ResolvedModel(name=name, path=path, fingerprint=fingerprint_dir(path, home),
                         source=source, default_prompt_format=fmt)
