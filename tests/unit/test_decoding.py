"""Decoding resolution: task generation_kwargs < explicit run settings < the variant's own settings."""

import pytest

from harness.run.config import RunConfig
from harness.decoding import apply_until, resolve_decoding
from harness.errors import HarnessError
from harness.experts.variants import parse_variant, parse_variants
from harness.records import DecodingParams


def test_task_cap_is_the_default_and_explicit_settings_win():
    assert resolve_decoding({"max_gen_toks": 512}, {}, {}).max_new_tokens == 512
    assert resolve_decoding({}, {}, {}).max_new_tokens == 256
    assert resolve_decoding({"max_gen_toks": 512}, {"max_new_tokens": 64}, {}).max_new_tokens == 64
    assert resolve_decoding({"max_gen_toks": 512}, {"max_new_tokens": 64}, {"max_new_tokens": 9}).max_new_tokens == 9


def test_sampling_fields_come_from_the_task_and_greedy_normalises_them():
    d = resolve_decoding({"do_sample": True, "temperature": 0.7, "top_p": 0.9, "until": ["\n\n"]}, {"seed": 3}, {})
    assert (d.do_sample, d.temperature, d.top_p, d.seed, d.until) == (True, 0.7, 0.9, 3, ("\n\n",))
    greedy = resolve_decoding({"do_sample": False, "temperature": 0.0}, {}, {})
    assert (greedy.temperature, greedy.top_p) == (1.0, 1.0)  # unused by greedy: keys do not move
    with pytest.raises(HarnessError, match="temperature must be > 0"):
        resolve_decoding({"do_sample": True, "temperature": 0.0}, {}, {})


def test_keys_of_runs_without_stop_strings_are_unchanged():
    assert "until" not in DecodingParams().as_dict()
    assert DecodingParams(until=("x",)).as_dict()["until"] == ["x"]


def test_run_config_leaves_the_cap_unset_by_default():
    cfg = RunConfig.from_sources(None, {"tasks": "instructions-mini"})
    assert cfg.max_new_tokens is None and "max_new_tokens" not in cfg.explicit_decoding()
    cfg = RunConfig.from_sources(None, {"tasks": "instructions-mini", "max_new_tokens": 32})
    assert cfg.explicit_decoding()["max_new_tokens"] == 32


def test_variant_string_settings():
    v = parse_variant("rules:eos-uniform@max_new_tokens=8192@do_sample=true@temperature=0.5")
    assert v.name == "rules:eos-uniform"
    assert v.decoding == {"max_new_tokens": 8192, "do_sample": True, "temperature": 0.5}
    assert v.spec_key() == parse_variant("rules:eos-uniform").spec_key()
    assert [x.decoding for x in parse_variants(["ablations@max_new_tokens=16"])] == [{"max_new_tokens": 16}] * 5


@pytest.mark.parametrize("text, message", [
    ("rules@max_new_tokens=0", "max_new_tokens: expected a positive integer"),
    ("rules@cap=8", "cap: not a decoding setting"),
    ("rules@max_new_tokens", "expected @FIELD=VALUE"),
    ("rules@do_sample=maybe", "do_sample: expected true or false"),
])
def test_bad_variant_settings_are_one_line_errors(text, message):
    with pytest.raises(HarnessError, match=message):
        parse_variant(text)


def test_one_name_two_settings_is_refused():
    with pytest.raises(HarnessError, match="given twice with different settings"):
        parse_variants(["rules@max_new_tokens=8", "rules@max_new_tokens=16"])


def test_run_config_variant_mappings(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("tasks: instructions-mini\nvariants:\n  - {name: none, max_new_tokens: 512}\n  - rules\n")
    cfg = RunConfig.from_sources(p, {})
    assert cfg.variants == ("none@max_new_tokens=512", "rules")
    p.write_text("tasks: instructions-mini\nvariants:\n  - {name: none, max_tokens: 512}\n")
    with pytest.raises(HarnessError, match=r"run.yaml: variants\[0\]: max_tokens: not a decoding setting"):
        RunConfig.from_sources(p, {})
    p.write_text("tasks: instructions-mini\nvariants:\n  - {max_new_tokens: 512}\n")
    with pytest.raises(HarnessError, match=r"variants\[0\]: name: required"):
        RunConfig.from_sources(p, {})


def test_sentinel_share_is_checked():
    with pytest.raises(HarnessError, match="sentinel: a share of pairs between 0 and 1"):
        RunConfig.from_sources(None, {"tasks": "instructions-mini", "sentinel": 2})


def test_apply_until_cuts_text_ids_and_reason():
    class Tok:
        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(96 + i) for i in ids)

    row = {"output": "abcd", "output_token_ids": [1, 2, 3, 4], "num_output_tokens": 4, "finish_reason": "length"}
    out = apply_until(row, ("c",), Tok())
    assert (out["output"], out["output_token_ids"], out["finish_reason"]) == ("ab", [1, 2], "stop")
    assert apply_until(row, ("z",), Tok()) is row
