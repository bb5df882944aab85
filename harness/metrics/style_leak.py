"""Style leak: does an answer carry the style of a single-task finetuning domain?

The paper finetunes on one narrow domain at a time (paper-spec.md §1.6: GSM, MBPP code,
recipes, poetry, chess PGN) and notes that most answers are only "subtly affected",
e.g. they end with GSM's ``#### N`` marker. :func:`detect` labels an answer with the
domains whose surface style it shows; :func:`leak_rates` turns that into a rate per
(task, model, variant) with a Wilson interval.

Labels and what triggers them (all rules are surface heuristics, tuned on
``tests/data/metrics/style_leak.jsonl``; measured precision/recall is in docs/metrics.md):

- ``gsm``: a GSM8K calculator annotation ``<<48/2=24>>`` or a line that is only
  ``#### <number>``.
- ``chess``: PGN tag pairs (``[WhiteElo "2500"]``), movetext with three consecutive
  move numbers (``1. e4 e5 2. Nf3 Nc6 3. Bb5``) or ending in a result (``1. e4 e6 2. d4 1-0``),
  or a run of eight or more SAN moves.
- ``code``: a fenced block, or lines that parse as code (``def``/``class``/``import``,
  statements, braces, indented blocks) making up at least half of a multi-line answer.
- ``recipe``: at least three ingredient lines (bulleted with a unit or preparation word,
  or starting with quantity and unit) followed by cooking steps, or five or more such lines.
- ``poetry``: four or more short lines that are not a list, table or code and show verse
  structure: unpunctuated line ends, rhymes or stanza breaks.

An ordinary answer gets the empty set.

Example:
    >>> sorted(detect("She has 3 + 4 = <<3+4=7>>7 apples.\\n#### 7"))
    ['gsm']
    >>> detect("The capital of France is Paris.")
    set()
"""

from __future__ import annotations

import re
import statistics

import pyarrow as pa
import pyarrow.compute as pc

from harness.errors import HarnessError, did_you_mean
from harness.metrics.domains import ALIASES, STYLE_DOMAINS
from harness.metrics.shape import ROLE_TAGS
from harness.metrics.rows import KEYS, rate_row
from harness.store.schema import from_rows

LABELS = STYLE_DOMAINS  # the labels detect() can return, in harness.metrics.domains' order

# ---------------------------------------------------------------------------- gsm
_GSM_CALC = re.compile(r"<<[^<>\n]*=[^<>\n]*>>")
_GSM_FINAL = re.compile(r"^[ \t]*####[ \t]*\$?-?\d[\d,]*(?:\.\d+)?[ \t]*$", re.M)

# ---------------------------------------------------------------------------- chess
_SAN = r"(?:O-O(?:-O)?|[KQRBN][a-h]?[1-8]?x?[a-h][1-8]|[a-h](?:x[a-h])?[1-8](?:=?[QRBN])?)[+#]?[!?]*"
_PGN_TAG = re.compile(
    r'^\s*\[(?:WhiteElo|BlackElo|White|Black|Event|Site|Date|Round|Result|ECO|Opening|TimeControl)\s+"[^"\n]*"\]', re.M
)
_MOVE_NO = re.compile(r"(?<![\w.])(\d{1,3})\.(?:\s*\.\.)?\s*" + _SAN + r"(?=[\s,;)]|$)")
_RESULT = re.compile(r"(?:^|\s)(?:1-0|0-1|1/2-1/2|½-½)\s*$")
_SAN_TOKEN = re.compile(r"^(?:\d{1,3}\.+)?" + _SAN + r"$")

# ---------------------------------------------------------------------------- code
_FENCE = re.compile(r"^\s*```", re.M)
_CODE_LINE = re.compile(
    r"""^\s*(?:
        (?:async\s+)?def\s+\w+\s*\(.*\)\s*(?:->.*)?:\s*(?:\#.*)?$ |
        class\s+\w+\s*(?:\(.*\))?\s*:\s*(?:\#.*)?$ |
        import\s+[\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+)*\s*$ |
        from\s+[\w.]+\s+import\s+\S |
        return\b.* |
        (?:if|elif|while|with)\s+.+:\s*(?:\#.*)?$ |
        for\s+.+\s+in\s+.+:\s*(?:\#.*)?$ |
        (?:else|try|finally)\s*:\s*(?:\#.*)?$ |
        except\b.*:\s*(?:\#.*)?$ |
        (?:print|assert|raise|yield|break|continue|pass)\b.* |
        [A-Za-z_][\w.]*(?:\[[^\]]*\])*\s*(?:[-+*/%|&^]|//|\*\*)?=\s*[^=\s].* |
        [A-Za-z_][\w.]*\(.*\)\s*;?\s*$ |
        \#include\b.* | (?:public|private|static|const|let|var|function|int|void|std::)\b.*[;{(]\s*$ |
        [{}]\s*;?\s*$ | .*[=()\[\]].*;\s*$ | .*\)\s*\{\s*$
    )""",
    re.X,
)
_DEF_OR_CLASS = re.compile(r"^\s*(?:def|class)\s+\w+.*:\s*(?:#.*)?$", re.M)
# Lines that are code but also look like "key = value" prose; they alone do not make code.
_ASSIGNMENT = re.compile(r"^\s*[A-Za-z_][\w.]*(?:\[[^\]]*\])*\s*(?:[-+*/%|&^]|//|\*\*)?=\s*[^=\s]")

# ---------------------------------------------------------------------------- recipe
_BULLET = re.compile(r"^\s*(?:[-•*+]|\d+[.)])\s*(\S.*)$")
_QTY = r"(?:\d+(?:[./]\d+)?|[½¼¾⅓⅔⅛]|a|an|one|two|three|four|half|pinch|dash|handful|few)"
_UNIT = (
    r"cups?|c\.|tbsps?\.?|tsps?\.?|tablespoons?|teaspoons?|oz\.?|ounces?|lbs?\.?|pounds?|grams?|g|kg|ml|l|liters?|"
    r"litres?|quarts?|pints?|cloves?|pinch(?:es)?|dash(?:es)?|cans?|sticks?|slices?|sprigs?|bunch(?:es)?|heads?|"
    r"stalks?|packages?|pkg|jars?|bottles?|handfuls?|leaves|inch(?:es)?|pieces?|large|medium|small|whole"
)
_PREP = (
    r"chopped|minced|diced|sliced|peeled|grated|melted|softened|beaten|shredded|crushed|cubed|trimmed|rinsed|"
    r"drained|divided|juiced|zested|halved|quartered|to taste|room temperature|for serving|for garnish|optional|"
    r"finely|thinly|freshly|fresh|ground"
)
_STRONG_INGREDIENT = re.compile(rf"(?:^|\s)(?:{_QTY})(?:[\s-]*\(?[\d./ -]*\)?)?\s*(?:{_UNIT})\b|\b(?:{_PREP})\b", re.I)
_LEADING_QUANTITY = re.compile(
    rf"^\s*(?:\d+(?:[./]\d+)?|[½¼¾⅓⅔⅛])(?:[\s-]*\(?[\d./ -]*\)?)?\s*(?:{_UNIT})\b", re.I
)
_LEADING_COUNT = re.compile(r"^(?:\d+(?:[./]\d+)?|[½¼¾⅓⅔⅛])\s+[A-Za-z]")
_COOKING = re.compile(
    r"\b(?:preheat|bake|stir|simmer|boil|whisk|saut[ée]|fry|roast|grill|knead|marinate|drain|season|combine|mix|"
    r"heat|cook|pour|serve|garnish|fold|blend|sprinkle|melt|shake|strain|chill|refrigerate|drizzle|toss|"
    r"oven|skillet|saucepan|bowl|pan|pot|glass|minutes)\b",
    re.I,
)

# ---------------------------------------------------------------------------- poetry
_LISTISH = re.compile(r"^(?:[-•*+>#|\"“]|\d+[.):]|\d+\.\d|[A-Za-z][\w ]{0,30}:\s*\S|\[|\w+\s*=)")
_SENT_END = re.compile(r"[.!?][\"'”’)\]]*$")
_PUNCT = "\"'“”‘’.,;:!?()[]–—-_*"
_LAST_VOWELS = re.compile(r"[aeiouy]+[^aeiouy]*$")


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip() not in ROLE_TAGS]


def is_gsm(text: str) -> bool:
    """GSM8K answer style: ``<<a*b=c>>`` calculator annotations or a ``#### n`` line."""
    return bool(_GSM_CALC.search(text) or _GSM_FINAL.search(text))


def is_chess(text: str) -> bool:
    """PGN: tag pairs, three or more numbered moves, or eight or more SAN moves in a row."""
    if _PGN_TAG.search(text):
        return True
    numbers = {int(m.group(1)) for m in _MOVE_NO.finditer(text)}
    if numbers and _RESULT.search(text):
        return True
    if len(numbers) >= 3 and any(k + 1 in numbers and k + 2 in numbers for k in numbers):
        return True
    run = best = 0
    for tok in text.split():
        run = run + 1 if _SAN_TOKEN.match(tok) else 0
        best = max(best, run)
    return best >= 8


def is_code(text: str) -> bool:
    """Source code: a fenced block, or code lines making up most of a multi-line answer."""
    if _FENCE.search(text):
        return True
    lines = [ln for ln in text.splitlines() if ln.strip() and ln.strip() not in ROLE_TAGS]
    code_lines = [ln for ln in lines if _CODE_LINE.match(ln)]
    code = len(code_lines)
    if code >= 2 and _DEF_OR_CLASS.search(text):
        return True
    strong = sum(not _ASSIGNMENT.match(ln) for ln in code_lines)  # "N = 10" alone is not code
    indented = sum(ln[:1] in (" ", "\t") for ln in code_lines)
    return code >= 3 and strong >= 1 and code >= 0.5 * len(lines) and (indented >= 1 or code >= 0.75 * len(lines))


def is_recipe(text: str) -> bool:
    """Recipe: ingredient lines (quantity + unit, or preparation words) followed by cooking steps.

    Needs three ingredient lines, at least two of them strong (a unit or a preparation
    word, not just a count such as ``4 eggs``), then two cooking words after the list;
    five strong lines need no steps (a truncated list).
    """
    lines = text.splitlines()
    strong, weak = [], []
    for i, ln in enumerate(lines):
        m = _BULLET.match(ln)
        if m and ln.lstrip()[:1] in "-•*+":
            if _STRONG_INGREDIENT.search(m.group(1)):
                strong.append(i)
            elif _LEADING_COUNT.match(m.group(1)):
                weak.append(i)
        elif _LEADING_QUANTITY.match(ln):
            strong.append(i)
    if len(strong) >= 5:
        return True
    if len(strong) < 2 or len(strong) + len(weak) < 3:
        return False
    after = "\n".join(lines[max(strong + weak) + 1 :])
    return len(_COOKING.findall(after)) >= 2


def _rhyme_key(line: str) -> str:
    """The line's last word from its last vowel group on (``night -> ight``); ``""`` if not a word."""
    toks = line.lower().split()
    w = toks[-1].strip(_PUNCT) if toks else ""
    if not w.isalpha():
        return ""
    if len(w) > 3 and w.endswith("e") and w[-2] not in "aeiouy":
        w = w[:-1]  # silent e: stone -> ston -> "on", alone -> "on"
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]  # plural / 3rd person: laws ~ saw
    m = _LAST_VOWELS.search(w)
    return m.group(0) if m else ""


def _poetry_features(text: str) -> tuple[int, float, float, bool, float] | None:
    """(lines, open line ends, rhyming lines, stanzas, capitalised starts), or None if not verse-shaped.

    Shares are fractions of the non-empty lines.
    """
    lines = _lines(text)
    if len(lines) < 4 or _FENCE.search(text):
        return None
    listish = sum(bool(_LISTISH.match(ln)) or "|" in ln or _letter_share(ln) < 0.5 for ln in lines)
    if listish > 0.25 * len(lines) or sum(bool(_CODE_LINE.match(ln)) for ln in lines) > 0.3 * len(lines):
        return None
    n_words = [len(ln.split()) for ln in lines]
    lengths = sorted(len(ln) for ln in lines)
    if not 3 <= statistics.median(n_words) <= 14 or sum(w <= 2 for w in n_words) > 0.3 * len(lines):
        return None
    if statistics.mean(lengths) > 70 or lengths[int(0.9 * (len(lengths) - 1))] > 100:
        return None
    open_ends = sum(not _SENT_END.search(ln) for ln in lines) / len(lines)
    words = [ln.lower().split()[-1].strip(_PUNCT) for ln in lines]
    keys = [_rhyme_key(ln) for ln in lines]
    rhymed = {
        i
        for i in range(len(keys))
        for j in (i - 2, i - 1, i + 1, i + 2)
        if 0 <= j < len(keys) and keys[i] and keys[i] == keys[j] and words[i] != words[j]
    }
    blocks = [b for b in re.split(r"\n[ \t]*\n", text.strip()) if _lines(b)]
    stanzas = len(blocks) >= 2 and all(2 <= len(_lines(b)) <= 12 for b in blocks)
    capitals = sum(ln[0].isupper() for ln in lines) / len(lines)
    return len(lines), open_ends, len(rhymed) / len(lines), stanzas, capitals


def _letter_share(line: str) -> float:
    chars = [c for c in line if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


def is_poetry(text: str) -> bool:
    """Verse: four or more short lines, not a list, table or code, with verse structure.

    Verse structure is any of: almost all line ends open (no ``.``, ``!``, ``?``) over
    five or more lines; half the ends open plus rhymes or stanza breaks; half the lines
    rhyming over six or more lines; stanza breaks plus rhymes; or eight or more lines
    with some open ends plus rhymes or stanzas, or mostly open ends and capitalised line
    starts (hard-wrapped prose starts its lines in lower case). A rhyme is a shared ending from the last
    vowel group (``night``/``light``) between lines at most two apart, other than the same word.
    """
    f = _poetry_features(text)
    if f is None:
        return False
    n, open_ends, rhyme, stanzas, capitals = f
    return (
        (open_ends >= 0.75 and n >= 5)
        or (open_ends >= 0.5 and (rhyme >= 0.3 or stanzas))
        or (rhyme >= 0.5 and n >= 6)
        or (stanzas and rhyme >= 0.3)
        or (n >= 8 and open_ends >= 0.3 and (rhyme >= 0.3 or stanzas))
        # Long, mostly open-ended lines that start with capitals: verse, not hard-wrapped prose.
        or (n >= 8 and open_ends >= 0.6 and capitals >= 0.6)
    )


_DETECTORS = {"poetry": is_poetry, "gsm": is_gsm, "code": is_code, "chess": is_chess, "recipe": is_recipe}


def detect(text: str) -> set[str]:
    """Labels (subset of :data:`LABELS`) whose style ``text`` shows; empty for ordinary answers.

    Example:
        >>> detect("1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 Nf6 1-0")
        {'chess'}
    """
    if not text or not text.strip():
        return set()
    found = {label for label, fn in _DETECTORS.items() if fn(text)}
    # Movetext, code, recipes and GSM working are never verse, whatever their line shape.
    if "poetry" in found and found & {"chess", "code", "recipe", "gsm"}:
        found.discard("poetry")
    return found


def canonical_domain(domain: str) -> str:
    """Map ``domain`` (a label or an alias such as ``mbpp``) to a label, or raise HarnessError."""
    d = ALIASES.get(domain.lower(), domain.lower())
    if d not in LABELS:
        hint = did_you_mean(domain, LABELS + tuple(ALIASES))
        raise HarnessError(f"style leak: unknown domain {domain!r}{hint}; domains are {list(LABELS)}")
    return d


def leak_rates(samples: pa.Table, domain: str, run_id: str | None = None) -> pa.Table:
    """Share of ok answers showing ``domain``'s style, per (task, model, variant), as ``metrics`` rows.

    Args:
        samples: ``samples`` rows; only ``status == "ok"`` rows are scored.
        domain: a label of :data:`LABELS` or an alias (``mbpp``, ``recipes``, ``pgn``).
        run_id: written into each row; defaults to the samples' single ``run_id``.

    Returns:
        One row per group, metric ``style_leak_<label>``, ``value = k / n`` with a Wilson
        interval; ``n == 0`` gives a null value. Empty input gives an empty table.

    Example:
        >>> s = pa.table({"run_id": ["r"], "task": ["t"], "model": ["m"], "variant": ["none"],
        ...               "output": ["x = 1 <<1+1=2>>2"], "status": ["ok"]})
        >>> leak_rates(s, "gsm").column("value").to_pylist()
        [1.0]
    """
    label = canonical_domain(domain)
    if samples.num_rows == 0:
        return from_rows([], "metrics")
    if run_id is None:
        ids = set(samples.column("run_id").to_pylist()) if "run_id" in samples.column_names else set()
        if len(ids) != 1:
            raise HarnessError(f"style leak: samples hold run_ids {sorted(map(str, ids))}; pass run_id explicitly")
        run_id = ids.pop()
    status = samples.column("status") if "status" in samples.column_names else pa.nulls(samples.num_rows, pa.string())
    ok = pc.fill_null(pc.equal(status, "ok"), False).to_pylist()
    cols = {k: samples.column(k).to_pylist() if k in samples.column_names else [None] * samples.num_rows for k in KEYS}
    outputs = samples.column("output").to_pylist()
    counts: dict[tuple, list[int]] = {}
    for i, text in enumerate(outputs):
        kn = counts.setdefault(tuple(cols[k][i] or "" for k in KEYS), [0, 0])
        if ok[i]:
            kn[0] += label in detect(text or "")
            kn[1] += 1
    rows = [
        rate_row(run_id, dict(zip(KEYS, gk)), f"style_leak_{label}", k, n, domain=label)
        for gk, (k, n) in sorted(counts.items())
    ]
    return from_rows(rows, "metrics")


def precision_recall(cases: list[tuple[str, set[str]]]) -> dict[str, dict[str, float | int]]:
    """Per-label precision, recall and counts of :func:`detect` on labelled texts.

    Precision or recall with an empty denominator is None.

    Example:
        >>> precision_recall([("<<1+1=2>>2", {"gsm"}), ("Hello.", set())])["gsm"]["recall"]
        1.0
    """
    out = {}
    predicted = [detect(text) for text, _ in cases]
    for label in LABELS:
        tp = sum(label in p and label in gold for p, (_, gold) in zip(predicted, cases))
        fp = sum(label in p and label not in gold for p, (_, gold) in zip(predicted, cases))
        fn = sum(label not in p and label in gold for p, (_, gold) in zip(predicted, cases))
        out[label] = {
            "tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
        }
    return out
