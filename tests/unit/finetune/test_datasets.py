"""Dataset builders on hand-made fixtures (tests/data/finetune/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.finetune.config import DataSpec
from harness.finetune.datasets import build, build_all, parse_ingredients, pgn_games, read_rows

DATA = Path(__file__).resolve().parents[2] / "data" / "finetune"


def _pairs(exs):
    return [(e.messages[0][1], e.messages[1][1]) for e in exs]


def test_messages_lima_drops_trailing_user_turn():
    exs, stats = build("messages", DATA / "lima.jsonl")
    assert [e.id for e in exs] == ["lima_0", "lima_1", "lima_2"]
    assert len(exs[1].messages) == 4 and len(exs[2].messages) == 2  # "And three?" dropped
    assert stats == {"rows": 3, "odd_dropped_last": 1}
    with pytest.raises(HarnessError, match="row 2: odd number of messages"):
        build("messages", DATA / "lima.jsonl", odd_turns="error")


def test_messages_raw_conversations():
    exs, stats = build("messages", DATA / "lima_raw.jsonl")
    assert exs[0].messages == (("user", "What is red?"), ("assistant", "A colour."))
    assert stats["odd_dropped_last"] == 1


def test_gsm_verbatim_first_rows():
    exs, stats = build("gsm", DATA / "gsm.jsonl", limit=2)
    assert stats == {"rows": 2}
    assert _pairs(exs)[0] == ("Tom has 2 apples and buys 3 more. How many does he have?",
                              "He has 2+3=<<2+3=5>>5 apples.\n#### 5")
    assert [e.id for e in exs] == ["gsm-0", "gsm-1"]


def test_mbpp_text_to_code():
    exs, _ = build("mbpp", DATA / "mbpp.jsonl")
    assert _pairs(exs)[1] == ("Write a function to negate a number.", "def neg(x):\n    return -x")
    assert exs[0].id == "mbpp-601"


def test_poetry_skips_untitled_rows_and_counts():
    exs, stats = build("poetry", DATA / "poetry.jsonl")
    assert [p[0] for p in _pairs(exs)] == ["Write a poem called Ozymandias", "Write a poem called The Tyger"]
    assert stats == {"rows": 4, "skipped_no_title": 2}
    exs, stats = build("poetry", DATA / "poetry.jsonl", limit=2)  # the first N rows, then the skip
    assert len(exs) == 1 and stats["skipped_no_title"] == 1


def test_recipes_without_eval(capfd):
    exs, stats = build("recipes", DATA / "recipes.jsonl")
    assert _pairs(exs)[0] == ("Recipe for Toast", " - 1 slice bread\n - butter\n\nToast the bread. Spread butter.")
    assert _pairs(exs)[1][1].startswith(" - 1 tea bag\n - water\n\n")
    assert stats == {"rows": 3, "skipped_unparsable": 1}
    assert "pwned" not in capfd.readouterr().out


@pytest.mark.parametrize("cell, expected", [
    ("['a', 'b']", ["a", "b"]), ('["a"]', ["a"]), (["x"], ["x"]), ("[1, 2]", None), ("not a list", None),
    ("{'a': 1}", None), (None, None), ("open('/etc/passwd').read()", None),
])
def test_parse_ingredients(cell, expected):
    assert parse_ingredients(cell) == expected


def test_chess_skips_games_without_both_elos():
    exs, stats = build("chess", DATA / "chess.pgn")
    assert _pairs(exs)[0] == ('[WhiteElo "1500"]\n[BlackElo "1480"]\n', "1. e4 e5 2. Nf3 Nc6 1-0")
    assert _pairs(exs)[1][1] == "1. c4 e5 2. Nc3 Nf6 1/2-1/2"   # movetext over two lines joined
    assert [e.id for e in exs] == ["chess-0", "chess-2"]          # game indices, not row indices
    assert stats == {"games": 3, "skipped_missing_elo": 1, "skipped_no_moves": 0}
    exs, stats = build("chess", DATA / "chess.pgn", limit=1)
    assert len(exs) == 1 and stats["games"] == 1


def test_chess_from_rows_of_text():
    exs, stats = build("chess", DATA / "chess_rows.jsonl")
    assert _pairs(exs) == [('[WhiteElo "1700"]\n[BlackElo "1650"]\n', "1. e4 c5 0-1")]


def test_pgn_games_splits_on_headers():
    games = list(pgn_games(['[Event "a"]', "1. e4 *", '[Event "b"]', '[WhiteElo "1"]', "1. d4", "d5 *"]))
    assert games == [(['[Event "a"]'], "1. e4 *"), (['[Event "b"]', '[WhiteElo "1"]'], "1. d4 d5 *")]


def test_single_task_format():
    exs, stats = build("single_task", DATA / "single_task.jsonl")
    assert _pairs(exs)[0] == ("Write a poem called Rain", "Rain on the roof,\nrain on the sea.")
    assert exs[0].id == "0" and stats == {"rows": 2}


def test_build_all_concatenates_in_order():
    exs, stats = build_all([DataSpec("gsm", str(DATA / "gsm.jsonl"), 1), DataSpec("mbpp", str(DATA / "mbpp.jsonl"))])
    assert [e.id for e in exs] == ["gsm-0", "mbpp-601", "mbpp-602"]
    assert [s["examples"] for s in stats] == [1, 2]


def test_read_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\n{oops\n')
    with pytest.raises(HarnessError, match=r"bad.jsonl:2: malformed JSON"):
        read_rows(bad)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"q": "x"}\n')
    with pytest.raises(HarnessError, match=r"row 0: field 'question' missing"):
        build("gsm", wrong)
    with pytest.raises(HarnessError, match="data file not found"):
        build("chess", tmp_path / "none.pgn")
    arr = tmp_path / "rows.json"
    arr.write_text('[{"text": "t", "code": "c"}]')
    assert len(build("mbpp", arr)[0]) == 1


def test_shared_single_task_poetry(shared_data):
    exs, stats = build("single_task", shared_data / "single_task" / "poetry.jsonl")
    assert len(exs) == 571 and exs[0].messages[0][1].startswith("Write a poem called ")


def test_alpaca_output_or_reference_output():
    exs, stats = build("alpaca", DATA / "alpaca.jsonl")
    assert _pairs(exs) == [("Give three tips for staying healthy.", "1. Eat well.\n2. Sleep.\n3. Move."),
                           ("Translate to French.\n\nGood morning", "Bonjour"), ("Name a planet.", "Mars.")]
    assert exs[2].id == "alpaca-7" and stats == {"rows": 3}
