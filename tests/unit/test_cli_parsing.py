"""kubectl-studio without a cluster: argument parsing, manifests, patches, formatting, describe."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from studio_operator.cli import commands, describe, main
from studio_operator.cli import format as fmt
from studio_operator.cli.errors import EXIT_USAGE, UsageError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def studio(name: str = "s1", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "Studio",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": "u-1",
            "generation": 1,
            "creationTimestamp": "2026-11-25T10:00:00Z",
            "annotations": {"studios.dev/created-by": "alice"},
        },
        "spec": {"computeEnvironment": "aws-eu", "template": {"image": "jupyter:4", "port": 8888}},
        "status": status,
    }


# ---------------------------------------------------------------- parsing


def test_global_options_before_and_after_the_subcommand() -> None:
    parser = main.build_parser()
    a = parser.parse_args(["-n", "x", "--context", "c", "ls"])
    assert (a.namespace, a.context, a.kubeconfig) == ("x", "c", None)
    b = parser.parse_args(["ls", "-n", "y", "-A"])
    assert b.namespace == "y" and b.all_namespaces
    c = parser.parse_args(["--namespace", "x", "ls"])
    assert c.namespace == "x"  # the subcommand's (absent) copy does not reset it


def test_create_arguments() -> None:
    a = main.build_parser().parse_args(
        [
            "create",
            "s1",
            "--image",
            "img",
            "--env-name",
            "ce",
            "--port",
            "8888",
            "--no-start",
            "--private",
            "--hours",
            "4",
            "--mount",
            "a",
            "--mount",
            "b",
            "--label",
            "k=v",
        ]
    )
    assert (a.name, a.image, a.env_name, a.port, a.no_start, a.private, a.hours) == (
        "s1",
        "img",
        "ce",
        8888,
        True,
        True,
        4,
    )
    assert a.mount == ["a", "b"] and a.label == ["k=v"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["create", "s1", "--image", "x"],  # --env-name missing
        ["create", "s1", "--image", "x", "--env-name", "e", "--hours", "2", "--keep-running"],
        ["extend", "s1", "0"],
        ["extend", "s1", "121"],
        ["extend", "s1", "two"],
        ["create", "S_1", "--image", "x", "--env-name", "e", "--dry-run"],
        ["create", "s1", "--image", "x", "--env-name", "e", "--label", "studios.dev/x=1", "--dry-run"],
        ["create", "s1", "--image", "x", "--env-name", "e", "--hours", "200", "--dry-run"],
    ],
)
def test_usage_errors_exit_1(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(argv) == EXIT_USAGE
    assert capsys.readouterr().err  # a message, never a traceback


def test_help_exits_0() -> None:
    with pytest.raises(SystemExit) as exc:
        main.main(["--help"])
    assert exc.value.code == 0


def test_create_dry_run_prints_the_manifest() -> None:
    out = io.StringIO()
    code = main.main(
        [
            "create",
            "s1",
            "-n",
            "team-a",
            "--image",
            "img",
            "--env-name",
            "ce",
            "--keep-running",
            "--mount",
            "ref",
            "--label",
            "project=rna",
            "--var",
            "A=1",
            "--no-start",
            "--dry-run",
        ],
        out=out,
    )
    assert code == 0
    import yaml

    doc = yaml.safe_load(out.getvalue())
    assert doc["metadata"] == {"name": "s1", "namespace": "team-a"}
    assert doc["spec"] == {
        "computeEnvironment": "ce",
        "template": {"image": "img"},
        "env": [{"name": "A", "value": "1"}],
        "resourceLabels": {"project": "rna"},
        "lifespan": {"policy": "KeepRunning"},
        "mounts": [{"dataLink": "ref"}],
        "state": "Stopped",
    }


def test_build_studio_defaults_and_validation() -> None:
    doc = commands.build_studio("s1", "ns", image="img", environment="ce", hours=3, private=True, port=8888)
    assert doc["spec"]["state"] == "Running"
    assert doc["spec"]["lifespan"] == {"policy": "StopAfter", "hours": 3}
    assert doc["spec"]["private"] is True and doc["spec"]["template"]["port"] == 8888
    with pytest.raises(UsageError):
        commands.build_studio("s1", "ns", image="img", environment="ce", port=70000)
    with pytest.raises(UsageError):
        commands.build_studio("s1", "ns", image="img", environment="ce", labels=["novalue"])
    with pytest.raises(UsageError):
        commands.build_studio(
            "s1", "ns", image="img", environment="ce", labels=["app.kubernetes.io/managed-by=x"]
        )


# ---------------------------------------------------------------- patches and checks


def test_start_patch_adds_restart_only_when_held() -> None:
    assert commands.start_patch(studio(phase="Stopped"), NOW) == {"spec": {"state": "Running"}}
    held = studio(phase="Stopped", stopReason="LifespanExpired", heldRestart="")
    assert commands.start_patch(held, NOW) == {
        "spec": {"state": "Running"},
        "metadata": {"annotations": {"studios.dev/restart": "2026-11-25T12:00:00Z"}},
    }
    # a held studio whose state is Stopped restarts by the state change alone
    held["spec"]["state"] = "Stopped"
    assert commands.start_patch(held, NOW) == {"spec": {"state": "Running"}}


def test_check_extend() -> None:
    running = studio(phase="Running", session={"startedAt": "2026-11-25T10:00:00Z", "expiresAt": "x"})
    commands.check_extend(running, 3, NOW)
    with pytest.raises(UsageError, match="in the past"):
        commands.check_extend(running, 1, NOW)  # 10:00 + 1h < 12:00
    with pytest.raises(UsageError, match="no running session"):
        commands.check_extend(studio(phase="Stopped"), 3, NOW)
    locked = studio(
        phase="Running",
        session={"startedAt": "2026-11-25T10:00:00Z"},
        conditions=[{"type": "LifespanLocked", "status": "True", "message": "locked at 4 hours"}],
    )
    with pytest.raises(UsageError, match="locks"):
        commands.check_extend(locked, 8, NOW)


def test_connect_target_and_port_forward_argv() -> None:
    running = studio(phase="Running", session={"podName": "s1-abcde"}, connect={"port": 8888})
    assert commands.connect_target(running) == ("s1-abcde", 8888)
    with pytest.raises(UsageError, match="not running"):
        commands.connect_target(studio(phase="Starting", session={"podName": "p"}))
    argv = commands.port_forward_argv("kubectl", "p", "ns", 9999, 8888, kubeconfig="/k", context="c")
    assert argv == [
        "kubectl",
        "--kubeconfig=/k",
        "--context=c",
        "port-forward",
        "-n",
        "ns",
        "--address=127.0.0.1",
        "pod/p",
        "9999:8888",
    ]


# ---------------------------------------------------------------- formatting


def test_duration_and_relative() -> None:
    assert [fmt.duration(s) for s in (5, 125, 3 * 3600 + 720, 3600, 2 * 86400 + 4 * 3600)] == [
        "5s",
        "2m",
        "3h12m",
        "1h",
        "2d4h",
    ]
    assert fmt.relative(NOW + timedelta(hours=2), NOW) == "in 2h"
    assert fmt.relative(NOW - timedelta(minutes=5), NOW) == "5m ago"


def ready(status: str, reason: str, message: str) -> list[dict[str, Any]]:
    return [{"type": "Ready", "status": status, "reason": reason, "message": message}]


def test_ls_table() -> None:
    rows = [
        studio(
            "b",
            phase="Running",
            session={"startedAt": "2026-11-25T11:00:00Z", "expiresAt": "2026-11-25T19:00:00Z"},
            conditions=ready("True", "SessionRunning", "the session is running"),
        ),
        studio(
            "a",
            phase="Stopped",
            stopReason="LifespanExpired",
            conditions=ready("True", "LifespanExpired", "the session reached the end of its lifespan"),
        ),
        studio("c", phase="Running", session={"startedAt": "2026-11-25T11:00:00Z", "expiresAt": None}),
        {**studio("d"), "status": None},
        # Stalled: no stopReason, the Ready reason says why (as `kubectl get` shows it)
        studio(
            "e",
            phase="Stopped",
            conditions=ready("False", "EnvironmentNotFound", "ComputeEnvironment 'x' does not exist"),
        ),
    ]
    rows[1]["spec"]["private"] = True
    del rows[2]["metadata"]["annotations"]
    text = fmt.ls_table(rows, NOW, all_namespaces=False)
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "READY", "REASON", "EXPIRES", "PRIVATE", "CREATOR", "AGE"]
    assert lines[1].split() == [
        "a",
        "Stopped",
        "(LifespanExpired)",
        "True",
        "LifespanExpired",
        "-",
        "true",
        "alice",
        "2h",
    ]
    assert lines[2].split() == ["b", "Running", "True", "SessionRunning", "in", "7h", "false", "alice", "2h"]
    assert lines[3].split() == ["c", "Running", "<none>", "<none>", "never", "false", "<none>", "2h"]
    assert lines[4].split()[:4] == ["d", "Pending", "<none>", "<none>"]
    assert lines[5].split()[:4] == ["e", "Stopped", "False", "EnvironmentNotFound"]
    every = fmt.ls_table(rows, NOW, all_namespaces=True)
    assert every.splitlines()[0].split()[0] == "NAMESPACE" and "team-a" in every.splitlines()[1]
    wide = fmt.ls_table(rows, NOW, all_namespaces=False, wide=True).splitlines()
    assert wide[0].split()[-1] == "MESSAGE"
    assert wide[5].endswith("ComputeEnvironment 'x' does not exist")
    assert main.build_parser().parse_args(["ls", "-o", "wide"]).output == "wide"


# ---------------------------------------------------------------- describe


def environment() -> dict[str, Any]:
    return {
        "metadata": {"name": "aws-eu"},
        "spec": {
            "region": "eu-west-1",
            "env": [
                {"name": "AWS_REGION", "value": "eu-west-1"},
                {"name": "PIP_INDEX_URL", "value": "https://pypi.org/simple"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
            ],
            "resourceLabels": {"team": "genomics", "cost-center": "cc-42"},
            "allowedBuckets": ["s3://scratch"],
            "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "4Gi"}},
        },
    }


def link(name: str, uri: str, region: str = "eu-west-1", ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"uri": uri},
        "status": {
            "observedGeneration": 1,
            "region": region,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "Reachable" if ready else "AccessDenied",
                    "message": "",
                }
            ],
        },
    }


def test_describe_sources() -> None:
    s = studio()
    s["spec"].update(
        env=[
            {"name": "PIP_INDEX_URL", "value": "https://mirror"},
            {"name": "STUDIO_PORT", "value": "1"},
            {"name": "MINE", "value": "x"},
        ],
        resourceLabels={"project": "rna", "team": "rna-team"},
        removeResourceLabels=["cost-center"],
        resources={"requests": {"cpu": "2"}},
        mounts=[{"dataLink": "scratch"}, {"dataLink": "ref"}, {"dataLink": "missing"}],
    )
    links = {
        "scratch": link("scratch", "s3://scratch/tmp"),
        "ref": link("ref", "s3://ref-genomes", region="us-east-1", ready=False),
        "missing": None,
    }
    ex = describe.explain(s, environment(), links)
    env = {e.name: e for e in ex.env}
    assert [e.name for e in ex.env] == [
        "STUDIO_NAME",
        "STUDIO_NAMESPACE",
        "STUDIO_PORT",
        "STUDIO_DATA_DIR",
        "AWS_REGION",
        "PIP_INDEX_URL",
        "TOKEN",
        "MINE",
    ]
    assert (env["STUDIO_NAME"].source, env["STUDIO_NAME"].value) == ("operator", "s1")
    assert (env["STUDIO_PORT"].source, env["STUDIO_PORT"].overrides) == ("studio", ["operator"])
    assert (env["PIP_INDEX_URL"].value, env["PIP_INDEX_URL"].source, env["PIP_INDEX_URL"].overrides) == (
        "https://mirror",
        "studio",
        ["environment"],
    )
    assert env["TOKEN"].reference and env["TOKEN"].value == "<secret api key token>"
    assert env["MINE"].source == "studio"
    labels = {lb.key: (lb.value, lb.source) for lb in ex.labels}
    assert labels["team"] == ("rna-team", "studio")
    assert labels["project"] == ("rna", "studio")
    assert labels["app.kubernetes.io/managed-by"] == ("studio-operator", "operator")
    assert labels["studios.dev/studio"] == ("s1", "operator")
    assert "cost-center" not in labels and ex.removed_labels == ["cost-center"]
    mounts = {m.data_link: m for m in ex.mounts}
    assert (mounts["scratch"].access, mounts["scratch"].path) == ("ReadWrite", "/workspace/data/scratch")
    assert mounts["ref"].access == "ReadOnly" and not mounts["ref"].ready
    assert "cross-region" in mounts["ref"].note and "AccessDenied" in mounts["ref"].note
    assert mounts["missing"].note == "data link not found"
    assert ex.resources == {"limits": {"memory": "4Gi"}, "requests": {"cpu": "2"}}
    text = describe.render(s, ex, NOW)
    for needle in (
        "Environment variables:",
        "studio (overrides environment)",
        "<secret api key token>",
        "cost-center",
        "(removed)",
        "/workspace/data/scratch",
        "Creator:        alice",
    ):
        assert needle in text
    assert '"source": "studio"' in describe.render_json(s, ex)


def test_describe_without_environment() -> None:
    ex = describe.explain(studio(), None, {})
    assert any("not found" in p for p in ex.problems)
    assert {e.source for e in ex.env} == {"operator"}
