"""A fork server that runs ``harness`` commands with the heavy imports already done.

Every ``harness ...`` line of the docs would otherwise start a fresh interpreter and import
torch, transformers, DeepSpeed and Ray (5-20 s each on a loaded 2-core machine). The docs
test starts this server once; the ``harness`` executable it puts on ``PATH`` (``SHIM``
below) hands its argv, cwd, environment and its three standard file descriptors to the
server over a Unix socket. The server forks; the child takes over those descriptors,
``chdir``s, replaces its environment and runs the real ``harness.cli.main(argv)``, then
sends the exit code back. So the command runs the same code as ``.venv/bin/harness``,
with the same exit code, stdout and stderr, only without the import time.

Without ``DOCS_TEST_FORKSERVER`` in the environment the shim simply runs
``python -m harness.cli`` (set ``DOCS_TEST_NO_FORKSERVER=1`` to force that for a test run).

Example (the shim's message format):
    >>> msg = encode_request(["query", "select 1"], "/tmp", {"A": "1"})
    >>> int.from_bytes(msg[:4], "big") == len(msg) - 4, json.loads(msg[4:])["argv"]
    (True, ['query', 'select 1'])
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import struct
import sys
import traceback

#: preloaded in the server before it forks: imports only (nothing here may start threads or a Ray
#: cluster). ``transformers`` loads its classes lazily, so the ones a run uses are named too.
PRELOAD = ("torch", "transformers", "harness.cli", "harness.run.runner", "harness.engines.hf",
           "harness.models", "harness.store", "harness.results", "harness.metrics.summary",
           "ray", "scipy.stats", "accelerate", "safetensors.torch", "tokenizers")
TRANSFORMERS_CLASSES = ("AutoModelForCausalLM", "AutoTokenizer", "AutoConfig", "LlamaForCausalLM",
                        "PreTrainedTokenizerFast", "GenerationConfig", "LogitsProcessor")

SHIM = '''#!{python} -IS
# harness, as seen by the docs test: run by the fork server when there is one (tests/docs/forkserver.py)
import os, socket, struct, sys, json
path = os.environ.get("DOCS_TEST_FORKSERVER")
if not path:
    os.execv({python!r}, [{python!r}, "-m", "harness.cli", *sys.argv[1:]])
body = json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
socket.send_fds(s, [struct.pack(">I", len(body)) + body], [0, 1, 2])
data = b""
while True:
    chunk = s.recv(64)
    if not chunk:
        break
    data += chunk
sys.exit(int(data) if data.strip() else 1)
'''


def encode_request(argv: list[str], cwd: str, env: dict[str, str]) -> bytes:
    """The bytes the shim sends: a 4-byte big-endian length, then JSON."""
    body = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode()
    return struct.pack(">I", len(body)) + body


def write_shim(path: str) -> None:
    """Write the ``harness`` shim (an executable Python script) to ``path``."""
    with open(path, "w") as f:
        f.write(SHIM.format(python=sys.executable))
    os.chmod(path, 0o755)


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    if len(msg) < 4:
        raise ConnectionError("short request")
    (length,) = struct.unpack(">I", msg[:4])
    body = msg[4:]
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            raise ConnectionError("truncated request")
        body += chunk
    return json.loads(body), fds


def _run_python(code: str, name: str) -> None:
    """Run a Python example: ``>>>`` sessions as a doctest, anything else as a script."""
    if any(line.lstrip().startswith(">>>") for line in code.splitlines()):
        import doctest

        test = doctest.DocTestParser().get_doctest(code, {"__name__": "__main__"}, name, name, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test, out=sys.stderr.write)
        if runner.failures:
            raise SystemExit(1)
    else:
        exec(compile(code, name, "exec"), {"__name__": "__main__"})


def request(path: str, payload: dict, fds: tuple[int, int, int]) -> int:
    """Send ``payload`` (argv/python, cwd, env) with ``fds`` as stdin/stdout/stderr; return the exit code."""
    body = json.dumps(payload).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        socket.send_fds(s, [struct.pack(">I", len(body)) + body], list(fds))
        data = b""
        while chunk := s.recv(64):
            data += chunk
    return int(data) if data.strip() else 1


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the command, run it, report the exit code, exit."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    code = 1
    try:
        if "python" in request:  # a docs Python example, run as a script named after its block
            sys.argv = ["-"]
            _run_python(request["python"], request.get("name", "<docs>"))
            code = 0
        else:
            from harness.cli import main

            sys.argv = ["harness", *request["argv"]]
            code = main(request["argv"])
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the real entry point would print the traceback too
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()  # Ray's shutdown and friends, as at a normal interpreter exit
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        try:
            conn.sendall(str(int(code or 0)).encode())
        finally:
            os._exit(int(code or 0))


def serve(path: str) -> None:
    """Preload, listen on ``path``, print ``ready`` and fork one child per request.

    Returns when the process that started it has gone (checked every 5 s).
    """
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:  # optional extras: the command imports what it needs itself
            pass
    import transformers

    for cls in TRANSFORMERS_CLASSES:
        getattr(transformers, cls, None)
    from harness.cli import build_parser

    build_parser()  # imports every room's CLI module
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(16)
    srv.settimeout(5.0)
    parent = os.getppid()
    print("ready", flush=True)
    while True:
        try:
            conn, _ = srv.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the test process is gone: do not outlive it
                return
            continue
        conn.settimeout(None)
        try:
            request, fds = _recv_request(conn)
        except Exception:  # noqa: BLE001 - a broken client must not stop the server
            conn.close()
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            srv.close()
            _child(conn, request, fds)
        for fd in fds:
            os.close(fd)
        conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "--python":  # without a server: run a Python example from stdin
        _run_python(sys.stdin.read(), sys.argv[2])
    else:
        serve(sys.argv[1])
