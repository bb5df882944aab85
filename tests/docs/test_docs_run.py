"""Executed docs: every shell and Python block of README.md and docs/**/*.md, and every example in
`harness ... --help`, runs here on the tiny model (docs/contributing.md, "How the docs are tested").

- Blocks of one page run in order in one scratch dir (cwd), sharing its ``results/`` store;
  pages are independent. A failure names ``page:line``.
- Substitutions, skips and per-page fixtures live in ``docblocks.py`` (one table each).
- ``harness`` on the blocks' PATH is a shim served by a fork server (``forkserver.py``) that has
  torch/transformers/harness imported already; ``DOCS_TEST_NO_FORKSERVER=1`` runs the real
  console script instead (slower, same results).

Example (the id of a block test):
    >>> from docblocks import Block
    >>> Block("docs/tasks.md", 12, "bash", "harness tasks list\\n").id
    'docs/tasks.md:12'
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docblocks as db  # noqa: E402
import forkserver  # noqa: E402

REPO = db.REPO
BLOCK_TIMEOUT_S = 600
COPIED_DIRS = ("configs",)   # copied: finetune configs resolve output_dir against their own location
LINKED_DIRS = ("tasks", "cluster", "tests", "benchmarks")   # read only

ALL_BLOCKS = db.all_blocks()

#: documented commands known to be broken by code or missing files outside the docs (issue 17):
#: (snippet of the command, which checks fail: "parse" and/or "run", reason). Strict xfail: once
#: fixed, the test XPASSes and fails, so the entry must be deleted. Keep this list empty.
KNOWN_BROKEN: list[tuple[str, tuple[str, ...], str]] = []  # (command snippet, kinds, reason): strict xfails


def _params(rows, ids, command_of, kind):
    """pytest params, with a strict xfail on the rows whose command is in KNOWN_BROKEN for ``kind``."""
    out = []
    for row, id_ in zip(rows, ids):
        reason = next((r for s, kinds, r in KNOWN_BROKEN if kind in kinds and s in command_of(row)), None)
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        out.append(pytest.param(*row, marks=marks, id=id_))
    return out


def _is_file_block(b: db.Block) -> bool:
    """A YAML/TOML block whose first line is ``# PATH`` is written to PATH in the scratch dir."""
    return b.lang in ("yaml", "yml") and re.match(r"#\s*([\w./-]+\.ya?ml)\s*(#.*|--.*)?$", b.text.splitlines()[0] if b.text.strip() else "") is not None


RUN_BLOCKS = [b for b in ALL_BLOCKS if b.marker != "output" and (
    b.lang in db.SHELL_LANGS or b.lang in db.PYTHON_LANGS or _is_file_block(b))]


# ------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def docs_env(harness_home, tiny_model_dir, tmp_path_factory):
    """The environment every block runs in, with the fork server when there is one."""
    root = tmp_path_factory.mktemp("docs")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTEST_", "DOCS_TEST_FORKSERVER"))}
    env.update(HARNESS_HOME=str(harness_home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                         if p and Path(p).resolve() != REPO]))
    server = None
    if os.environ.get("DOCS_TEST_NO_FORKSERVER") != "1":
        sock = str(Path(tempfile.mkdtemp(prefix="docs-fs-")) / "sock")  # short: AF_UNIX paths are limited
        log = root / "forkserver.log"  # a file, not a pipe: nobody drains a pipe while the tests run
        with open(log, "w") as err:
            server = subprocess.Popen([sys.executable, str(Path(forkserver.__file__)), sock], env=env,
                                      stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
        line = server.stdout.readline()
        if line.strip() != "ready":
            server.kill()
            pytest.fail(f"docs fork server did not start: {line}{log.read_text()[-2000:]}")
        env["DOCS_TEST_FORKSERVER"] = sock
    yield {"env": env, "root": root, "tiny": tiny_model_dir, "states": {}}
    if server is not None:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the commands it forked, nothing else
        server.wait(timeout=30)


def _page_state(docs_env, page: str) -> db.PageState:
    states = docs_env["states"]
    if page not in states:
        base = docs_env["root"] / re.sub(r"[^\w.-]+", "_", page)
        work = base / "work"
        work.mkdir(parents=True)
        shared = REPO.parent / "shared"
        if shared.is_dir():
            (base / "shared").symlink_to(shared)
        for d in COPIED_DIRS:
            shutil.copytree(REPO / d, work / d, ignore=shutil.ignore_patterns("__pycache__"))
        for d in LINKED_DIRS:
            if (REPO / d).exists():
                (work / d).symlink_to(REPO / d)
        venv_bin = work / ".venv" / "bin"
        venv_bin.mkdir(parents=True)
        forkserver.write_shim(str(venv_bin / "harness"))
        for name in ("python", "python3"):  # a script, not a link: the venv is found from the real path
            (venv_bin / name).write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
            (venv_bin / name).chmod(0o755)
        fixtures = db.FIXTURES.get("help" if page.startswith("harness") else page, {})
        for rel, content in fixtures.items():
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if content == "@tiny-model":
                target.symlink_to(docs_env["tiny"])
            elif content.startswith("@repo:"):
                shutil.copyfile(REPO / content[len("@repo:"):], target)
            else:
                target.write_text(content)
        states[page] = db.PageState(page=page, scratch=work)
    return states[page]


def _refresh(state: db.PageState, output: str) -> None:
    """Record the run ids (oldest first) and job ids the page has made so far."""
    runs = []
    for dirpath, dirnames, _files in os.walk(state.scratch):
        dirnames[:] = [d for d in dirnames if d not in (".venv", "configs", "tasks", "models")]
        if os.path.basename(dirpath) == "runs":
            runs += [(os.path.getmtime(os.path.join(dirpath, d)), d[len("run_id="):])
                     for d in dirnames if d.startswith("run_id=")]
            dirnames[:] = []
    state.run_ids = [r for _, r in sorted(runs)]
    state.job_ids += re.findall(r"\braysubmit_[A-Za-z0-9]+\b", output)


def _bash(script: str, state: db.PageState, env: dict) -> tuple[int, str]:
    env = dict(env, PATH=f"{state.scratch / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.Popen(["bash", "-c", "set -e -o pipefail\n" + script], cwd=state.scratch, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return 124, out + f"\n[docs test: killed after {BLOCK_TIMEOUT_S} s]"
    return proc.returncode, out


def _python(code: str, name: str, state: db.PageState, env: dict) -> tuple[int, str]:
    with tempfile.TemporaryFile("w+") as out:
        if env.get("DOCS_TEST_FORKSERVER"):
            with open(os.devnull) as devnull:
                rc = forkserver.request(env["DOCS_TEST_FORKSERVER"], {"python": code, "name": name,
                                        "cwd": str(state.scratch), "env": env},
                                        (devnull.fileno(), out.fileno(), out.fileno()))
        else:
            rc = subprocess.run([sys.executable, forkserver.__file__, "--python", name], input=code, text=True,
                                cwd=state.scratch, env=env, stdout=out, stderr=subprocess.STDOUT,
                                timeout=BLOCK_TIMEOUT_S).returncode
        out.seek(0)
        return rc, out.read()


def _check(rc: int, out: str, block_id: str, script: str, marker: str | None, expect: str | None) -> None:
    tail = out[-6000:]
    if marker == "error":
        assert rc != 0, f"{block_id}: documented as an error, but exited 0\n--- ran:\n{script}\n--- output:\n{tail}"
        assert expect is None or expect in out, (
            f"{block_id}: the documented message {expect!r} was not printed\n--- ran:\n{script}\n--- output:\n{tail}")
    else:
        assert rc == 0, f"{block_id}: exit code {rc}\n--- ran:\n{script}\n--- output:\n{tail}"


# --------------------------------------------------------------------------------------- tests

def test_every_command_block_is_run_or_marked():
    """A harness command in an untyped/other block must be in a ```bash block or marked as display-only."""
    offenders = [f"{b.id} ({b.lang or 'untyped'} block)" for b in ALL_BLOCKS
                 if b.lang not in db.SHELL_LANGS and b.marker is None and b.runs_harness()]
    assert not offenders, ("these blocks show harness commands but are neither ```bash (run by the docs test) "
                           "nor marked <!-- docs-test: output --> (display only):\n  " + "\n  ".join(offenders))


def test_markers_sit_on_blocks():
    """Every docs-test marker is followed by a code block (a marker on prose does nothing)."""
    for page in db.doc_pages():
        text = (REPO / page).read_text()
        n_markers = len(db.MARKER_RE.findall(text))
        n_marked = sum(1 for b in db.parse_markdown(page, text) if b.marker)
        assert n_markers == n_marked, f"{page}: {n_markers - n_marked} docs-test marker(s) not directly before a block"


def test_check_fails_on_a_broken_command_and_on_an_error_block_that_succeeds():
    with pytest.raises(AssertionError, match="exit code 2"):
        _check(2, "harness: boom", "p.md:1", "harness x", None, None)
    with pytest.raises(AssertionError, match="documented as an error"):
        _check(0, "", "p.md:1", "harness x", "error", "boom")
    with pytest.raises(AssertionError, match="was not printed"):
        _check(2, "harness: other", "p.md:1", "harness x", "error", "boom")
    _check(2, "harness: boom", "p.md:1", "harness x", "error", "boom")


def test_a_failing_harness_line_stops_its_block_with_the_real_exit_code(docs_env):
    state = _page_state(docs_env, "self-test")
    rc, out = _bash("harness tasks show instructions-mnii\necho not reached\n", state, docs_env["env"])
    assert rc == 2 and "did you mean 'instructions-mini'" in out and "not reached" not in out


def test_substitution_table_is_documented():
    page = (REPO / "docs" / "contributing.md").read_text()
    for name, rule in db.SUBSTITUTIONS:
        assert f"| {name} | {rule} |" in page, f"docs/contributing.md lacks the substitution row for {name!r}"
    for doc_page, snippet, reason in db.SKIPS:
        assert reason in page, f"docs/contributing.md lacks the skip {doc_page}: {reason!r}"


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.id for b in RUN_BLOCKS])
def test_doc_block(block: db.Block, docs_env):
    reason = db.skip_reason(block)
    state = _page_state(docs_env, block.page)
    if reason:
        pytest.skip(reason)
    if _is_file_block(block):
        rel = re.match(r"#\s*([\w./-]+)", block.text).group(1)
        target = state.scratch / db.substitute(rel, state, python=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(db.substitute(block.text, state, python=True))
        return
    if block.lang in db.PYTHON_LANGS:
        code = db.substitute(block.text, state, python=True)
        rc, out = _python(code, block.id, state, docs_env["env"])
    else:
        code = db.substitute(block.text, state)
        rc, out = _bash(code, state, docs_env["env"])
    _refresh(state, out)
    _check(rc, out, block.id, code, block.marker, block.expect)


# --------------------------------------------------------------------------- --help examples

def _help_examples():
    from harness.cli import build_parser

    return db.help_examples(build_parser())


HELP_EXAMPLES = _help_examples()
HELP_SKIPS = [  # (snippet, reason), for help examples only; GENERIC_SKIPS apply too
    ("cluster/local-head.sh", "starts a Ray head (docs/cluster.md; tests/integration/test_jobs.py)"),
    ("--wait", "needs a running Ray job server"),
    ("ssh head", "network: asks a remote head for its token"),
    ("harness jobs", "needs a running Ray job server"),
    ("&& open ", "opens a viewer"),
    ("harness run configs/paper.yaml --model gemma-3-270m", "8192-token caps need a context above 8k; the tiny "
     "stand-in has 2k (tests/integration/test_paper_protocol.py dry-runs paper.yaml on a 16k-context tiny model)"),
    ("pull ./my-model.Q4_K_M.gguf", "needs a GGUF file of your own"),
    ("deepspeed:OUTPUT_DIR", "needs a finetune's output dir; docs/finetune.md runs it with results/finetune/tiny-response"),
    ("harness finetune configs/finetune/gemma-", "real-model finetune config (Gemma-3-270M; its data comes from "
     "docs/finetune.md's demo steps)"),
    ("harness finetune configs/finetune/tiny-response.yaml", "trains; docs/finetune.md runs the same command"),
]
_SUBMIT_NEEDS_SERVER = re.compile(r"harness submit (?!.*--dry-run)")


HELP_IDS = [f"{v} --help:{n}" for v, n, _ in HELP_EXAMPLES]


@pytest.mark.parametrize("verb,line,command", _params(HELP_EXAMPLES, HELP_IDS, lambda r: r[2], "parse"))
def test_help_example_parses(verb, line, command):
    """Every help example parses with the real parser and names only repo files that exist."""
    from harness.cli import build_parser

    for argv in db.harness_argv(command):
        try:
            build_parser().parse_args(argv)
        except (SystemExit, Exception) as exc:  # noqa: BLE001 - argparse exits; a stricter parser may raise
            pytest.fail(f"`{verb} --help` line {line}: `{command}` does not parse ({exc!r})")
    missing = db.missing_repo_paths(command)
    assert not missing, f"`{verb} --help` line {line}: `{command}` names missing files: {missing}"


@pytest.fixture(scope="session")
def seed_store(docs_env):
    """Two tiny runs that the help examples' RUN placeholders refer to: the newest has the ablation
    variants, both have none and rules, and the tasks carry reference answers (alpaca-eval)."""
    state = _page_state(docs_env, "harness-seed")
    run = (f"harness run --model tiny-random-llama --tasks instructions-mini,alpaca-eval --data alpaca-eval=alpaca_eval.jsonl "
           f"--limit {db.SMALL_LIMIT} --max-new-tokens {db.SMALL_TOKENS} --no-ray -q")
    rc, out = _bash(f"{run} --variants none,rules --combine logsoftmax-sum\n{run} --variants ablations", state, docs_env["env"])
    assert rc == 0, out[-3000:]
    return state.scratch / "results"


@pytest.mark.parametrize("verb,line,command", _params(HELP_EXAMPLES, HELP_IDS, lambda r: r[2], "run"))
def test_help_example_runs(verb, line, command, docs_env, seed_store):
    block = db.Block(verb, line, "bash", command + "\n")
    reason = db.skip_reason(block) or next((r for s, r in HELP_SKIPS if s in command), None)
    if reason is None and _SUBMIT_NEEDS_SERVER.search(command):
        reason = "needs a running Ray job server (the --dry-run example runs)"
    if reason:
        pytest.skip(reason)
    state = _page_state(docs_env, verb)
    if not (state.scratch / "results").exists():
        shutil.copytree(seed_store, state.scratch / "results")
        _refresh(state, "")
        state.ray_used = True  # help examples run in-process: one Ray start per page is spent on pages
    code = db.substitute(command + "\n", state)
    rc, out = _bash(code, state, docs_env["env"])
    _refresh(state, out)
    _check(rc, out, f"`{verb} --help` line {line}", code, None, None)


# -------------------------------------------------------------- commands in skipped blocks too

PARSE_LINES = [(b, ln) for b in ALL_BLOCKS if b.lang in db.SHELL_LANGS
               for ln in db._join_continuations(b.text).splitlines() if db.HARNESS_LINE_RE.match(ln)]


@pytest.mark.parametrize("block,command", _params(PARSE_LINES, [f"{b.id}:{c.strip()[:40]}" for b, c in PARSE_LINES],
                                                  lambda r: r[1], "parse"))
def test_doc_command_parses(block, command):
    """Even a skipped block's harness commands must parse and name only repo files that exist."""
    from harness.cli import build_parser

    for argv in db.harness_argv(command):
        if any("$(" in a for a in argv):
            continue
        try:
            build_parser().parse_args(argv)
        except (SystemExit, Exception) as exc:  # noqa: BLE001 - argparse exits; a stricter parser may raise
            pytest.fail(f"{block.id}: `{command.strip()}` does not parse ({exc!r})")
    assert not db.missing_repo_paths(command), f"{block.id}: `{command.strip()}` names missing files: {db.missing_repo_paths(command)}"
