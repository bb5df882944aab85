"""Generated doc tables stay in sync with the code; every metric name a producer writes is registered and documented."""

from __future__ import annotations

import ast
import re

import pytest
import yaml

from harness.run.config import RunConfig
from harness.doc_tables import REPO, run_config_table, stale_sections
from harness.metrics.names import METRIC_NAMES, all_names, is_known

HARNESS = REPO / "harness"


def test_generated_sections_are_current():
    assert stale_sections() == [], "run `python -m harness.doc_tables` and commit the docs"


def test_run_config_table_has_every_field():
    table = run_config_table()
    keys = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert keys == [f for f in RunConfig.__dataclass_fields__ if f != "source"]
    assert "| `max_new_tokens` | int or null | `null` | `--max-new-tokens` |" in table


def test_run_config_doc_example_loads(tmp_path):
    doc = (REPO / "docs" / "run-config.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", doc, re.S).group(1)
    path = tmp_path / "my-run.yaml"
    path.write_text(example)
    cfg = RunConfig.from_sources(path, {})
    assert cfg.max_new_tokens == yaml.safe_load(example)["max-new-tokens"] and cfg.variants == ("none", "rules")


def test_each_metric_name_is_documented_once():
    doc = (REPO / "docs" / "results-tables.md").read_text()
    section = doc.split("<!-- generated:metric-names -->")[1].split("<!-- end generated:metric-names -->")[0]
    listed = re.findall(r"^\| `([^`]+)` \|", section, re.M)
    assert sorted(listed) == sorted(METRIC_NAMES) and len(listed) == len(set(listed))


def _metric_literals() -> list[tuple[str, str, bool]]:
    """(file, name or f-string prefix, is_prefix) of every ``"metric": ...`` dict value and ``rate_row`` name in harness/."""
    found = []
    for path in HARNESS.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            values = []
            if isinstance(node, ast.Dict):
                values = [v for k, v in zip(node.keys, node.values)
                          if isinstance(k, ast.Constant) and k.value == "metric"]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("rate_row", "mean_row") \
                    and len(node.args) >= 3:
                values = [node.args[2]]
            for v in values:
                rel = str(path.relative_to(REPO))
                if isinstance(v, ast.Constant) and isinstance(v.value, str):
                    found.append((rel, v.value, False))
                elif isinstance(v, ast.JoinedStr) and v.values and isinstance(v.values[0], ast.Constant):
                    found.append((rel, v.values[0].value, True))
    return found


def test_every_metric_name_in_the_code_is_registered():
    literals = _metric_literals()
    assert len(literals) >= 5  # the scan sees the producers (judges, similarity, ranking, style leak, ...)
    names = all_names()
    for rel, name, is_prefix in literals:
        ok = any(n.startswith(name) for n in names) if is_prefix else is_known(name)
        assert ok, f"{rel}: metric {name!r} is not in harness/metrics/names.py"


def test_summary_and_style_leak_names_are_registered():
    from harness.metrics import style_leak, summary

    for name in (*summary.METRIC_ORDER, *summary.RATE_METRICS, *summary.MEAN_METRICS):
        assert is_known(name), name
    for label in style_leak.LABELS:
        assert is_known(f"style_leak_{label}")


@pytest.mark.parametrize("bad", ["prompt_level_strict_acc,none", "ifeval_prompt_level_strict_acc", "judge_pref"])
def test_old_names_are_not_registered(bad):
    assert not is_known(bad)


def test_readme_counts_the_mini_tasks_instructions():
    from harness.tasks import load_tasks

    (mini,) = load_tasks(["instructions-mini"])
    n = len(mini.items())
    assert f"the {n} self-written instructions of `instructions-mini`" in (REPO / "README.md").read_text()
