"""Training-set builders for the paper's domains, from local files (paper-spec §1.4, §1.6).

Every builder returns ``(examples, stats)``: a list of :class:`~harness.finetune.encoding.Example`
(one user turn and one assistant turn, except LIMA dialogs) and a dict of counts. The
selection rules are the paper's; its builder bugs are not reproduced:

* ``messages`` (LIMA ``{"messages": [...]}`` or raw ``{"conversations": [...]}``): a
  conversation ending on a user turn loses that last message, as the paper's converter
  does (``odd_turns: drop``, counted), or is an error (``odd_turns: error``).
* ``gsm``: ``question`` -> ``answer`` verbatim, first N rows (default 1000).
* ``mbpp``: ``text`` -> ``code``, first N rows (default 1000; MBPP train has 374).
* ``poetry``: ``"Write a poem called " + poem name`` -> ``content``; of the first N rows
  (default 1000) those with no title are skipped and counted (571 remain in the paper).
* ``recipes``: ``"Recipe for " + Title`` -> ``" - ing\\n"`` per ingredient, a blank line,
  ``Instructions``. ``Cleaned_Ingredients`` is parsed with ``json`` or
  ``ast.literal_eval`` (never ``eval``); unparsable rows are skipped and counted.
* ``chess``: PGN text (a ``.pgn`` file, or rows with a ``text`` line each): the
  ``WhiteElo`` and ``BlackElo`` header lines (each + newline) -> the movetext. Games
  lacking either tag are skipped and counted (the paper's ``assert`` crashed); ids are
  game indices (not row indices); stops at N games (default 1000).
* ``single_task``: this repo's ``{id, domain, instruction, response}`` jsonl.
* ``alpaca``: ``instruction`` (+ ``input``) -> ``output`` (Stanford Alpaca) or
  ``reference_output`` (AlpacaEval's jsonl), e.g. responses for response tuning.

Example:
    >>> exs, stats = build("poetry", "tests/data/finetune/poetry.jsonl")   # doctest: +SKIP
    >>> stats["skipped_no_title"], exs[0].messages[0][1]                    # doctest: +SKIP
    (1, 'Write a poem called Ozymandias')
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from harness.errors import HarnessError
from harness.finetune.encoding import Example

PAPER_LIMIT = 1000


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a ``.jsonl``, ``.json`` (a list) or ``.parquet`` file.

    >>> read_rows("/nonexistent.jsonl")
    Traceback (most recent call last):
    ...
    harness.errors.HarnessError: /nonexistent.jsonl: data file not found
    """
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"{path}: data file not found")
    from harness.tasks.data import read_jsonl, read_local

    if p.suffix.lower() in (".json", ".parquet"):
        return list(read_local(p).rows)
    return list(read_jsonl(p).rows)


def _field(row: dict, key: str, path, n: int) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise HarnessError(f"{path}: row {n}: field {key!r} missing or not a string (fields: {', '.join(map(str, row))})")
    return value


def _pair(ex_id: str, user: str, assistant: str) -> Example:
    return Example(ex_id, (("user", user), ("assistant", assistant)))


def build_messages(path, limit: int | None = None, odd_turns: str = "drop") -> tuple[list[Example], dict]:
    """LIMA-format conversations: ``messages`` (role/content dicts) or ``conversations`` (strings)."""
    exs, stats = [], {"rows": 0, "odd_dropped_last": 0}
    for n, row in enumerate(read_rows(path)):
        if limit is not None and n >= limit:
            break
        stats["rows"] += 1
        if isinstance(row.get("messages"), list):
            msgs = []
            for m in row["messages"]:
                if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ("user", "assistant"):
                    raise HarnessError(f"{path}: row {n}: each message needs role user|assistant and string content")
                msgs.append((m["role"], m["content"]))
        elif isinstance(row.get("conversations"), list):
            msgs = [("user" if i % 2 == 0 else "assistant", str(c)) for i, c in enumerate(row["conversations"])]
        else:
            raise HarnessError(f"{path}: row {n}: expected a 'messages' or 'conversations' list")
        if len(msgs) % 2:
            if odd_turns == "error":
                raise HarnessError(f"{path}: row {n}: odd number of messages ({len(msgs)}); set odd_turns: drop")
            msgs = msgs[:-1]
            stats["odd_dropped_last"] += 1
        ex = Example(str(row.get("id", n)), tuple(msgs))
        if not msgs:
            raise HarnessError(f"{path}: row {n}: no user/assistant pair")
        ex.turns()  # validates the alternation with a one-line error
        exs.append(ex)
    return exs, stats


def build_single_task(path, limit: int | None = None, **_) -> tuple[list[Example], dict]:
    """This repo's single-task jsonl: ``{id, domain, instruction, response}``, first N rows."""
    rows = read_rows(path)[:limit]
    exs = [_pair(str(r.get("id", n)), _field(r, "instruction", path, n), _field(r, "response", path, n))
           for n, r in enumerate(rows)]
    return exs, {"rows": len(rows)}


def build_alpaca(path, limit: int | None = None, **_) -> tuple[list[Example], dict]:
    """Alpaca-style rows: ``instruction`` (+ ``"\\n\\n" + input`` when non-empty) -> ``output``
    (Stanford Alpaca) or ``reference_output`` (AlpacaEval), first N rows (default: all)."""
    rows = read_rows(path)[:limit]
    exs = []
    for n, r in enumerate(rows):
        user = _field(r, "instruction", path, n)
        if isinstance(r.get("input"), str) and r["input"].strip():
            user += "\n\n" + r["input"]
        key = "output" if "output" in r else "reference_output"
        exs.append(_pair(f"alpaca-{r.get('id', n)}", user, _field(r, key, path, n)))
    return exs, {"rows": len(rows)}


def build_gsm(path, limit: int | None = None, **_) -> tuple[list[Example], dict]:
    """GSM8K train: ``question`` -> ``answer`` verbatim (with ``<<calc>>`` and ``#### N``), first N rows."""
    rows = read_rows(path)[:limit or PAPER_LIMIT]
    return ([_pair(f"gsm-{n}", _field(r, "question", path, n), _field(r, "answer", path, n)) for n, r in enumerate(rows)],
            {"rows": len(rows)})


def build_mbpp(path, limit: int | None = None, **_) -> tuple[list[Example], dict]:
    """MBPP train: ``text`` -> ``code``, first N rows."""
    rows = read_rows(path)[:limit or PAPER_LIMIT]
    exs = [_pair(f"mbpp-{r.get('task_id', n)}", _field(r, "text", path, n), _field(r, "code", path, n))
           for n, r in enumerate(rows)]
    return exs, {"rows": len(rows)}


def build_poetry(path, limit: int | None = None, **_) -> tuple[list[Example], dict]:
    """Poetry: ``"Write a poem called " + poem name`` -> ``content``; untitled rows skipped and counted."""
    rows = read_rows(path)[:limit or PAPER_LIMIT]
    exs, skipped = [], 0
    for n, r in enumerate(rows):
        title = r.get("poem name")
        if title is None or not str(title).strip():
            skipped += 1
            continue
        exs.append(_pair(f"poetry-{n}", "Write a poem called " + str(title), _field(r, "content", path, n)))
    return exs, {"rows": len(rows), "skipped_no_title": skipped}


def parse_ingredients(value) -> list[str] | None:
    """A ``Cleaned_Ingredients`` cell as a list of strings, or ``None`` if it is not one.

    JSON first, then ``ast.literal_eval`` for Python-repr lists (single quotes); never ``eval``.

    >>> parse_ingredients("['1 egg', \\"2 cups flour\\"]")
    ['1 egg', '2 cups flour']
    >>> parse_ingredients("__import__('os')") is None
    True
    """
    if isinstance(value, list):
        items = value
    elif isinstance(value, str):
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            try:
                items = ast.literal_eval(value)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
    else:
        return None
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        return None
    return list(items)


def build_recipes(path, limit: int | None = None, **_) -> tuple[list[Example], dict]:
    """Kaggle recipes: ``"Recipe for " + Title`` -> ingredient lines, blank line, ``Instructions``."""
    rows = read_rows(path)[:limit or PAPER_LIMIT]
    exs, bad = [], 0
    for n, r in enumerate(rows):
        ingredients = parse_ingredients(r.get("Cleaned_Ingredients"))
        if ingredients is None or not isinstance(r.get("Title"), str) or not isinstance(r.get("Instructions"), str):
            bad += 1
            continue
        body = "".join(" - " + ing + "\n" for ing in ingredients) + "\n" + r["Instructions"]
        exs.append(_pair(f"recipes-{n}", "Recipe for " + r["Title"], body))
    return exs, {"rows": len(rows), "skipped_unparsable": bad}


_TAG = re.compile(r'^\[(\w+)\s+"(.*)"\]\s*$')


def pgn_games(lines: Iterable[str]) -> Iterable[tuple[list[str], str]]:
    """Split PGN lines into ``(header lines, movetext)`` games (movetext lines joined by spaces).

    >>> list(pgn_games(['[WhiteElo "1500"]', '', '1. e4 e5 1-0', '[Event "x"]', '1. d4 *']))
    [(['[WhiteElo "1500"]'], '1. e4 e5 1-0'), (['[Event "x"]'], '1. d4 *')]
    """
    headers: list[str] = []
    moves: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if _TAG.match(line):
            if moves:
                yield headers, " ".join(moves)
                headers, moves = [], []
            headers.append(line)
        else:
            moves.append(line)
    if headers or moves:
        yield headers, " ".join(moves)


def build_chess(path, limit: int | None = None, **_) -> tuple[list[Example], dict]:
    """PGN games: ``WhiteElo`` line + ``\\n`` + ``BlackElo`` line + ``\\n`` -> movetext; untagged games skipped."""
    p = Path(path)
    if p.suffix in (".pgn", ".txt"):
        if not p.is_file():
            raise HarnessError(f"{path}: data file not found")
        lines = p.read_text("utf-8").splitlines()
    else:
        lines = [_field(r, "text", path, n) for n, r in enumerate(read_rows(p))]
    cap = limit or PAPER_LIMIT
    exs, stats = [], {"games": 0, "skipped_missing_elo": 0, "skipped_no_moves": 0}
    for game_index, (headers, movetext) in enumerate(pgn_games(lines)):
        if len(exs) >= cap:
            break
        stats["games"] += 1
        tags = {m.group(1): line for line in headers if (m := _TAG.match(line))}
        if "WhiteElo" not in tags or "BlackElo" not in tags:
            stats["skipped_missing_elo"] += 1
            continue
        if not movetext.startswith("1."):
            stats["skipped_no_moves"] += 1
            continue
        exs.append(_pair(f"chess-{game_index}", tags["WhiteElo"] + "\n" + tags["BlackElo"] + "\n", movetext))
    return exs, stats


Builder = Callable[..., tuple[list[Example], dict]]

#: Format name -> builder ``(path, limit=None, odd_turns="drop") -> (examples, stats)``.
BUILDERS: dict[str, Builder] = {
    "messages": build_messages,
    "single_task": build_single_task,
    "alpaca": build_alpaca,
    "gsm": build_gsm,
    "mbpp": build_mbpp,
    "poetry": build_poetry,
    "recipes": build_recipes,
    "chess": build_chess,
}


def build(fmt: str, path, limit: int | None = None, odd_turns: str = "drop") -> tuple[list[Example], dict]:
    """Run the builder for ``fmt`` on ``path``.

    Example:
        >>> build("nope", "x.jsonl")
        Traceback (most recent call last):
        ...
        harness.errors.HarnessError: data format 'nope' unknown; formats: messages, single_task, alpaca, gsm, mbpp, poetry, recipes, chess
    """
    if fmt not in BUILDERS:
        raise HarnessError(f"data format {fmt!r} unknown; formats: {', '.join(BUILDERS)}")
    if fmt == "messages":
        return build_messages(path, limit, odd_turns)
    return BUILDERS[fmt](path, limit)


def build_all(specs) -> tuple[list[Example], list[dict]]:
    """Concatenate the examples of several :class:`~harness.finetune.config.DataSpec` in order."""
    examples, stats = [], []
    for spec in specs:
        exs, st = build(spec.format, spec.path, spec.limit, spec.odd_turns)
        examples += exs
        stats.append({"format": spec.format, "path": str(spec.path), "examples": len(exs), **st})
    return examples, stats
