"""The docs test's own machinery: block extraction, markers, substitutions, skips, --help parsing.

These run in milliseconds and no command; test_docs_run.py runs the docs themselves.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docblocks as db  # noqa: E402

PAGE = """# Title

<!-- docs-test: output -->
```
harness run --model x    # usage, not run
```

<!-- docs-test: error "no such task" -->
```bash
harness tasks show nope
```

Text.

    harness query "select 1"

- a list item

    continued list text, not code

```python
print(1)
```
"""


def test_parse_finds_fenced_and_indented_blocks_with_their_markers_and_lines():
    blocks = db.parse_markdown("p.md", PAGE)
    got = [(b.line, b.lang, b.marker, b.expect) for b in blocks]
    assert got == [(4, "", "output", None), (9, "bash", "error", "no such task"),
                   (15, "indented", None, None), (21, "python", None, None)]
    assert blocks[2].runs_harness() and not blocks[3].runs_harness()


def test_a_marker_applies_only_to_the_block_right_after_it():
    blocks = db.parse_markdown("p.md", "<!-- docs-test: output -->\n\nSome prose.\n\n```bash\nharness x\n```\n")
    assert blocks[0].marker is None


def test_harness_lines_are_recognised_in_their_usual_spellings():
    for line in ("harness run --x", ".venv/bin/harness query 'x'", "$ harness tasks list",
                 "HARNESS_HOME=/d harness models pull x", "python -m harness.cli run"):
        assert db.HARNESS_LINE_RE.match(line), line
    for line in ("harness: error message", "# harness run", "see harness/cli.py"):
        assert not db.HARNESS_LINE_RE.match(line), line


def test_substitute_rewrites_models_limits_tokens_and_ray_once_per_ray_page():
    state = db.PageState(page="README.md")
    first = db.substitute("harness run --model gemma-3-270m --limit 50 --replicas 2\n", state)
    assert first == "harness run --model tiny-random-llama --limit 2 --replicas 1 --max-new-tokens 8\n"
    second = db.substitute("harness rank --model smollm2-135m-instruct --data d.jsonl\n", state)
    assert second == "harness rank --model tiny-random-llama --data d.jsonl --limit 2 --no-ray\n"
    other = db.substitute("harness run --tasks t\n", db.PageState(page="docs/x.md"))
    assert other.rstrip().endswith("--no-ray")


def test_substitute_keeps_pipes_loops_and_comments_in_place():
    state = db.PageState(page="docs/x.md")
    out = db.substitute("for M in a b; do\n  harness run --model $M --store $S  # note\ndone\n", state)
    assert "  harness run --model $M --store $S --limit 2 --max-new-tokens 8 --no-ray   # note\n" in out
    piped = db.substitute("harness run --tasks t && harness query 'x'\n", db.PageState(page="docs/x.md"))
    assert piped.startswith("harness run --tasks t --model tiny-random-llama --limit 2") and "&& harness query" in piped


def test_run_placeholders_resolve_to_the_pages_runs(tmp_path):
    state = db.PageState(page="docs/x.md", run_ids=["old-1", "new-2"], scratch=tmp_path)
    out = db.substitute("harness compare RUN_A RUN_B --variant rules; harness report RUN --out /tmp/r\n", state)
    assert "compare old-1 new-2" in out and "report new-2" in out and f"--out {tmp_path}/tmp/r" in out
    assert db.substitute("x = open('RUN')", db.PageState(page="p"), python=True) == "x = open('RUN')"  # nothing to resolve


def test_skips_match_by_page_and_snippet_and_by_generic_rule():
    install = db.Block("README.md", 9, "bash", "python3 -m venv .venv && pip install -e .\n")
    assert "CI runs it" in db.skip_reason(install)
    moved = db.Block("docs/other.md", 9, "bash", "harness run --model x --device cuda\n")
    assert db.skip_reason(moved) == "GPU"
    assert db.skip_reason(db.Block("docs/other.md", 9, "bash", "harness tasks list\n")) is None


def test_epilog_commands_take_indented_examples_and_then_lines_but_not_prose():
    epilog = ("examples:\n  # a comment\n  harness run --tasks x \\\n      --limit 2\n\n"
              "variants: none | rules\n  options: eos, uniform\n"
              "then: harness query \"select 1\"")
    assert db.epilog_commands(epilog) == [(3, "harness run --tasks x --limit 2"), (7, 'harness query "select 1"')]


def test_harness_argv_handles_env_prefixes_redirects_and_chains():
    assert db.harness_argv("HARNESS_HOME=/d harness models pull x") == [["models", "pull", "x"]]
    assert db.harness_argv("harness export R --format jsonl > out.jsonl") == [["export", "R", "--format", "jsonl"]]
    assert db.harness_argv("harness a 1 && .venv/bin/harness b 2") == [["a", "1"], ["b", "2"]]


def test_missing_repo_paths_names_only_repo_paths_that_do_not_exist():
    assert db.missing_repo_paths("harness run configs/nope.yaml --prompts my.jsonl") == ["configs/nope.yaml"]
    assert db.missing_repo_paths("harness finetune configs/finetune/tiny-response.yaml") == []


@pytest.mark.parametrize("page", db.doc_pages())
def test_every_page_parses(page):
    for b in db.parse_markdown(page, (db.REPO / page).read_text()):
        assert b.line >= 1 and b.text.endswith("\n")
