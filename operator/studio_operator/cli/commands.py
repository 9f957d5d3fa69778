"""What each subcommand does. Pure helpers (manifest, patches, port-forward argv) come first."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Required, TextIO, TypedDict, Unpack

import yaml

from ..api.common import (
    API_VERSION,
    LABEL_KEY,
    LABEL_VALUE,
    RESTART_ANNOTATION,
    SESSION_LIFESPAN_ANNOTATION,
)
from ..api.kinds import MAX_LIFESPAN_HOURS, MIN_LIFESPAN_HOURS
from ..resources.lifespan import format_time, parse_time
from ..resources.merge import is_reserved_label
from . import describe as describe_mod
from . import format as fmt
from .errors import CliError, NotFound, UsageError
from .kubeclient import Studios, Target

ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# ---------------------------------------------------------------- pure helpers


def parse_hours(text: str) -> int:
    if not text.strip().isdigit():
        raise UsageError(
            f"HOURS must be a whole number of hours ({MIN_LIFESPAN_HOURS}..{MAX_LIFESPAN_HOURS}), got {text!r}"
        )
    hours = int(text)
    if not MIN_LIFESPAN_HOURS <= hours <= MAX_LIFESPAN_HOURS:
        raise UsageError(f"HOURS must be between {MIN_LIFESPAN_HOURS} and {MAX_LIFESPAN_HOURS}, got {hours}")
    return hours


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.match(LABEL_KEY, key) or len(key.split("/")[-1]) > 63:
            raise UsageError(f"--label expects KEY=VALUE with a valid label key, got {pair!r}")
        if not re.match(LABEL_VALUE, value) or len(value) > 63:
            raise UsageError(f"--label {key}: {value!r} is not a valid label value (63 characters at most)")
        if is_reserved_label(key):
            raise UsageError(
                f"--label {key}: keys under studios.dev/ and app.kubernetes.io/managed-by are reserved"
            )
        labels[key] = value
    return labels


def parse_vars(pairs: Sequence[str]) -> list[dict[str, str]]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not ENV_NAME.match(name):
            raise UsageError(f"--var expects NAME=VALUE with a valid variable name, got {pair!r}")
        out[name] = value
    return [{"name": k, "value": v} for k, v in out.items()]


class StudioOptions(TypedDict, total=False):
    """What `kubectl studio create` sets besides the name (see `build_studio`)."""

    image: Required[str]
    environment: Required[str]
    port: int | None
    start: bool
    private: bool
    hours: int | None
    keep_running: bool
    mounts: Sequence[str]
    labels: Sequence[str]
    variables: Sequence[str]
    display_name: str | None


def _check_create(name: str, options: StudioOptions) -> None:
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        raise UsageError(f"{name!r} is not a valid studio name (lowercase letters, digits, '-' and '.')")
    if not DNS_SUBDOMAIN.match(options["environment"]):
        raise UsageError(f"--env-name {options['environment']!r} is not a valid ComputeEnvironment name")
    port, hours = options.get("port"), options.get("hours")
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--port must be 1..65535, got {port}")
    if hours is not None and options.get("keep_running"):
        raise UsageError("--hours and --keep-running exclude each other")
    if hours is not None and not MIN_LIFESPAN_HOURS <= hours <= MAX_LIFESPAN_HOURS:
        raise UsageError(
            f"--hours must be between {MIN_LIFESPAN_HOURS} and {MAX_LIFESPAN_HOURS}, got {hours}"
        )


def _lifespan(options: StudioOptions) -> dict[str, Any] | None:
    if options.get("keep_running"):
        return {"policy": "KeepRunning"}
    hours = options.get("hours")
    return {"policy": "StopAfter", "hours": hours} if hours is not None else None


def build_studio(name: str, namespace: str, **options: Unpack[StudioOptions]) -> dict[str, Any]:
    """The Studio manifest `create` sends (also what `create --dry-run` prints)."""
    _check_create(name, options)
    template: dict[str, Any] = {"image": options["image"]}
    if options.get("port") is not None:
        template["port"] = options["port"]
    optional = {
        "displayName": options.get("display_name") or None,
        "env": parse_vars(options.get("variables", ())) or None,
        "resourceLabels": parse_labels(options.get("labels", ())) or None,
        "private": True if options.get("private") else None,
        "lifespan": _lifespan(options),
        "mounts": [{"dataLink": m} for m in dict.fromkeys(options.get("mounts", ()))] or None,
    }
    spec: dict[str, Any] = {
        "computeEnvironment": options["environment"],
        "template": template,
        **{k: v for k, v in optional.items() if v is not None},
        "state": "Running" if options.get("start", True) else "Stopped",
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "Studio",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def is_held(studio: dict[str, Any]) -> bool:
    """A session that ended on its own (expiry, failure) waits for a new start request."""
    return (studio.get("status") or {}).get("heldRestart") is not None


def start_patch(studio: dict[str, Any], now: datetime) -> dict[str, Any]:
    patch: dict[str, Any] = {"spec": {"state": "Running"}}
    if is_held(studio) and (studio.get("spec") or {}).get("state", "Running") == "Running":
        patch["metadata"] = {"annotations": {RESTART_ANNOTATION: format_time(now)}}
    return patch


def port_forward_argv(
    kubectl: str,
    pod: str,
    namespace: str,
    local_port: int,
    remote_port: int,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    address: str = "127.0.0.1",
) -> list[str]:
    argv = [kubectl]
    if kubeconfig:
        argv.append(f"--kubeconfig={kubeconfig}")
    if context:
        argv.append(f"--context={context}")
    argv += [
        "port-forward",
        "-n",
        namespace,
        f"--address={address}",
        f"pod/{pod}",
        f"{local_port}:{remote_port}",
    ]
    return argv


def find_kubectl() -> str:
    """$KUBECTL, then the kubectl that runs this plugin ($KUBECTL_PLUGINS_CALLER), then PATH."""
    for candidate in (
        os.environ.get("KUBECTL"),
        os.environ.get("KUBECTL_PLUGINS_CALLER"),
        shutil.which("kubectl"),
    ):
        if candidate:
            return candidate
    raise CliError("kubectl not found: install it or set $KUBECTL")


def free_port(preferred: int | None = None) -> int:
    """`preferred` if it is free on 127.0.0.1, else any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise CliError("no free local port")


# ---------------------------------------------------------------- commands


def cmd_ls(target: Target, all_namespaces: bool, output: str, out: TextIO) -> int:
    studios = Studios(target).list(None if all_namespaces else target.namespace)
    if output == "name":
        for s in studios:
            out.write(f"studio/{s['metadata']['name']}\n")
        return 0
    if output in ("json", "yaml"):
        doc = {"apiVersion": "v1", "kind": "List", "items": studios}
        out.write(_dump(doc, output))
        return 0
    if not studios:
        where = "any namespace" if all_namespaces else f"namespace {target.namespace}"
        print(f"No studios found in {where}.", file=sys.stderr)
        return 0
    table = fmt.ls_table(studios, fmt.now_utc(), all_namespaces=all_namespaces, wide=output == "wide")
    out.write(table + "\n")
    return 0


def cmd_create(
    target: Target,
    manifest: dict[str, Any],
    dry_run: bool,
    output: str,
    out: TextIO,
    *,
    wait: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    name = manifest["metadata"]["name"]
    if dry_run:
        out.write(
            f"studio/{name}\n"
            if output == "name"
            else _dump(manifest, "json" if output == "json" else "yaml")
        )
        return 0
    studios = Studios(target)
    created = studios.create(manifest)
    running = manifest["spec"]["state"] == "Running"
    if wait is not None:
        created = wait_settled(studios, name, target.namespace, running, wait, sleep)
    if output in ("json", "yaml"):
        out.write(_dump(created, output))
    elif output == "name":
        out.write(f"studio/{name}\n")
    elif wait is not None:
        out.write(f'studio "{name}" {fmt.phase(created)} in namespace "{target.namespace}"\n')
    else:
        state = "starting" if running else "added (not started)"
        out.write(f'studio "{name}" {state} in namespace "{target.namespace}"\n')
    return 0


def settled(studio: dict[str, Any], running: bool) -> tuple[bool, str | None]:
    """(done, problem): the studio runs (or, not started, was seen by the operator), or it cannot
    get there without someone fixing something (Stalled, Errored) and problem says why."""
    status = studio.get("status") or {}
    generation = (studio.get("metadata") or {}).get("generation")
    if not status or (generation is not None and status.get("observedGeneration", generation) < generation):
        return False, None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Stalled" and cond.get("status") == "True":
            return True, f"{cond.get('reason', 'Stalled')}: {cond.get('message', '')}".rstrip(": ")
    phase = status.get("phase")
    if phase == "Errored":
        return (
            True,
            f"{status.get('reason') or status.get('stopReason') or 'Errored'}: {status.get('message', '')}",
        )
    if running:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        return (phase == "Running" and ready) or (phase == "Running" and not status.get("conditions")), None
    return phase is not None, None


def wait_settled(
    studios: Studios, name: str, namespace: str, running: bool, timeout: float, sleep: Callable[[float], None]
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = studios.get(name, namespace)
        done, problem = settled(current, running)
        if problem:
            raise CliError(f'studio "{name}" cannot start: {problem}')
        if done:
            return current
        if time.monotonic() >= deadline:
            phase = fmt.phase(current)
            raise CliError(
                f'studio "{name}" is still {phase} after {timeout:g}s (kubectl describe studio {name})'
            )
        sleep(1.0)


def cmd_start(target: Target, name: str, out: TextIO) -> int:
    studios = Studios(target)
    studio = studios.get(name, target.namespace)
    studios.patch(name, target.namespace, start_patch(studio, fmt.now_utc()))
    out.write(f'studio "{name}" starting\n')
    return 0


def cmd_stop(target: Target, name: str, out: TextIO) -> int:
    studios = Studios(target)
    studios.patch(name, target.namespace, {"spec": {"state": "Stopped"}})
    out.write(f'studio "{name}" stopping\n')
    return 0


def check_extend(studio: dict[str, Any], hours: int, now: datetime) -> None:
    """Refuse what the operator would ignore or what would stop the session at once."""
    name = studio["metadata"]["name"]
    status = studio.get("status") or {}
    session = status.get("session") or {}
    if (studio.get("spec") or {}).get("state") == "Stopped" or not session.get("startedAt"):
        raise UsageError(
            f'studio "{name}" has no running session: extend applies to the current session only '
            f"(start it with `kubectl studio start {name}`)"
        )
    for cond in status.get("conditions") or []:
        if cond.get("type") == "LifespanLocked" and cond.get("status") == "True":
            raise UsageError(
                f'the workspace locks the lifespan of studio "{name}": {cond.get("message", "")}'
            )
    started = parse_time(session.get("startedAt"))
    if started is not None:
        from datetime import timedelta

        end = started + timedelta(hours=hours)
        if end <= now:
            raise UsageError(
                f"the session started at {session['startedAt']}: a lifespan of {hours} hours ends "
                f"at {format_time(end)}, in the past; HOURS is the session's total lifespan, pick a larger value"
            )


def cmd_extend(
    target: Target,
    name: str,
    hours: int,
    wait: bool,
    timeout: float,
    out: TextIO,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    studios = Studios(target)
    studio = studios.get(name, target.namespace)
    check_extend(studio, hours, fmt.now_utc())
    patched = studios.patch(
        name, target.namespace, {"metadata": {"annotations": {SESSION_LIFESPAN_ANNOTATION: str(hours)}}}
    )
    if not wait:
        out.write(f'studio "{name}": session lifespan set to {hours} hours\n')
        return 0
    deadline = time.monotonic() + timeout
    current = patched
    while True:
        session = (current.get("status") or {}).get("session") or {}
        if session.get("lifespanSource") == "annotation" and session.get("lifespanHours") == hours:
            expires = session.get("expiresAt")
            when = parse_time(expires)
            rel = f" ({fmt.relative(when, fmt.now_utc())})" if when else ""
            out.write(f'studio "{name}": session lifespan {hours} hours, expires at {expires}{rel}\n')
            return 0
        if time.monotonic() >= deadline:
            raise CliError(
                f'studio "{name}": lifespan set to {hours} hours, but the operator has not updated the '
                f"status within {timeout:g}s (is it running?)",
            )
        sleep(0.5)
        current = studios.get(name, target.namespace)


def connect_target(studio: dict[str, Any]) -> tuple[str, int]:
    """(pod, port) of a running session, else a UsageError saying how to start it."""
    name = studio["metadata"]["name"]
    status = studio.get("status") or {}
    phase = status.get("phase")
    pod = (status.get("session") or {}).get("podName")
    port = (status.get("connect") or {}).get("port") or (
        (studio.get("spec") or {}).get("template") or {}
    ).get("port", 8080)
    if phase != "Running" or not pod:
        raise UsageError(
            f'studio "{name}" is not running (phase {phase or "unknown"}); '
            f"start it with `kubectl studio start {name}` and wait for phase Running"
        )
    return str(pod), int(port)


def cmd_connect(target: Target, name: str, local_port: int | None, address: str, out: TextIO) -> int:
    studio = Studios(target).get(name, target.namespace)
    pod, port = connect_target(studio)
    local = local_port if local_port else free_port(port)
    argv = port_forward_argv(
        find_kubectl(),
        pod,
        target.namespace,
        local,
        port,
        kubeconfig=target.kubeconfig,
        context=target.context,
        address=address,
    )
    host = "127.0.0.1" if address in ("127.0.0.1", "localhost", "0.0.0.0") else address
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=None, text=True)
    except OSError as exc:
        raise CliError(f"cannot run {argv[0]}: {exc}") from exc
    announced = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not announced and line.startswith("Forwarding from"):
                out.write(f"Forwarding to studio {name} (pod {pod}, port {port}); press Ctrl-C to stop.\n")
                out.write(f"http://{host}:{local}/\n")
                out.flush()
                announced = True
            elif not line.startswith(("Forwarding from", "Handling connection")):
                out.write(line)
                out.flush()
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        return 0
    if code != 0:
        raise CliError(f"kubectl port-forward exited with {code}")
    return 0


def cmd_describe(target: Target, name: str, output: str, out: TextIO) -> int:
    studios = Studios(target)
    ns = target.namespace
    studio = studios.get(name, ns)
    spec = studio.get("spec") or {}
    env_name = spec.get("computeEnvironment")
    environment = studios.get_optional("computeenvironments", env_name, ns) if env_name else None
    links = {}
    for mount in spec.get("mounts") or []:
        link = mount.get("dataLink")
        if link:
            links[link] = studios.get_optional("datalinks", link, ns)
    explanation = describe_mod.explain(studio, environment, links)
    if output == "json":
        out.write(describe_mod.render_json(studio, explanation) + "\n")
    elif output == "yaml":
        import json

        out.write(_dump(json.loads(describe_mod.render_json(studio, explanation)), "yaml"))
    else:
        out.write(describe_mod.render(studio, explanation, fmt.now_utc()) + "\n")
    return 0


def _dump(doc: Any, output: str) -> str:
    if output == "json":
        import json

        return json.dumps(doc, indent=2) + "\n"
    return str(yaml.safe_dump(doc, sort_keys=False))


__all__ = ["NotFound"]
