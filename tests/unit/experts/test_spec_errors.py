"""Expert specs: strict option strings and YAML errors that name the file and key."""

import pytest

from harness.errors import HarnessError
from harness.experts import load_expert, parse_variants
from harness.experts.spec import paper_expert


@pytest.mark.parametrize("options,match", [
    ("eos-unifrom", "unknown option 'unifrom' .*did you mean 'uniform'"),
    ("eos-eos", "name each rule once"),
    ("table8", "at least one of"),
])
def test_bad_option_strings(options, match):
    with pytest.raises(HarnessError, match=match):
        paper_expert(options)


def test_unknown_variant_suggests():
    with pytest.raises(HarnessError, match="did you mean 'rules'"):
        parse_variants(["rulse"])


@pytest.mark.parametrize("text,match", [
    ("name: x\neos: {ramp: linear, per_tokn: 0.1}\n", r"eos\.per_tokn: unknown key .*per_token"),
    ("name: x\nuniform: [{token: '<', delta: 'a lot'}]\n", r"uniform\[0\]"),
    ("name: x\ndiversity: {scope: everything}\n", r"diversity\.scope"),
    ("eos: {}\n", "name: required"),
    ("name: x\nbogus: 1\n", "bogus: unknown key"),
    ("name: [unclosed\n", r":\d+: invalid YAML"),
])
def test_malformed_expert_yaml(tmp_path, text, match):
    path = tmp_path / "expert.yaml"
    path.write_text(text)
    with pytest.raises(HarnessError, match=match) as err:
        load_expert(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_user_expert_is_a_variant(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: shout\nuniform: [{token: '!', delta: 3}]\n")
    from harness.experts import load_user_experts

    variants = parse_variants(["none", "shout"], load_user_experts([path]))
    assert variants[1].expert.uniform[0].delta == 3.0
