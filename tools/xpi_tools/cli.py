"""The `xpi` command: operator and developer entry points.

xpi local up [--state-file F] [--no-build]   run the local stack until Ctrl-C
xpi local down [--state-file F]              stop a local stack started elsewhere
xpi demo                                     local stack + sample requests + results table
xpi compare --prompts F --models A,B         the same prompts through chosen models, compared
xpi emulator ...                             the commercial Bedrock emulator on its own
xpi classify ...                             classify text with the policy (see --help)
xpi iam lint [--template T]                  lint every IAM policy of the template (parliament)
xpi iam usage [--check] [--write-doc F]      actions each role used in the tests vs granted
"""

import argparse
import faulthandler
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from xpi_tools.checkout import project_root

if TYPE_CHECKING:
    from xpi_tools.local.stack import Endpoints

DEFAULT_STATE_FILE = Path(".xpi/local/stack.json")


def sam_build(root: Path, architecture: str) -> None:
    """`sam build` for the host's architecture; --cached makes an unchanged rebuild take seconds."""
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    bin_dir = str(Path(sys.executable).parent)  # the venv's python3.13 is what `sam build` must find
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    command = [
        str(Path(bin_dir) / "sam"),
        "build",
        "--cached",
        "--parameter-overrides",
        f"Architecture={architecture}",
    ]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"xpi: sam build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def shell_exports(endpoints: "Endpoints") -> list[str]:
    """The lines a user pastes into a shell to reach the stack; the README's AWS CLI recipe starts
    with them. XPI_AWS is for `aws --endpoint-url`: the AWS CLI's SQS commands ignore AWS_ENDPOINT_URL."""
    queue_url = endpoints.outputs["RequestsQueueUrl"]
    client_env = {name: shlex.quote(value) for name, value in endpoints.client_env().items()}
    client_env["AWS_ENDPOINT_URL"] = '"$XPI_AWS"'  # after the line that sets it: one source for the URL
    return [
        f"export XPI_AWS={shlex.quote(endpoints.aws)} XPI_REQUESTS_QUEUE_URL={shlex.quote(queue_url)}",
        "export " + " ".join(f"{name}={value}" for name, value in client_env.items()),
    ]


def _wait_for_parent_exit(parent: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def local_up(args: argparse.Namespace) -> int:
    from xpi_tools.local.faults import keep_large_allocations_mapped, limit_malloc_arenas
    from xpi_tools.local.stack import LOCAL_PARAMETERS, LocalStack

    parent = os.getppid()  # before anything slow: the parent may die while the stack builds or deploys
    limit_malloc_arenas()  # before the stack's threads: see its docstring (the soak's memory)
    keep_large_allocations_mapped()  # before the deploy frees its first large buffer (the same)
    root = project_root()
    if not args.no_build:
        started = time.perf_counter()
        sam_build(root, LOCAL_PARAMETERS["Architecture"])
        print(f"sam build: {time.perf_counter() - started:.1f} s", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C stops it even when started from a shell that ignores SIGINT for its background jobs (a
    # non-interactive `cmd &`): Python keeps an inherited SIG_IGN, and the stack would run on.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # `kill -USR1 <pid>` prints every thread's stack on stderr: what a stack that will not stop waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if args.exit_with_parent:
        # Watch from the start: a parent that dies while the stack deploys must take it along too.
        threading.Thread(target=_wait_for_parent_exit, args=(parent, stop), daemon=True).start()
    stack = LocalStack(
        root,
        region=args.region,
        stack_name=args.stack_name,
        commercial_region=args.commercial_region,
        commercial_credentials=args.commercial_credentials,
        trust_ca=Path(args.trust_ca).resolve() if args.trust_ca else None,
        parameters=dict(item.split("=", 1) for item in args.parameter),
    )
    try:
        endpoints = stack.start()
        state_file = Path(args.state_file)
        print(
            f"xpi local stack up in {stack.timings['up_s']:.1f} s (deploy {stack.timings['deploy_s']:.1f} s)"
        )
        print(f"  AWS API (moto, {endpoints.region}):   {endpoints.aws}")
        print(f"  commercial Bedrock (emulator, {endpoints.bedrock_region}): {endpoints.bedrock}")
        print(f"  requests queue:  {endpoints.outputs['RequestsQueueUrl']}")
        if endpoints.dashboard:
            print(f"  API (SigV4):     {endpoints.api}\n  dashboard:       {endpoints.dashboard}")
        print(f"  state file:      {state_file}")
        print('  for the AWS CLI (aws --endpoint-url "$XPI_AWS" ...) and boto3, paste into your shell:')
        for line in shell_exports(endpoints):
            print(f"    {line}")
        print("Ctrl-C stops it.", flush=True)
        stack.write_state(state_file)  # last: whoever waits for the state file also has the lines above
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        Path(args.state_file).unlink(missing_ok=True)
        print("xpi local stack stopped.", flush=True)
    return 0


def local_down(args: argparse.Namespace) -> int:
    state_file = Path(args.state_file)
    if not state_file.exists():
        print(f"xpi: no local stack state at {state_file}")
        return 0
    pid = json.loads(state_file.read_text())["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        state_file.unlink(missing_ok=True)
        return 0
    for _ in range(100):
        if not state_file.exists():
            return 0
        time.sleep(0.1)
    print(f"xpi: the local stack (pid {pid}) did not stop in 10 s")
    return 1


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911, PLR0915 - one return per delegated subcommand
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Subcommands with their own parsers get the rest of the line unchanged.
    if arguments[:1] == ["emulator"]:
        from xpi_tools.emulator.__main__ import main as emulator_main

        return emulator_main(arguments[1:])
    if arguments[:1] == ["classify"]:
        from xpi_tools.classify_cli import main as classify_main

        return classify_main(arguments[1:])
    if arguments[:1] == ["dashboard"]:  # the dashboard's local signing proxy
        from xpi_tools.dashboard.server import main as dashboard_main

        return dashboard_main(arguments[1:])
    if arguments[:1] == ["batch"]:
        from xpi_tools.batch_cli import main as batch_main

        return batch_main(arguments[1:])
    if arguments[:1] == ["audit"]:
        from xpi_tools.audit_cli import main as audit_main

        return audit_main(arguments[1:])
    if arguments[:1] == ["regions"]:
        from xpi_tools.regions_cli import main as regions_main

        return regions_main(arguments[1:])
    if arguments[:1] == ["compliance"]:
        from xpi_tools.compliance_cli import main as compliance_main

        return compliance_main(arguments[1:])
    if arguments[:2] == ["iam", "usage"]:
        from xpi_tools.iam.usage import main as usage_main

        return usage_main(arguments[2:])
    if arguments[:1] == ["iam"]:
        from xpi_tools.iam.lint import main as iam_main

        return iam_main(arguments[1:])
    if arguments[:1] == ["compare"]:
        from xpi_tools.compare import main as compare_main

        return compare_main(arguments[1:])
    if arguments[:1] == ["demo"]:
        from xpi_tools.demo import main as demo_main

        return demo_main(arguments[1:])

    parser = argparse.ArgumentParser(
        prog="xpi", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("local", help="the offline local stack").add_subparsers(
        dest="action", required=True
    )
    up = local.add_parser("up", help="start the local stack and keep it running until Ctrl-C")
    up.add_argument("--state-file", default=str(DEFAULT_STATE_FILE))
    up.add_argument("--no-build", action="store_true", help="deploy the existing .aws-sam/build")
    up.add_argument("--exit-with-parent", action="store_true", help="stop when the parent process ends")
    up.add_argument(
        "--commercial-credentials",
        choices=["secret", "api-key", "roles-anywhere"],
        default="secret",
        help="an access key in the credentials secret (default), a long-term Bedrock API key, "
        "or IAM Roles Anywhere (no stored key)",
    )
    # A second stack beside the first plays the other region (docs/local-stack.md, "Two regions"): its own
    # region and stack name, so its functions, logs and call log never mix with the first's.
    up.add_argument("--region", default="us-gov-west-1", choices=["us-gov-west-1", "us-gov-east-1"])
    up.add_argument("--stack-name", default="xpi-local")
    up.add_argument("--commercial-region", default="us-east-1", help="the emulator's commercial region")
    up.add_argument(
        "--trust-ca",
        default="",
        help="a CA certificate (PEM) the functions trust for https endpoints instead of the public CAs "
        "(the egress path tests' links, xpi_tools.local.netns)",
    )
    up.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter over the local stack's own (repeatable), e.g. BatchJobMinLines=5",
    )
    up.set_defaults(run=local_up)
    down = local.add_parser("down", help="stop a local stack started by `xpi local up`")
    down.add_argument("--state-file", default=str(DEFAULT_STATE_FILE))
    down.set_defaults(run=local_down)
    commands.add_parser("emulator", help="the commercial Bedrock emulator (xpi emulator --help)")
    commands.add_parser("classify", help="classify text with the policy (xpi classify --help)")
    commands.add_parser("dashboard", help="the dashboard's local signing proxy (xpi dashboard --help)")
    commands.add_parser("batch", help="batch progress: xpi batch status ID (xpi batch --help)")
    commands.add_parser("audit", help="tamper-evident lineage: xpi audit verify (xpi audit --help)")
    commands.add_parser("regions", help="two regions: xpi regions takeover --region X (--help)")
    commands.add_parser("compliance", help="the compliance report: xpi compliance report (--help)")
    commands.add_parser("iam", help="lint the template's IAM policies: xpi iam lint (xpi iam --help)")
    commands.add_parser("compare", help="the same prompts through chosen models: xpi compare --help")
    commands.add_parser("demo", help="start the local stack, send sample requests, print results, stop")
    args = parser.parse_args(arguments)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
