"""``harness submit`` and ``harness jobs {list,status,logs,stop}``: evaluations as Ray jobs.

``submit`` validates the run config here (bad input exits 2 and submits nothing), then
runs the same ``harness run`` on a Ray cluster through its job server, shipping the
working directory. ``jobs`` follows, lists and stops those jobs.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(); register(p.add_subparsers())
    >>> p.parse_args(["jobs", "logs", "raysubmit_1", "--follow"]).follow
    True
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from harness.cli_util import add_verb
from harness.distributed import jobs as J
from harness.errors import HarnessError

SUBMIT_EPILOG = """examples:
  # a loopback head for development, then the run as a job; --wait follows it to the end
  cluster/local-head.sh start
  harness submit --address http://127.0.0.1:8265 --tasks instructions-mini --limit 8 --wait

  # a YAML config (shipped with the working dir), a cloud head reached through `ray dashboard`
  export RAY_ADDRESS=http://127.0.0.1:8265
  harness submit configs/paper.yaml --replicas auto --store /mnt/shared/results

  # token auth (Ray's default for new clusters): the token stays in this shell
  export RAY_AUTH_TOKEN=$(ssh head ray get-auth-token)
  harness submit --tasks instructions-mini --wait

  # see what would be submitted
  harness submit --tasks instructions-mini --dry-run

The job runs `python -m harness.cli run ...` in the shipped working dir (default: the current
directory, without .git, .venv, results, .cache, __pycache__). It passes HARNESS_HOME, HF_HOME,
HF_*_OFFLINE, NLTK_DATA ... when set here; add more with --env. A relative --store is made
absolute for a head on this machine; for a remote head give a path on the head (or shared storage).
See docs/cluster.md."""

JOBS_EPILOG = """examples:
  harness jobs list
  harness jobs status raysubmit_Xa1b2c3
  harness jobs logs raysubmit_Xa1b2c3 --follow
  harness jobs stop raysubmit_Xa1b2c3

--address defaults to $RAY_API_SERVER_ADDRESS, an http:// $RAY_ADDRESS, or http://127.0.0.1:8265.
Token auth: export RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH, or RAY_AUTH_MODE=token for ~/.ray/auth_token)."""

ADDRESS_HELP = "the Ray job server (dashboard) URL, e.g. http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, " \
               "an http:// $RAY_ADDRESS, or http://127.0.0.1:8265)"
PATH_DESTS = ("prompts", "tasks_dirs", "experts")


def _job_argv(args: argparse.Namespace, actions: list, store: str, working_dir: Path,
              address: str) -> tuple[list[str], list[str]]:
    """``harness run`` arguments as the job must see them, and extra excludes (the store)."""
    argv: list[str] = []
    excludes: list[str] = []
    if args.config:
        rel, shipped = J.ship_path(args.config, working_dir)
        if not shipped:
            raise HarnessError(f"{args.config}: the config must lie inside the shipped working dir {working_dir} "
                               "(move it there or pass --working-dir)")
        argv.append(rel)
    for action in actions:
        if not action.option_strings or action.dest == "address":
            continue
        value = getattr(args, action.dest, None)
        if value is None or value is False:
            continue
        opt = action.option_strings[-1]
        if value is True:
            argv.append(opt)
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            v = str(v)
            if action.dest in PATH_DESTS:
                v, shipped = J.ship_path(v, working_dir)
                if not shipped:
                    print(f"harness: {opt} {v} is outside the working dir: it must exist at that path on the "
                          "cluster", file=sys.stderr)
            elif action.dest == "data" and "=" in v:
                task, path = v.split("=", 1)
                path, shipped = J.ship_path(path, working_dir)
                if not shipped:
                    print(f"harness: --data {task}={path} is outside the working dir: it must exist on the cluster",
                          file=sys.stderr)
                v = f"{task}={path}"
            argv += [opt, v]
    rel, inside = J.ship_path(store, working_dir)
    if inside:
        excludes.append("/" + rel)  # never upload earlier results
    if not Path(store).is_absolute():
        if J.is_loopback(address):
            store = str((Path.cwd() / store).resolve())
        else:
            print(f"harness: --store {store} is relative: the job writes it under its temporary working dir on the "
                  "head node; pass an absolute path there (or on shared storage)", file=sys.stderr)
    if "--store" in argv:
        argv[argv.index("--store") + 1] = store
    else:
        argv += ["--store", store]
    return argv, excludes


def cmd_submit(args: argparse.Namespace, actions: list) -> int:
    from harness.run.config import RunConfig

    run_dests = {a.dest for a in actions} - {"address", "config", "quiet", "help"}
    flags = {k: getattr(args, k) for k in run_dests}
    cfg = RunConfig.from_sources(args.config, flags)  # bad input: exit 2 before anything is sent
    address = J.resolve_address(args.address)
    working_dir = Path(args.working_dir or ".").expanduser().resolve()
    if not working_dir.is_dir():
        raise HarnessError(f"--working-dir {args.working_dir}: no such directory")
    argv, excludes = _job_argv(args, actions, cfg.store, working_dir, address)
    env = J.passthrough_env(args.env or [])
    home = env.get("HARNESS_HOME")
    if home:
        rel, inside = J.ship_path(home, working_dir)
        if inside:
            excludes.append("/" + rel)
    pip = []
    for spec in args.pip or []:
        p = Path(spec)
        pip += [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")] \
            if spec.endswith(".txt") and p.is_file() else [spec]
    runtime_env = J.build_runtime_env(working_dir, env, pip or None, excludes)
    entrypoint = shlex.join([args.python, "-m", "harness.cli", "run", *argv])
    tasks = ",".join(cfg.tasks) or Path(cfg.prompts or "prompts").name
    metadata = {"job_name": f"harness run {cfg.model} {tasks}"[:100], "harness": "run"}
    if args.dry_run:
        print(f"would submit to {address}:\n  entrypoint: {entrypoint}\n  runtime_env: {runtime_env}")
        return 0
    with J.job_server(address) as client:
        job_id = J.submit(client, entrypoint, runtime_env, submission_id=args.submission_id, metadata=metadata)
        a = f" --address {address}"
        print(f"submitted job {job_id} to {address}\n"
              f"  follow: harness jobs logs {job_id} --follow{a}\n"
              f"  status: harness jobs status {job_id}{a}\n"
              f"  stop:   harness jobs stop {job_id}{a}", flush=True)
        if not args.wait:
            return 0
        try:
            status = J.follow(client, job_id)
        except KeyboardInterrupt:
            print(f"\nharness: stopped following; job {job_id} keeps running (harness jobs stop {job_id}{a})",
                  file=sys.stderr)
            return 130
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def cmd_jobs_list(args: argparse.Namespace) -> int:
    with J.job_server(J.resolve_address(args.address)) as client:
        jobs = client.list_jobs()
    print(J.format_jobs(jobs) if jobs else "no jobs")
    return 0


def cmd_jobs_status(args: argparse.Namespace) -> int:
    with J.job_server(J.resolve_address(args.address)) as client:
        print(J.format_status(client.get_job_info(args.job_id)))
    return 0


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    with J.job_server(J.resolve_address(args.address)) as client:
        if not args.follow:
            sys.stdout.write(client.get_job_logs(args.job_id))
            return 0
        try:
            status = J.follow(client, args.job_id)
        except KeyboardInterrupt:
            return 130
    print(f"job {args.job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def cmd_jobs_stop(args: argparse.Namespace) -> int:
    with J.job_server(J.resolve_address(args.address)) as client:
        if not client.stop_job(args.job_id):
            print(f"job {args.job_id} was not running ({client.get_job_status(args.job_id)})")
            return 0
        status = J.wait_until_done(client, args.job_id, timeout_s=args.timeout, poll_s=0.5)
    print(f"job {args.job_id}: {status}" + ("" if status in J.TERMINAL else " (stop requested)"))
    return 0


def _jobs_help(args: argparse.Namespace) -> int:
    args.jobs_parser.print_help()
    return 2


def register(subparsers) -> None:
    """Add ``submit`` and ``jobs`` to the ``harness`` command line."""
    from harness.run.cli import add_run_flags

    p = add_verb(subparsers, "submit", "run an evaluation as a Ray job on a cluster", lambda a: 0,
                 description="Validate a run here, then run it as a Ray job (`harness run` on the cluster, joining "
                             "it), shipping the working directory.", epilog=SUBMIT_EPILOG)
    first = len(p._actions)
    add_run_flags(p)
    actions = p._actions[first:]
    for action in actions:
        if action.dest == "address":
            action.help = ADDRESS_HELP
    p.set_defaults(func=lambda a: cmd_submit(a, actions))
    p.add_argument("--wait", action="store_true", help="follow the job's logs until it ends; exit 0 if it succeeded")
    p.add_argument("--working-dir", dest="working_dir", help="directory shipped with the job (default: current)")
    p.add_argument("--env", action="append", metavar="NAME[=VALUE]", help="extra env var for the job (repeatable)")
    p.add_argument("--pip", action="append", metavar="SPEC", help="pip requirement (or requirements .txt) installed "
                   "for the job; default none: the cluster's python must have the harness's dependencies")
    p.add_argument("--python", default="python", help="python executable on the cluster (default: python)")
    p.add_argument("--submission-id", dest="submission_id", help="job id to use (default: Ray's raysubmit_...)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the entrypoint and runtime env only")

    j = add_verb(subparsers, "jobs", "list, follow and stop Ray jobs", _jobs_help, epilog=JOBS_EPILOG)
    j.set_defaults(jobs_parser=j)
    verbs = j.add_subparsers(dest="jobs_verb", metavar="ACTION")
    for name, help_text, func in (("list", "all jobs on the cluster", cmd_jobs_list),
                                  ("status", "status of one job", cmd_jobs_status),
                                  ("logs", "a job's logs (--follow: until it ends)", cmd_jobs_logs),
                                  ("stop", "stop a running job", cmd_jobs_stop)):
        v = add_verb(verbs, name, help_text, func, epilog=JOBS_EPILOG)
        v.add_argument("--address", help=ADDRESS_HELP)
        if name != "list":
            v.add_argument("job_id", metavar="ID", help="submission id (raysubmit_...)")
        if name == "logs":
            v.add_argument("--follow", "-f", action="store_true", help="stream until the job ends")
        if name == "stop":
            v.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it to stop (default 30)")
