"""`kubectl studio` (console script `kubectl-studio`): drive studios from the command line.

    kubectl studio ls [-A] [-o wide]
    kubectl studio create NAME --image IMG --env-name CE [--port N] [--no-start] [--private]
                               [--hours N | --keep-running] [--mount LINK ...] [--label k=v ...]
    kubectl studio start|stop NAME
    kubectl studio extend NAME HOURS [--no-wait]
    kubectl studio connect NAME [--local-port N]
    kubectl studio describe NAME
    kubectl studio completion bash|zsh

Exit codes (like kubectl): 0 success, 1 any error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

# Only what --help needs is imported here: the Kubernetes client and the models load on use, so
# `kubectl studio --help` answers in well under a second.
from .errors import EXIT_USAGE, CliError, UsageError

PROG = "kubectl studio"


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 1 (argparse's default is 2, our API-error code)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


def _connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the subcommand (`kubectl studio -n x ls` and `... ls -n x`);
    # the subcommand's copies default to SUPPRESS so they never overwrite the top-level values.
    default: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    group.add_argument("--context", default=default, help="kubeconfig context (default: the current one)")
    group.add_argument("-n", "--namespace", default=default, help="namespace (default: the context's)")


def _create_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME")
    p.add_argument("--image", required=True, help="container image of the tool")
    p.add_argument("--env-name", required=True, metavar="CE", help="the ComputeEnvironment to inherit from")
    p.add_argument("--port", type=int, help="the tool's port (default 8080)")
    p.add_argument("--no-start", action="store_true", help='"Add only": create with state Stopped')
    p.add_argument("--private", action="store_true", help="only you may connect")
    life = p.add_mutually_exclusive_group()
    life.add_argument("--hours", type=int, help="stop each session after N hours (1..120; default 8)")
    life.add_argument("--keep-running", action="store_true", help="sessions never expire")
    p.add_argument(
        "--mount", action="append", default=[], metavar="LINK", help="mount a data link (repeatable)"
    )
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="resource label (repeatable)")
    p.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="environment variable (repeatable)"
    )
    p.add_argument("--display-name", help="free-text display name")
    p.add_argument("--dry-run", action="store_true", help="print the manifest instead of creating it")
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait until the studio runs (or, with --no-start, is seen); exit 1 with the reason if it stalls",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits (default 300)")
    p.add_argument("-o", "--output", choices=["text", "name", "json", "yaml"], default="text")


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kubectl-studio {version()}")
    _connection_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        _connection_options(p, top=False)
        return p

    p = add("ls", "list studios: name, phase, ready, reason, expiry, private, creator")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list studios in every namespace")
    p.add_argument(
        "-o",
        "--output",
        choices=["table", "wide", "name", "json", "yaml"],
        default="table",
        help="wide adds IMAGE, ENVIRONMENT and the MESSAGE that explains the state",
    )

    _create_arguments(add("create", "create a studio (started unless --no-start)"))

    p = add("start", "start a new session (also after an expiry or a failure)")
    p.add_argument("name", metavar="NAME")

    p = add("stop", "stop the session (the studio and its volumes stay)")
    p.add_argument("name", metavar="NAME")

    p = add("extend", "set the current session's total lifespan to HOURS (1..120)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("hours", metavar="HOURS")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the operator's new expiry")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the new expiry")

    p = add("connect", "port-forward to the studio and print the local URL")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--local-port", type=int, help="local port (default: the studio's port if free)")
    p.add_argument("--address", default="127.0.0.1", help="local address to listen on")

    p = add("describe", "effective env, labels and mounts, and where each comes from")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")

    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh)")
    p.add_argument("shell", choices=["bash", "zsh"])
    return parser


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("studio-operator")
    except PackageNotFoundError:  # the krew zipapp carries no distribution metadata
        from .. import __version__

        return __version__


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "completion":
        from .completion import script

        out.write(script(args.shell))
        return 0
    from . import commands
    from .kubeclient import session

    if args.command == "create" and args.dry_run:
        manifest = commands.build_studio(args.name, args.namespace or "default", **_create_options(args))
        return commands.cmd_create(None, manifest, True, args.output, out)  # type: ignore[arg-type]
    if args.command == "extend":
        hours = commands.parse_hours(args.hours)
    with session(args.kubeconfig, args.context, args.namespace) as target:
        match args.command:
            case "ls":
                return commands.cmd_ls(target, args.all_namespaces, args.output, out)
            case "create":
                manifest = commands.build_studio(args.name, target.namespace, **_create_options(args))
                return commands.cmd_create(
                    target, manifest, False, args.output, out, wait=args.timeout if args.wait else None
                )
            case "start":
                return commands.cmd_start(target, args.name, out)
            case "stop":
                return commands.cmd_stop(target, args.name, out)
            case "extend":
                return commands.cmd_extend(target, args.name, hours, not args.no_wait, args.timeout, out)
            case "connect":
                return commands.cmd_connect(target, args.name, args.local_port, args.address, out)
            case "describe":
                return commands.cmd_describe(target, args.name, args.output, out)
    raise UsageError(f"unknown command {args.command!r}")


def _create_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "image": args.image,
        "environment": args.env_name,
        "port": args.port,
        "start": not args.no_start,
        "private": args.private,
        "hours": args.hours,
        "keep_running": args.keep_running,
        "mounts": args.mount,
        "labels": args.label,
        "variables": args.var,
        "display_name": args.display_name,
    }


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["__complete"]:
        from .completion import complete_main

        return complete_main(words[1:])
    try:
        args = build_parser().parse_args(words)
        return run(args, stream)
    except CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["EXIT_USAGE", "build_parser", "main"]
