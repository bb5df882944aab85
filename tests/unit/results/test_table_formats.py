"""Every ``--format`` of every table-printing verb works on tables with list columns (runs.tasks, samples.output_token_ids)."""

from __future__ import annotations

import argparse
import csv
import io
import json

import pytest

from harness.cli import build_parser, main

# (argv before the store, what the rows are) — each prints an Arrow table through harness.store.format_table
VERBS = {
    "runs list": (["runs", "list"], 3),
    "query samples": (["query", "select run_id, sample_id, output_token_ids from samples where run_id = 'r1'"], 11),
}


def _format_choices(argv: list[str]) -> list[str]:
    """The --format choices the parser offers for this verb (so a new format is tested without editing here)."""
    parser = build_parser()
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
    (fmt,) = [a for a in parser._actions if "--format" in a.option_strings]
    return list(fmt.choices)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_format_prints_list_columns(store_root, capsys, verb):
    argv, n = VERBS[verb]
    formats = _format_choices(argv)
    assert {"table", "csv", "json"} <= set(formats)
    for fmt in formats:
        assert main([*argv, "--store", str(store_root), "--format", fmt]) == 0, fmt
        out = capsys.readouterr().out
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(out)))
            assert len(rows) == n
            lists = [json.loads(r.get("tasks") or r.get("output_token_ids")) for r in rows]
            assert all(isinstance(x, list) for x in lists)  # list cells are JSON arrays
        elif fmt == "json":
            assert len(out.splitlines()) == n
        else:
            assert f"({n} rows)" in out or f"({n} runs)" in out
