"""Rule experts as data: the spec dataclasses, YAML loading and the paper's option strings.

An expert is a set of rules whose scores are added to the base model's next-token
logits (a product of experts, paper Eq. 4-5). The paper's expert is
``presets/paper.yaml``; option strings select its rules the way the paper's code does
(``eos-uniform-diversity`` = all three), parsed strictly.

Example:
    >>> spec = paper_expert("eos-uniform")
    >>> spec.diversity is None, spec.eos.per_token
    (True, 0.06)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path


from harness.errors import HarnessError, did_you_mean
from harness.yaml_io import read_yaml_mapping, typed_fields

PRESETS = Path(__file__).parent / "presets"
RULES = ("eos", "uniform", "diversity", "start")
MODIFIERS = ("table8", "fallback", "prose", "fixed")
FULL_OPTIONS = "eos-uniform-diversity"
CHECKS = ("llama2",)
TOP_KEYS = ("name", "description", "include", "check", "anchor", "eos", "uniform", "diversity", "start")
ANCHORS = ("prompt", "last-tag")
"""How the rules find the response start and the diversity window (:mod:`harness.experts.anchors`)."""


@dataclass(frozen=True, slots=True)
class EosRule:
    """EOS bonus as a function of t, the number of tokens generated so far.

    ``linear``: ``per_token * t`` for ``0 < t < until``; ``exponential``:
    ``scale * (exp(rate * t) - 1)`` for ``0 < t < until``. ``fallback_after`` adds
    ``fallback_bonus`` once ``t > fallback_after`` (the listing's +100 past 1024).
    """

    ramp: str = "linear"
    per_token: float = 0.06
    until: int = 250
    scale: float = 1.0
    rate: float = 0.0
    fallback_after: int | None = None
    fallback_bonus: float = 100.0


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """A fixed additive score for one token string (resolved per tokenizer)."""

    token: str
    delta: float


@dataclass(frozen=True, slots=True)
class DiversityRule:
    """Penalise every distinct token already seen (once per id).

    ``scope``: ``user`` counts tokens from the user message on (the code),
    ``response`` only generated tokens (the paper's prose). ``mode``: ``additive``
    subtracts ``penalty``; ``multiplicative`` divides positive and multiplies negative
    logits by ``penalty`` (transformers' repetition penalty).
    """

    penalty: float = 1.5
    mode: str = "additive"
    scope: str = "user"


@dataclass(frozen=True, slots=True)
class StartRule:
    """Scores for the first three response positions (paper-spec §2.3, opt-in)."""

    agreement: str = "Okay"
    agreement_bonus: float = 10.0
    i_penalty: float = -3.0
    letter_bonus: float = 1.0
    punct_penalty: float = -1.0
    weight: float = 5.0
    second: TokenDelta = TokenDelta("!", 15.0)
    third: TokenDelta = TokenDelta("\n", -10.0)


@dataclass(frozen=True, slots=True)
class ExpertSpec:
    """A complete rule expert. ``None`` for a rule means the rule is off.

    ``check`` names a tokenizer assertion run when the expert is bound to a tokenizer
    (``llama2``: the paper's 15 token ids, EOS 2 and the tag ids, paper-spec §5.2); it
    validates and never changes scores, so it is not part of :meth:`spec_hash`.

    ``anchor``: ``prompt`` (``t`` and the diversity window fixed from the prompt) or
    ``last-tag`` (re-found from the last generated tags, as the paper's code does; see
    :mod:`harness.experts.anchors`). ``prompt`` leaves :meth:`spec_hash` as it was
    before the field existed.
    """

    name: str
    eos: EosRule | None = None
    uniform: tuple[TokenDelta, ...] | None = None
    diversity: DiversityRule | None = None
    start: StartRule | None = None
    description: str = ""
    source: str = "<builtin>"
    check: str | None = None
    anchor: str = "prompt"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        return d

    def spec_hash(self) -> str:
        """Content hash of the rules (name, description, source and check excluded)."""
        d = self.to_dict()
        d.pop("name"), d.pop("description"), d.pop("check")
        if d["anchor"] == "prompt":  # the default keeps the hashes (and content keys) made before it existed
            d.pop("anchor")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def token_fields(self) -> list[tuple[str, str]]:
        """``(key, token string)`` for every string the expert needs resolved, in order."""
        out = [(f"uniform[{i}].token", d.token) for i, d in enumerate(self.uniform or ())]
        if self.start:
            out += [("start.second.token", self.start.second.token), ("start.third.token", self.start.third.token)]
        return out

    def token_strings(self) -> list[str]:
        """Every token string the expert needs resolved."""
        return [token for _, token in self.token_fields()]


def _delta(item, where: str) -> TokenDelta:
    if not isinstance(item, dict) or set(item) != {"token", "delta"}:
        raise HarnessError(f"{where}: expected {{token: STRING, delta: NUMBER}}, got {item!r}")
    return TokenDelta(**typed_fields(TokenDelta, item, where, section=True))


#: One typed loader (:func:`harness.yaml_io.typed_fields`) for every section; token deltas need both keys.
_NESTED = {TokenDelta: _delta}


def expert_from_dict(raw: dict, source: str = "<dict>") -> ExpertSpec:
    """Build and validate an :class:`ExpertSpec` from parsed YAML (``include:`` resolved)."""
    if not isinstance(raw, dict):
        raise HarnessError(f"{source}: expected a mapping at the top level")
    if "include" in raw:
        raise HarnessError(f"{source}: include: only expert files may include (use load_expert)")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        for k in raw:  # an unknown key is the likelier mistake: report it first
            if k not in TOP_KEYS:
                raise HarnessError(f"{source}: {k}: unknown key{did_you_mean(k, TOP_KEYS)}; keys: {', '.join(TOP_KEYS)}")
        raise HarnessError(f"{source}: name: required, a non-empty string")
    raw = {k: v for k, v in raw.items() if not (k == "description" and v is None)}
    values = typed_fields(ExpertSpec, raw, source, skip=("source",), nested=_NESTED, list_keys=True)
    if values.get("check") is not None and values["check"] not in CHECKS:
        check = values["check"]
        raise HarnessError(f"{source}: check: {check!r} is not one of {', '.join(CHECKS)}{did_you_mean(check, CHECKS)}")
    spec = ExpertSpec(**values, source=source)
    _validate(spec, source)
    return spec


def _validate(spec: ExpertSpec, where: str) -> None:
    if spec.anchor not in ANCHORS:
        raise HarnessError(f"{where}: anchor: {spec.anchor!r} is not one of {', '.join(ANCHORS)}{did_you_mean(spec.anchor, ANCHORS)}")
    if spec.eos and spec.eos.ramp not in ("linear", "exponential"):
        raise HarnessError(f"{where}: eos.ramp: {spec.eos.ramp!r} is not linear or exponential")
    if spec.eos and spec.eos.until < 1:
        raise HarnessError(f"{where}: eos.until: must be a positive token count, got {spec.eos.until}")
    if spec.diversity:
        if spec.diversity.mode not in ("additive", "multiplicative"):
            raise HarnessError(f"{where}: diversity.mode: {spec.diversity.mode!r} is not additive or multiplicative")
        if spec.diversity.scope not in ("user", "response"):
            raise HarnessError(f"{where}: diversity.scope: {spec.diversity.scope!r} is not user or response")


def _read_yaml(path: Path) -> dict:
    return read_yaml_mapping(path, "expert file", allow_empty=False)


def _include_path(target, path: Path) -> Path:
    """``include:`` names a built-in preset (``paper``) or a file relative to ``path``."""
    if not isinstance(target, str) or not target:
        raise HarnessError(f"{path}: include: expected a preset name or a file path, got {target!r}")
    if not target.endswith((".yaml", ".yml")):
        preset = PRESETS / f"{target}.yaml"
        if not preset.is_file():
            names = sorted(p.stem for p in PRESETS.glob("*.yaml"))
            raise HarnessError(f"{path}: include: unknown preset {target!r}{did_you_mean(target, names)}; presets: {', '.join(names)}")
        return preset
    return (path.parent / target).resolve()


def _merged(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The file's keys over its ``include:`` chain: local keys win, mapping sections merge."""
    path = Path(path)
    if path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise HarnessError(f"{path}: include: cycle {cycle}")
    raw = _read_yaml(path)
    for k in raw:  # unknown keys are reported against the file that has them
        if k not in TOP_KEYS:
            raise HarnessError(f"{path}: {k}: unknown key{did_you_mean(k, TOP_KEYS)}; keys: {', '.join(TOP_KEYS)}")
    if "include" not in raw:
        return raw
    base = _merged(_include_path(raw["include"], path), (*chain, path.resolve()))
    base.pop("name", None), base.pop("description", None)
    out = dict(base)
    for k, v in raw.items():
        if k == "include":
            continue
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            out[k] = {**base[k], **v}  # section keys merge; `diversity: null` turns a rule off
        else:
            out[k] = v
    return out


def load_expert(path: Path) -> ExpertSpec:
    """Load an expert YAML file; errors name the file and key.

    ``include: paper`` (a preset name) or ``include: other.yaml`` (relative to this
    file) starts from another expert: this file's keys win, mapping sections
    (``eos``, ``diversity``, ``start``) merge key by key, ``uniform`` is replaced whole,
    and ``RULE: null`` turns a rule off.

    Example:
        >>> spec = load_expert(PRESETS / "paper-table8.yaml")
        >>> {d.token: d.delta for d in spec.uniform}["What"], spec.eos.until
        (-3.0, 250)
    """
    path = Path(path)
    return expert_from_dict(_merged(path), str(path))


def paper_expert(options: str = FULL_OPTIONS) -> ExpertSpec:
    """The paper's expert restricted to the rules named in an option string.

    Option strings are the paper code's (``eos-uniform-diversity``, ``uniform-diversity``,
    ``eos-uniform``, ``eos-diversity``, ``...-start``), parsed strictly: every part must
    be a rule or a modifier (``table8``: "What" = -3; ``fallback``: +100 EOS past 1024
    tokens; ``prose``: diversity over the response only; ``fixed``: ``anchor: prompt``,
    positions fixed from the prompt instead of re-found from the last generated tags).
    """
    parts = [p for p in options.split("-")]
    for p in parts:
        if p not in RULES + MODIFIERS:
            raise HarnessError(
                f"variant 'rules:{options}': unknown option {p!r}{did_you_mean(p, RULES + MODIFIERS)}; "
                f"rules: {', '.join(RULES)}; modifiers: {', '.join(MODIFIERS)}"
            )
    if len(set(parts)) != len(parts) or not set(parts) & set(RULES):
        raise HarnessError(f"variant 'rules:{options}': name each rule once and at least one of {', '.join(RULES)}")
    for modifier, rule in (("table8", "uniform"), ("fallback", "eos"), ("prose", "diversity")):
        if modifier in parts and rule not in parts:
            raise HarnessError(f"variant 'rules:{options}': modifier {modifier!r} changes rule {rule!r}, which is off")
    full = load_expert(PRESETS / "paper-start.yaml")  # paper.yaml plus the start rule
    spec = replace(
        full,
        name=f"rules:{options}",
        eos=full.eos if "eos" in parts else None,
        uniform=full.uniform if "uniform" in parts else None,
        diversity=full.diversity if "diversity" in parts else None,
        start=full.start if "start" in parts else None,
    )
    if "table8" in parts and spec.uniform:
        spec = replace(spec, uniform=tuple(TokenDelta(d.token, -3.0) if d.token == "What" else d for d in spec.uniform))
    if "fallback" in parts and spec.eos:
        spec = replace(spec, eos=replace(spec.eos, fallback_after=1024))
    if "prose" in parts and spec.diversity:
        spec = replace(spec, diversity=replace(spec.diversity, scope="response"))
    if "fixed" in parts:
        spec = replace(spec, anchor="prompt")
    return spec
