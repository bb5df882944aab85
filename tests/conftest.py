"""Shared test settings: offline hubs, loopback-only Ray, a temporary HARNESS_HOME.

These variables are set before any test module imports transformers, datasets or ray,
so an accidental hub call fails at once instead of after a 48 s timeout.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def harness_home(tmp_path_factory) -> Path:
    """A HARNESS_HOME shared by the whole test session (built models are cached there)."""
    home = Path(os.environ.get("HARNESS_TEST_HOME") or tmp_path_factory.mktemp("harness_home"))
    os.environ["HARNESS_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` when present; tests that need it skip cleanly otherwise."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(harness_home) -> Path:
    """The deterministic tiny-random-llama, built once per test session."""
    from harness.models import resolve

    return resolve("tiny-random-llama").path


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))
