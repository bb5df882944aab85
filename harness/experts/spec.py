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

import yaml

from harness.errors import HarnessError, did_you_mean

PRESETS = Path(__file__).parent / "presets"
RULES = ("eos", "uniform", "diversity", "start")
MODIFIERS = ("table8", "fallback", "prose")
FULL_OPTIONS = "eos-uniform-diversity"


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
    """A complete rule expert. ``None`` for a rule means the rule is off."""

    name: str
    eos: EosRule | None = None
    uniform: tuple[TokenDelta, ...] | None = None
    diversity: DiversityRule | None = None
    start: StartRule | None = None
    description: str = ""
    source: str = "<builtin>"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        return d

    def spec_hash(self) -> str:
        """Content hash of the rules (name and source excluded)."""
        d = self.to_dict()
        d.pop("name"), d.pop("description")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def token_strings(self) -> list[str]:
        """Every token string the expert needs resolved."""
        out = [d.token for d in self.uniform or ()]
        if self.start:
            out += [self.start.second.token, self.start.third.token]
        return out


def _section(raw: dict, key: str, cls, where: str):
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise HarnessError(f"{where}: {key}: expected a mapping, got {type(value).__name__}")
    fields = cls.__dataclass_fields__
    for k in value:
        if k not in fields:
            raise HarnessError(f"{where}: {key}.{k}: unknown key{did_you_mean(k, fields)}; keys: {', '.join(fields)}")
    kwargs = dict(value)
    for k in ("second", "third"):
        if k in kwargs and isinstance(kwargs[k], dict):
            kwargs[k] = _delta(kwargs[k], f"{where}: {key}.{k}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise HarnessError(f"{where}: {key}: {exc}") from None


def _delta(item, where: str) -> TokenDelta:
    if not isinstance(item, dict) or set(item) != {"token", "delta"}:
        raise HarnessError(f"{where}: expected {{token: STRING, delta: NUMBER}}, got {item!r}")
    if not isinstance(item["token"], str) or not isinstance(item["delta"], (int, float)):
        raise HarnessError(f"{where}: token must be a string and delta a number, got {item!r}")
    return TokenDelta(item["token"], float(item["delta"]))


def expert_from_dict(raw: dict, source: str = "<dict>") -> ExpertSpec:
    """Build and validate an :class:`ExpertSpec` from parsed YAML."""
    if not isinstance(raw, dict):
        raise HarnessError(f"{source}: expected a mapping at the top level")
    allowed = ("name", "description", "eos", "uniform", "diversity", "start")
    for k in raw:
        if k not in allowed:
            raise HarnessError(f"{source}: {k}: unknown key{did_you_mean(k, allowed)}; keys: {', '.join(allowed)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise HarnessError(f"{source}: name: required, a non-empty string")
    uniform = raw.get("uniform")
    if uniform is not None:
        if not isinstance(uniform, list):
            raise HarnessError(f"{source}: uniform: expected a list of {{token, delta}}")
        uniform = tuple(_delta(u, f"{source}: uniform[{i}]") for i, u in enumerate(uniform))
    spec = ExpertSpec(
        name=name,
        eos=_section(raw, "eos", EosRule, source),
        uniform=uniform,
        diversity=_section(raw, "diversity", DiversityRule, source),
        start=_section(raw, "start", StartRule, source),
        description=str(raw.get("description", "")),
        source=source,
    )
    _validate(spec, source)
    return spec


def _validate(spec: ExpertSpec, where: str) -> None:
    if spec.eos and spec.eos.ramp not in ("linear", "exponential"):
        raise HarnessError(f"{where}: eos.ramp: {spec.eos.ramp!r} is not linear or exponential")
    if spec.diversity:
        if spec.diversity.mode not in ("additive", "multiplicative"):
            raise HarnessError(f"{where}: diversity.mode: {spec.diversity.mode!r} is not additive or multiplicative")
        if spec.diversity.scope not in ("user", "response"):
            raise HarnessError(f"{where}: diversity.scope: {spec.diversity.scope!r} is not user or response")


def load_expert(path: Path) -> ExpertSpec:
    """Load an expert YAML file; errors name the file and key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise HarnessError(f"{path}: expert file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise HarnessError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    return expert_from_dict(raw, str(path))


def paper_expert(options: str = FULL_OPTIONS) -> ExpertSpec:
    """The paper's expert restricted to the rules named in an option string.

    Option strings are the paper code's (``eos-uniform-diversity``, ``uniform-diversity``,
    ``eos-uniform``, ``eos-diversity``, ``...-start``), parsed strictly: every part must
    be a rule or a modifier (``table8``: "What" = -3; ``fallback``: +100 EOS past 1024
    tokens; ``prose``: diversity over the response only).
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
    full = load_expert(PRESETS / "paper.yaml")
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
    return spec
