"""Is the Hugging Face hub switched off? One answer for models and datasets.

Users switch the hub off with ``HF_HUB_OFFLINE`` (everything), ``TRANSFORMERS_OFFLINE``
(models) or ``HF_DATASETS_OFFLINE`` (datasets); the harness then refuses hub ids at once
instead of waiting for a download to time out.

Example:
    >>> import os
    >>> os.environ["HF_DATASETS_OFFLINE"] = "1"
    >>> hub_offline("datasets"), hub_offline("models") == env_true("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    (True, True)
    >>> del os.environ["HF_DATASETS_OFFLINE"]
"""

from __future__ import annotations

import os

TRUE_WORDS = ("1", "true", "yes", "on")

#: Which environment variables switch the hub off for each kind of download.
OFFLINE_VARS = {
    "models": ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"),
    "datasets": ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"),
}


def env_true(*names: str) -> bool:
    """True when any of the environment variables ``names`` holds a true word (1, true, yes, on)."""
    return any(os.environ.get(n, "").strip().lower() in TRUE_WORDS for n in names)


def hub_offline(kind: str) -> bool:
    """True when the hub is off for ``kind`` (``models`` or ``datasets``)."""
    try:
        return env_true(*OFFLINE_VARS[kind])
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(OFFLINE_VARS)}, got {kind!r}") from None
