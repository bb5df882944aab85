"""Offline pieces of the lm-eval bridge: NLTK's punkt_tab and local-data task copies.

lm-eval's IFEval reads ``google/IFEval`` from the Hugging Face Hub and downloads NLTK's
``punkt_tab`` when imported. The bridge replaces both: :func:`offline_nltk` puts the
harness's bundled ``punkt_tab`` on ``nltk.data.path``, and :func:`write_local_tasks`
writes a copy of lm-eval's ``ifeval.yaml`` over the user's jsonl
(``--data ifeval=PATH``) into a temporary include dir.

Example:
    >>> sorted(LOCAL_TASKS)
    ['ifeval']
    >>> with write_local_tasks({"ifeval": Path("tasks/data/ifeval_sample.jsonl")}) as d:   # doctest: +SKIP
    ...     sorted(p.name for p in d.iterdir())
    ['ifeval.yaml', 'utils.py']
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from harness.errors import HarnessError

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "tasks"

# lm-eval task name -> (template dir, template file): tasks whose data the bridge can
# point at a local file given with ``--data NAME=PATH``.
LOCAL_TASKS: dict[str, tuple[str, str]] = {"ifeval": ("ifeval_local", "ifeval_local.yaml")}
PLACEHOLDER = '"@DATA_FILE@"'


def offline_nltk() -> None:
    """Make NLTK find the harness's bundled ``punkt_tab`` (never download).

    Uses the metrics room's ``harness.metrics.ifeval.NLTK_DATA`` (``harness/data/nltk_data``):
    it goes first on ``nltk.data.path`` and into ``NLTK_DATA`` (for Ray workers).
    """
    try:
        from harness.metrics.ifeval import NLTK_DATA as bundled
    except ImportError:
        bundled = Path(__file__).resolve().parent.parent / "data" / "nltk_data"
    if not Path(bundled).is_dir():
        log.warning("no bundled punkt_tab at %s; IFEval sentence checks may fail offline", bundled)
        return
    import nltk

    path = str(bundled)
    if path not in nltk.data.path:
        nltk.data.path.insert(0, path)
    if path not in os.environ.get("NLTK_DATA", "").split(os.pathsep):
        os.environ["NLTK_DATA"] = os.pathsep.join(p for p in (path, os.environ.get("NLTK_DATA")) if p)


def local_data(names: list[str], data: Mapping[str, Path] | None) -> dict[str, Path]:
    """The ``--data`` files that apply to bridge-local tasks among ``names``.

    Raises:
        HarnessError: a given file does not exist.

    >>> local_data(["ifeval", "my_task"], {})
    {}
    """
    out: dict[str, Path] = {}
    for name in names:
        if name in LOCAL_TASKS and data and name in data:
            path = Path(data[name]).expanduser()
            if not path.is_file():
                raise HarnessError(f"--data {name}={data[name]}: file not found")
            out[name] = path.resolve()
    return out


@contextlib.contextmanager
def write_local_tasks(files: Mapping[str, Path]) -> Iterator[Path | None]:
    """Yield a temporary include dir holding a local-data copy of each task in ``files``.

    Yields ``None`` when ``files`` is empty. The directory is removed on exit.
    """
    if not files:
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="harness-lmeval-"))
    try:
        for name, path in files.items():
            sub, template = LOCAL_TASKS[name]
            src = TEMPLATES / sub
            dst = tmp / sub
            dst.mkdir()
            text = (src / template).read_text()
            if PLACEHOLDER not in text:
                raise HarnessError(f"{src / template}: template lacks {PLACEHOLDER}")
            (dst / f"{name}.yaml").write_text(text.replace(PLACEHOLDER, json.dumps(str(path))))
            shutil.copy(src / "utils.py", dst / "utils.py")
            log.info("lm-eval task %s reads %s", name, path)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
