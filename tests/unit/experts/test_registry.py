"""Named experts: built-in presets, --expert files and variant lookup."""

import pytest

from harness.errors import HarnessError
from harness.experts import load_user_experts, parse_variants
from harness.experts.registry import expert_registry, preset_paths
from harness.experts.spec import load_expert, paper_expert
from harness.experts.variants import parse_variant

# preset name -> the option string it equals (same behaviour hash)
PRESET_OPTIONS = {
    "paper": "eos-uniform-diversity",
    "paper-start": "eos-uniform-diversity-start",
    "paper-table8": "eos-uniform-diversity-table8",
    "paper-as-written": "eos-uniform-diversity-table8-fallback-prose",
    "paper-llama2": "eos-uniform-diversity",
}


@pytest.mark.parametrize("name", sorted(PRESET_OPTIONS))
def test_presets_equal_their_option_strings(name):
    assert load_expert(preset_paths()[name]).spec_hash() == paper_expert(PRESET_OPTIONS[name]).spec_hash()


def test_every_preset_is_listed_and_named_after_its_file():
    assert sorted(preset_paths()) == sorted(PRESET_OPTIONS)
    reg = expert_registry()
    assert all(reg.get(n).name == n for n in PRESET_OPTIONS)


def test_paper_preset_is_the_three_rule_model():
    spec = load_expert(preset_paths()["paper"])
    assert spec.start is None and spec.eos.fallback_after is None
    assert {d.token: d.delta for d in spec.uniform}["What"] == -5.0


def test_variants_by_preset_name():
    variants = parse_variants(["none", "paper-table8", "paper-start"])
    assert [v.name for v in variants] == ["none", "paper-table8", "paper-start"]
    assert variants[2].expert.start is not None


def test_unknown_variant_lists_presets():
    with pytest.raises(HarnessError, match=r"did you mean 'paper-table8'.*known: .*paper-start"):
        parse_variant("paper-tabel8")


def test_expert_file_registers_by_name(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: exp-eos\neos: {ramp: exponential, scale: 0.5, rate: 0.02, until: 400}\n")
    experts = load_user_experts([path])
    assert list(experts) == ["exp-eos"]
    (variant,) = parse_variants(["exp-eos"], experts)
    assert variant.expert.eos.ramp == "exponential" and variant.expert.source == str(path)


def test_variant_may_be_a_yaml_path(tmp_path):
    path = tmp_path / "shout.yaml"
    path.write_text("name: shout\nuniform: [{token: '!', delta: 3}]\n")
    assert parse_variant(str(path)).name == "shout"


@pytest.mark.parametrize("name,match", [
    ("rules", "reserved"),
    ("rules:mine", "reserved"),
    ("paper-table8", r"already taken by .*presets/paper-table8\.yaml"),
])
def test_expert_names_cannot_clash(tmp_path, name, match):
    path = tmp_path / "x.yaml"
    path.write_text(f"name: '{name}'\nuniform: [{{token: '!', delta: 3}}]\n")
    with pytest.raises(HarnessError, match=match) as err:
        load_user_experts([path])
    assert str(err.value).startswith(f"{path}: name:")


def test_two_files_with_one_name_clash(tmp_path):
    for f in ("a.yaml", "b.yaml"):
        (tmp_path / f).write_text("name: same\nuniform: [{token: '!', delta: 3}]\n")
    with pytest.raises(HarnessError, match=r"b\.yaml: name: 'same' is already taken by .*a\.yaml"):
        load_user_experts([tmp_path / "a.yaml", tmp_path / "b.yaml"])
