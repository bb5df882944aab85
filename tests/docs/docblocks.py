"""What the docs test runs: code blocks of README.md and docs/**/*.md, the rules that make
them runnable on the tiny model, and the short list of blocks it does not run.

How it works, for the people writing docs, is in docs/contributing.md ("How the docs are
tested"); this module is the one source of truth for the substitution table, the skip
list and the per-page fixtures that page shows.

Example:
    >>> blocks = parse_markdown("t.md", "text\\n```bash\\nharness query 'select 1'\\n```\\n")
    >>> [(b.line, b.lang, b.text) for b in blocks]
    [(2, 'bash', "harness query 'select 1'\\n")]
    >>> page = PageState(page="README.md")
    >>> substitute("harness run --model gemma-3-270m --limit 50", page)
    'harness run --model tiny-random-llama --limit 2 --max-new-tokens 8'
    >>> substitute("harness run --tasks ifeval-sample  # later on the page", page)
    'harness run --tasks ifeval-sample --model tiny-random-llama --limit 2 --max-new-tokens 8 --no-ray   # later on the page'
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SHELL_LANGS = {"bash", "sh", "shell", "console"}
PYTHON_LANGS = {"python", "py", "pycon"}

#: ``<!-- docs-test: output -->`` or ``<!-- docs-test: error "message" -->`` right before a block
MARKER_RE = re.compile(r'^\s*<!--\s*docs-test:\s*(output|error)(?:\s+"([^"]*)")?\s*-->\s*$', re.M)
FENCE_RE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)[^\n]*$")
#: a line that runs the harness: ``harness VERB``, ``.venv/bin/harness VERB``, ``python -m harness.cli``
HARNESS_LINE_RE = re.compile(r"^\s*(?:\$\s+)?(?:[A-Z_]+=\S+\s+)*(?:\S*/)?(?:harness\s+[a-z-]+|python3?\s+-m\s+harness\.cli\b)")


@dataclass
class Block:
    """One code block of a page: where it starts, its language and text, its marker."""

    page: str            # path relative to the repo root, e.g. "docs/tasks.md"
    line: int            # 1-based line of the opening fence (of the first line when indented)
    lang: str            # fence info word ("bash", "python", ...), "" when untyped, "indented"
    text: str
    marker: str | None = None      # "output" or "error"
    expect: str | None = None      # the message an "error" block must print

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def runs_harness(self) -> bool:
        return any(HARNESS_LINE_RE.match(line) for line in self.text.splitlines())


def parse_markdown(page: str, text: str) -> list[Block]:
    """Every fenced block (any indentation) and every indented block of a Markdown text."""
    lines = text.splitlines()
    blocks: list[Block] = []
    marker: tuple[str, str | None] | None = None
    i = 0
    prev_blank = True
    while i < len(lines):
        line = lines[i]
        m = MARKER_RE.match(line)
        if m:
            marker = (m.group(1), m.group(2))
            i += 1
            continue
        fence = FENCE_RE.match(line)
        if fence:
            indent, ticks, lang = fence.groups()
            body = []
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(ticks):
                body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
                j += 1
            blocks.append(Block(page, i + 1, lang.lower(), "\n".join(body) + "\n",
                                *(marker or (None, None))))
            marker, i, prev_blank = None, j + 1, False
            continue
        if prev_blank and line.startswith("    ") and line.strip() and not _in_list(lines, i):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            body = [ln[4:] for ln in lines[i:j]]
            blocks.append(Block(page, i + 1, "indented", "\n".join(body).rstrip() + "\n",
                                *(marker or (None, None))))
            marker, i, prev_blank = None, j, False
            continue
        if line.strip():
            marker = None if not line.lstrip().startswith("<!--") else marker
        prev_blank = not line.strip()
        i += 1
    return blocks


def _in_list(lines: list[str], i: int) -> bool:
    """An indented line that continues a list item is not a code block."""
    for k in range(i - 1, -1, -1):
        if lines[k].strip():
            return bool(re.match(r"\s*([-*+]|\d+\.)\s", lines[k])) or lines[k].startswith("  ")
    return False


def doc_pages() -> list[str]:
    """README.md and every Markdown page under docs/, repo-relative, sorted."""
    pages = ["README.md"] + sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md"))
    return [p for p in pages if (REPO / p).is_file()]


def all_blocks() -> list[Block]:
    return [b for page in doc_pages() for b in parse_markdown(page, (REPO / page).read_text())]


# ---------------------------------------------------------------------------------------------
# What is not run, and why. Keyed by (page, a stable snippet of the block), so a block that moves
# is still found; GENERIC_SKIPS apply to every page. A skipped block shows up as a pytest skip.

SKIPS: list[tuple[str, str, str]] = [
    ("README.md", "python3 -m venv .venv", "the install command itself: CI runs it (.ci/run)"),
    ("README.md", ".venv/bin/python -m pytest -q", "the test command itself: CI runs it"),
    ("docs/install.md", "python3 -m venv .venv", "installs a venv: CI runs the install (.ci/run)"),
    ("docs/cluster.md", "cluster/local-head.sh start", "starts a second Ray head on fixed ports; "
     "the job flow is covered by tests/integration/test_jobs.py"),
    ("docs/cluster.md", "harness jobs list", "needs a running Ray job server (see the block above)"),
    ("docs/finetune.md", "FINETUNE_DEMO_DIR=", "the 38-minute real-model demo (tests/slow/test_finetune_demo.py)"),
    ("docs/finetune.md", "mkdir -p results/finetune-demo", "long real-model demo: two Gemma-3-270M "
     "finetunes (~4 min each) and five evaluations"),
    ("docs/deepspeed.md", "harness run --model deepspeed:out/run1 ", "needs a ZeRO checkpoint at out/run1: "
     "built by tests/integration/test_deepspeed.py, which runs these specs"),
    ("docs/deepspeed.md", "deepspeed:out/run1@all", "needs a ZeRO checkpoint at out/run1 (see above)"),
    ("docs/models.md", "harness models pull ./my-model.Q4_K_M.gguf", "needs a GGUF file of your own"),
    ("docs/lm-eval.md", "evaluate_tasks([\"capitals\"], backend, plan)",
     "API sketch: `backend` and `plan` are the live replica pool of a run"),
    ("docs/ranking.md", "out = rank(backend, pairs", "API sketch: `backend` is the live replica pool of a run"),
    ("docs/engines.md", "python3 -m venv .venv", "installs a venv: CI runs the install (.ci/run)"),
    ("docs/serving.md", "vllm.entrypoints.openai.api_server", "starts a long-running vLLM server on a fixed port; "
     "tests/integration/test_serving.py starts one on a free port and sends these requests"),
    ("docs/serving.md", "curl -s http://127.0.0.1:8000", "needs the server of the block above"),
    ("docs/results.md", "harness run configs/paper.yaml --model gemma-3-270m", "the paper's 8192-token caps need "
     "a context above 8k; the tiny stand-in has 2k (tests/integration/test_paper_protocol.py dry-runs paper.yaml "
     "on a 16k-context tiny model)"),
    ("docs/results.md", "harness judge gemma-3-270m-44c851ac36", "judges §6.1's AlpacaEval run against its reference "
     "answers; the page's newest stand-in run is instructions-mini, which has none (tests/integration/test_judges.py "
     "covers --against-references and the LC win rate)"),
    ("docs/results.md", "--run-id anchor-prompt", "the paper's 8192-token caps need a context above 8k; the "
     "tiny stand-in has 2k (tests/integration/test_anchor_reference.py covers both anchorings)"),
    ("docs/finetune.md", "exs, stats = build(\"poetry\"", "trains a second time (Ray Train) and reads a "
     "poems.jsonl of your own; tests/integration/test_finetune.py covers run_finetune"),
]

#: (regex over the block text, reason): cloud, GPU, network and external tools
GENERIC_SKIPS: list[tuple[str, str]] = [
    (r"\bkubectl\b|\bdocker\b", "cloud: Kubernetes / container build"),
    (r"^\s*ray (up|down|dashboard|rsync-down|get-auth-token)\b", "cloud: Ray cluster launcher"),
    (r"--device cuda", "GPU"),
    (r"https?://(?!127\.0\.0\.1|localhost)", "network"),
    (r"^\s*(\.venv/bin/)?python3? (-m pytest|benchmarks/)", "the test suite and benchmarks run on their own"),
    (r"^\s*alpaca_eval\b", "external tool (the alpaca_eval CLI)"),
    (r"^\s*pip install\b", "installs packages"),
]


def skip_reason(block: Block) -> str | None:
    """Why ``block`` is not run, or None."""
    for page, snippet, reason in SKIPS:
        if page == block.page and snippet in block.text:
            return reason
    for pattern, reason in GENERIC_SKIPS:
        if re.search(pattern, block.text, re.M):
            return reason
    if "shared/data/" in block.text and not (REPO.parent / "shared" / "data").is_dir():
        return "needs ../shared/data, which this machine lacks"
    return None


# ---------------------------------------------------------------------------------------------
# Per-page fixtures: files a page's commands use that the page does not create itself. Paths are
# relative to the page's scratch dir; the value is file text, or "@tiny-model" for a link to the
# built tiny-random-llama directory, "@repo:PATH" for a copy of a repo file.

_PROMPTS = '{"id": "p1", "instruction": "Name three rivers."}\n{"id": "p2", "instruction": "Write a haiku about rain."}\n'
_CAPITALS = ('{"qid": "q1", "country": "France", "capital": "Paris"}\n'
             '{"qid": "q2", "country": "Japan", "capital": "Tokyo"}\n')
_PAIRS = ('{"id": 0, "instruction": "Name a river.", "reference_output": "The Nile."}\n'
          '{"id": 1, "instruction": "Say hello.", "reference_output": "Hello!"}\n'
          '{"id": 2, "instruction": "Count to three.", "reference_output": "1, 2, 3."}\n')
_DOMAIN = ('{"instruction": "Write a poem called Rain", "response": "Rain falls\\nsoft and slow"}\n'
           '{"instruction": "Write a poem called Sun", "response": "Sun rises\\nwarm and bright"}\n')

FIXTURES: dict[str, dict[str, str]] = {
    "README.md": {"my_prompts.jsonl": _PROMPTS, "my-hf-model": "@tiny-model",
                  "input_data.jsonl": "@repo:tasks/data/ifeval_sample.jsonl",
                  "my_tasks/data/recipes.jsonl": '{"instruction": "A soup recipe, please."}\n'},
    "docs/tasks.md": {"my_tasks/data/capitals.jsonl": _CAPITALS, "my_prompts.jsonl": _PROMPTS,
                      "alpaca_eval.jsonl": '{"id": 1, "instruction": "Say hi.", "reference_output": "Hi!"}\n'},
    "docs/lm-eval.md": {"input_data.jsonl": "@repo:tasks/data/ifeval_sample.jsonl",
                        "abs/path/capitals.jsonl": '{"country": "France", "capital": "Paris"}\n'
                                                   '{"country": "Japan", "capital": "Tokyo"}\n'},
    "docs/ranking.md": {"alpaca_eval.jsonl": _PAIRS},
    "docs/metrics.md": {"poetry.jsonl": _DOMAIN},
    "help": {"my_prompts.jsonl": _PROMPTS, "my-hf-model": "@tiny-model", "alpaca_eval.jsonl": _PAIRS,
             "pairs.jsonl": _PAIRS.replace("reference_output", "output"), "poetry_train.jsonl": _DOMAIN,
             "gsm.jsonl": _DOMAIN, "lima.jsonl": _DOMAIN,
             "my_tasks/recipes.yaml": "task: my-recipes\ndataset_path: ../my_prompts.jsonl\ndoc_to_text: instruction\n",
             "my_task.yaml": "task: my-task\ndataset_path: my_prompts.jsonl\ndoc_to_text: instruction\n"},
}


# ---------------------------------------------------------------------------------------------
# Substitutions: mechanical rewrites that make a documented command fast on the tiny model.
# One table; docs/contributing.md shows it and the test checks that every row is there.

REAL_MODELS = ("gemma-3-270m", "smollm2-135m-instruct")
GENERATING = ("run", "submit", "rank", "resume")   # verbs that load a model and generate or score
SMALL_LIMIT = 2
SMALL_TOKENS = 8
#: placeholders for a run id in the docs; each becomes the newest run id of the page's stores
RUN_PLACEHOLDERS = ("RUN_ID", "RUN_STEP100", "RUN_STEP200", "RUN_A", "RUN_B", "RUN2", "IT-RUN", "RUN")
FIRST_OF_TWO = ("RUN_A", "RUN_STEP100")   # the older of a pair: the second-newest run id
#: pages whose first `harness run/rank/resume` keeps Ray; everywhere else they run in-process (--no-ray)
RAY_PAGES = ("README.md",)
RUN_ID_EXAMPLE_RE = re.compile(r"\b(?:gemma-3-270m|tiny-random-llama)-[0-9a-f]{10}\b")
#: absolute example paths outside the repo, rebased into the scratch dir
REBASED_ROOTS = ("/tmp/", "/data/", "/mnt/", "/abs/", "/ckpt/", "/home/ray/", "/models/")

SUBSTITUTIONS: list[tuple[str, str]] = [
    ("real models", f"`{'`, `'.join(REAL_MODELS)}` → `tiny-random-llama`; `harness run/submit/rank` without `--model` "
     "get `--model tiny-random-llama`; `--judge hf` → `--judge hf:tiny-random-llama`; `harness similarity` gets "
     "`--encoder` = the tiny model's dir"),
    ("small limits", f"`--limit N` → `--limit {SMALL_LIMIT}`; `harness run/submit/rank` without `--limit` get one"),
    ("short outputs", f"`--max-new-tokens N` → `{SMALL_TOKENS}`; `harness run/submit` without it get `--max-new-tokens {SMALL_TOKENS}`"),
    ("Ray only where it is the point", f"`harness run/rank/resume` get `--no-ray`, except the first one on "
     f"{', '.join(RAY_PAGES)} (and none after a `harness finetune`, which starts Ray Train); `--replicas N` → 1"),
    ("run ids", f"`{'`, `'.join(RUN_PLACEHOLDERS)}` and example ids like `gemma-3-270m-1a2b3c4d5e` → the newest run id "
     f"in the page's results stores (`{'`, `'.join(FIRST_OF_TWO)}`: the second-newest)"),
    ("job ids", "`raysubmit_XXXX` → the newest job id printed by an earlier block of the page"),
    ("scratch paths", f"absolute example paths under `{'`, `'.join(REBASED_ROOTS)}` → the same path inside the page's scratch dir"),
]


@dataclass
class PageState:
    """What earlier blocks of a page left behind that later blocks refer to."""

    page: str
    ray_used: bool = False
    run_ids: list[str] = field(default_factory=list)   # newest last
    job_ids: list[str] = field(default_factory=list)
    scratch: Path | None = None


def _replace_words(text: str, words: tuple[str, ...], new: str) -> str:
    for w in words:
        text = re.sub(rf"(?<![\w./:-]){re.escape(w)}(?![\w-])", new, text)
    return text


def substitute(text: str, state: PageState, *, python: bool = False) -> str:
    """Apply SUBSTITUTIONS to a block's text (shell, or Python with ``python=True``)."""
    for model in REAL_MODELS:
        text = re.sub(rf"(?<![\w/-]){re.escape(model)}(?![\w.-]|-[0-9a-f]{{10}}\b)", "tiny-random-llama", text)
    text = re.sub(r"--judge hf(?=\s|$)", "--judge hf:tiny-random-llama", text)
    if state.run_ids:
        text = RUN_ID_EXAMPLE_RE.sub(state.run_ids[-1], text)
        text = _replace_words(text, FIRST_OF_TWO, state.run_ids[-2] if len(state.run_ids) > 1 else state.run_ids[-1])
        text = _replace_words(text, RUN_PLACEHOLDERS, state.run_ids[-1])
    if state.job_ids:
        text = re.sub(r"\braysubmit_[A-Za-z0-9]+", state.job_ids[-1], text)
    if state.scratch is not None:
        for root in REBASED_ROOTS:
            text = re.sub(rf"(?<![\w.~/]){re.escape(root)}", f"{state.scratch}{root}", text)
    if python:
        return text
    return "\n".join(_rewrite_command(line, state) for line in _join_continuations(text).splitlines()) + (
        "\n" if text.endswith("\n") else "")


def _join_continuations(text: str) -> str:
    return re.sub(r"[ \t]*\\\n\s*", " ", text)


_VERB_RE = re.compile(r"(?:^|[\s;&|(])(?:\S*/)?harness\s+(run|submit|rank|resume|finetune|similarity)\b")


def _rewrite_command(line: str, state: PageState) -> str:
    """Limits, token caps and Ray for one shell line that generates."""
    m = _VERB_RE.search(line)
    if not m or line.lstrip().startswith("#"):
        return line
    verb = m.group(1)
    code, comment = _split_comment(line)
    if verb == "finetune":  # Ray Train always starts Ray; --dry-run does not
        state.ray_used = state.ray_used or "--dry-run" not in code
        return line
    code = re.sub(r"--limit[ =]\d+", f"--limit {SMALL_LIMIT}", code)
    code = re.sub(r"--max-new-tokens[ =]\d+", f"--max-new-tokens {SMALL_TOKENS}", code)
    code = re.sub(r"--replicas[ =]\d+", "--replicas 1", code)
    extra = []
    if verb == "similarity":
        code = re.sub(r"\s--encoder[ =]\S+", "", code)
        return _insert_flags(code, m.end(), '--encoder "$(harness models path tiny-random-llama)"') + comment
    if verb in ("run", "submit", "rank") and "--model" not in code:
        extra.append("--model tiny-random-llama")
    if verb in ("run", "submit", "rank") and "--limit" not in code:
        extra.append(f"--limit {SMALL_LIMIT}")
    if verb in ("run", "submit") and "--max-new-tokens" not in code:
        extra.append(f"--max-new-tokens {SMALL_TOKENS}")
    if verb in ("run", "rank", "resume") and "--no-ray" not in code and "--address" not in code:
        if state.ray_used or state.page not in RAY_PAGES:
            extra.append("--no-ray")
        state.ray_used = True
    if extra:
        code = _insert_flags(code, m.end(), " ".join(extra))
    return code + comment


def _split_comment(line: str) -> tuple[str, str]:
    """Split off a trailing ``  # comment`` that is outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and i > 0 and line[i - 1].isspace():
            return line[:i].rstrip(), "   " + line[i:]
    return line, ""


def _insert_flags(code: str, verb_end: int, flags: str) -> str:
    """Add flags at the end of the harness command (before ``&&``, ``|``, ``;`` or ``)``)."""
    tail = code[verb_end:]
    stop = re.search(r"\s(&&|\|\||\||;)\s|\)\s*$|;\s*$", tail)
    at = verb_end + (stop.start() if stop else len(tail))
    return code[:at].rstrip() + " " + flags + code[at:]


# ---------------------------------------------------------------------------------------------
# `--help` examples

def help_examples(parser) -> list[tuple[str, int, str]]:
    """(``harness VERB ...``, line in the help text, command) for every example in every help text."""
    import argparse

    out: list[tuple[str, int, str]] = []

    def walk(p: argparse.ArgumentParser, path: list[str]) -> None:
        if p.epilog:
            out.extend((" ".join(path), n, cmd) for n, cmd in epilog_commands(p.epilog))
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                seen = set()
                for name, sub in action.choices.items():
                    if id(sub) not in seen:
                        seen.add(id(sub))
                        walk(sub, path + [name])

    walk(parser, ["harness"])
    seen_cmds: set[str] = set()  # a verb and its sub-verbs often share one epilog: keep the first
    return [e for e in out if not (e[2] in seen_cmds or seen_cmds.add(e[2]))]


def epilog_commands(epilog: str) -> list[tuple[int, str]]:
    """The command lines of one help epilog: indented example lines and ``then: CMD`` prose."""
    cmds: list[tuple[int, str]] = []
    lines = _join_continuations(epilog).splitlines()
    in_examples = False
    for n, line in enumerate(lines, 1):
        if re.match(r"^(examples?|start here|then)\b", line):
            in_examples = line.rstrip().endswith(":")
        if in_examples and line.startswith("  ") and line.strip() and not line.strip().startswith("#"):
            cmds.append((n, line.strip()))
            continue
        if line.strip() and not line.startswith(" "):
            in_examples = line.rstrip().endswith(":") and re.match(r"^examples?:", line) is not None
            for m in re.finditer(r"(?:^|:\s+)(harness [^`]*?)(?=\s{3,}|$)", line):
                cmds.append((n, m.group(1).strip()))
    return cmds


def harness_argv(command: str) -> list[list[str]]:
    """The argv of every ``harness ...`` invocation in a shell command line (after the verb word)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return []
    argvs, cur, redirect = [], None, False
    for w in words:
        if redirect:  # the target of > or <
            redirect = False
            continue
        if re.fullmatch(r"\d?[<>]{1,2}&?\d?", w):
            redirect = w[-1] in "<>"
            continue
        if w in ("&&", "||", "|", ";") or w.endswith(";"):
            cur = None
            continue
        if cur is None and "=" not in w and (w == "harness" or w.endswith("/harness")):
            cur = []
            argvs.append(cur)
        elif cur is not None:
            cur.append(w)
    return argvs


#: top-level repo directories: a path into one of them in an example must exist
REPO_DIRS = ("configs/", "tasks/", "cluster/", "tests/", "docs/", "benchmarks/", "harness/")


def missing_repo_paths(command: str) -> list[str]:
    """Paths into the repo's own directories that a command cites and that do not exist."""
    missing = []
    for word in re.findall(r"[\w./-]+", command):
        if word.startswith(REPO_DIRS) and not (REPO / word).exists():
            missing.append(word)
    return missing
