"""Shell completion from the plugin's own parser (no argcomplete): `kubectl studio completion
bash|zsh` prints a script for `kubectl-studio`, and `kubectl_complete-studio` answers kubectl's
plugin completion (kubectl >= 1.26 runs it for `kubectl studio <TAB>`, cobra's protocol: one
candidate per line, then `:<directive>`).

Candidates are subcommands, flags and `-o` choices from the parser; studio names and namespaces
are read from the API server when it answers within a second (best effort, nothing otherwise).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

NO_FILE_COMPLETION = 4  # cobra's ShellCompDirectiveNoFileComp
NAMED = {"start", "stop", "extend", "connect", "describe"}  # NAME is an existing studio

BASH = """# kubectl-studio completion (bash); also works in zsh after `autoload -U +X bashcompinit && bashcompinit`
_kubectl_studio() {
  local IFS=$'\\n' cur="${COMP_WORDS[COMP_CWORD]}"
  COMPREPLY=($(compgen -W "$(kubectl-studio __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null | grep -v '^:')" -- "$cur"))
}
complete -F _kubectl_studio kubectl-studio
"""
ZSH = "autoload -U +X bashcompinit && bashcompinit\n" + BASH


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(
        {
            o
            for a in parser._actions
            for o in a.option_strings
            if o.startswith("--") and a.help != argparse.SUPPRESS
        }
    )


def _choices(parser: argparse.ArgumentParser, flag: str) -> list[str] | None:
    for action in parser._actions:
        if flag in action.option_strings:
            return [str(c) for c in action.choices] if action.choices else []
    return None


def _positionals(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """The positional arguments among `words` (a flag's value, `-n team-a`, is not one)."""
    takes_value = {
        o
        for a in parser._actions
        for o in a.option_strings
        if a.nargs != 0 and not isinstance(a, argparse._HelpAction)
    }
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in takes_value
        else:
            out.append(word)
    return out


def candidates(
    parser: argparse.ArgumentParser,
    words: Sequence[str],
    lookup: Callable[[str, Sequence[str]], list[str]] | None = None,
) -> list[str]:
    """What may come next: `words` are the arguments so far, the last one being typed (maybe "")."""
    done, current = list(words[:-1]), (words[-1] if words else "")
    commands = _subparsers(parser)
    command = next((w for w in done if w in commands), None)
    active = commands[command] if command else parser
    if done and done[-1].startswith("-"):
        choices = _choices(active, done[-1])
        if choices:
            return [c for c in choices if c.startswith(current)]
        if done[-1] in ("-n", "--namespace") and lookup:
            return [n for n in lookup("namespaces", done) if n.startswith(current)]
        if choices is not None:
            return []  # a flag that takes a value we cannot guess
    if current.startswith("-"):
        return [f for f in _flags(active) if f.startswith(current)]
    if command is None:
        return [c for c in commands if c.startswith(current) and not c.startswith("_")]
    positional = _positionals(active, done[done.index(command) + 1 :])
    if command in NAMED and not positional and lookup:
        return [n for n in lookup("studios", done) if n.startswith(current)]
    return []


def _lookup(what: str, words: Sequence[str]) -> list[str]:
    """Names from the API server (1 s timeout), honouring --kubeconfig/--context/-n in `words`."""
    try:
        from kubernetes import client

        from .kubeclient import connect

        def value(*flags: str) -> str | None:
            for i, w in enumerate(words):
                for f in flags:
                    if w == f and i + 1 < len(words):
                        return words[i + 1]
                    if w.startswith(f + "="):
                        return w.split("=", 1)[1]
            return None

        target = connect(value("--kubeconfig"), value("--context"), value("-n", "--namespace"))
        try:
            if what == "namespaces":
                items = client.CoreV1Api(target.api).list_namespace(_request_timeout=1).items
                return [str(i.metadata.name) for i in items if i.metadata]
            found: Any = client.CustomObjectsApi(target.api).list_namespaced_custom_object(
                "studios.dev", "v1alpha1", target.namespace, "studios", _request_timeout=1
            )
            return [i["metadata"]["name"] for i in found.get("items") or []]
        finally:
            target.api.close()  # type: ignore[no-untyped-call]
    except Exception:  # completion never fails loudly
        return []


def complete_main(argv: Sequence[str] | None = None) -> int:
    """`kubectl-studio __complete WORDS...` and `kubectl_complete-studio WORDS...`."""
    from .main import build_parser

    words = list(sys.argv[1:] if argv is None else argv) or [""]
    for candidate in candidates(build_parser(), words, _lookup):
        print(candidate)
    print(f":{NO_FILE_COMPLETION}")
    return 0


def script(shell: str) -> str:
    return ZSH if shell == "zsh" else BASH
