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


@pytest.mark.parametrize("options,match", [
    ("eos-table8", "modifier 'table8' changes rule 'uniform', which is off"),
    ("uniform-fallback", "modifier 'fallback' changes rule 'eos'"),
    ("eos-prose", "modifier 'prose' changes rule 'diversity'"),
    ("eos-uniform-diversty", "did you mean 'diversity'"),
])
def test_modifiers_need_their_rule(options, match):
    with pytest.raises(HarnessError, match=match) as err:
        paper_expert(options)
    assert f"rules:{options}" in str(err.value)


@pytest.mark.parametrize("text,match", [
    ("name: x\neos: {per_token: fast}\n", r"eos\.per_token: expected a number"),
    ("name: x\neos: {until: 2.5}\n", r"eos\.until: expected an integer"),
    ("name: x\neos: {until: 0}\n", r"eos\.until: must be a positive"),
    ("name: x\neos: {ramp: cubic}\n", r"eos\.ramp: 'cubic'"),
    ("name: x\nstart: {second: {token: '!'}}\n", r"start\.second: expected \{token"),
    ("name: x\ncheck: llama3\n", r"check: 'llama3' is not one of llama2"),
    ("name: x\ninclude: papr\n", r"include: unknown preset 'papr' \(did you mean 'paper'\?\)"),
    ("name: x\ninclude: missing.yaml\n", r"missing\.yaml: expert file not found"),
    ("- just\n- a list\n", "expected a mapping at the top level"),
])
def test_malformed_expert_yaml_more(tmp_path, text, match):
    path = tmp_path / "expert.yaml"
    path.write_text(text)
    with pytest.raises(HarnessError, match=match) as err:
        load_expert(path)
    assert "\n" not in str(err.value)


def test_include_merges_sections_and_turns_rules_off(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("include: paper\nname: mine\neos: {until: 100}\ndiversity: null\n")
    spec = load_expert(path)
    assert spec.eos.until == 100 and spec.eos.per_token == 0.06  # merged key by key
    assert spec.diversity is None and len(spec.uniform) == 15
    assert spec.name == "mine" and spec.description == ""


def test_include_cycle_is_named(tmp_path):
    (tmp_path / "a.yaml").write_text("include: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\nname: b\n")
    with pytest.raises(HarnessError, match=r"include: cycle .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_expert(tmp_path / "a.yaml")


def test_unknown_key_in_included_file_names_that_file(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nuniformm: []\n")
    (tmp_path / "top.yaml").write_text("include: base.yaml\nname: top\n")
    with pytest.raises(HarnessError, match=r"base\.yaml: uniformm: unknown key \(did you mean 'uniform'\?\)"):
        load_expert(tmp_path / "top.yaml")


def test_check_is_not_part_of_the_behaviour_hash(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("include: paper\nname: c\ncheck: llama2\n")
    assert load_expert(path).spec_hash() == paper_expert().spec_hash()
