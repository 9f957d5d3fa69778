"""Inheritance rules between a ComputeEnvironment and a Studio (resources/merge.py)."""

from __future__ import annotations

from typing import Any

import pytest

from studio_operator.api.common import MANAGED_BY_KEY, MANAGED_BY_VALUE, STUDIO_LABEL, EnvVar
from studio_operator.api.kinds import ComputeEnvironmentSpec, StudioSpec
from studio_operator.resources.merge import (
    LabelConflict,
    is_reserved_label,
    merge_env,
    merge_labels,
    merge_node_selector,
    merge_resources,
    merge_tolerations,
)

OPERATOR_LABELS = {MANAGED_BY_KEY: MANAGED_BY_VALUE, STUDIO_LABEL: "s1"}


def env(*pairs: tuple[str, str]) -> list[EnvVar]:
    return [EnvVar(name=n, value=v) for n, v in pairs]


def flat(variables: list[EnvVar]) -> list[tuple[str, str | None]]:
    return [(v.name, v.value) for v in variables]


def studio_spec(**spec: Any) -> StudioSpec:
    return StudioSpec.model_validate({"computeEnvironment": "ce", "template": {"image": "img"}, **spec})


def env_spec(**spec: Any) -> ComputeEnvironmentSpec:
    return ComputeEnvironmentSpec.model_validate(spec)


# ---------------------------------------------------------------- environment variables


def test_env_override_in_place_then_new_names_in_order() -> None:
    inherited = env(("A", "1"), ("B", "2"), ("C", "3"))
    own = env(("Z", "z"), ("B", "studio"), ("Y", "y"))
    assert flat(merge_env(inherited, own)) == [
        ("A", "1"),
        ("B", "studio"),
        ("C", "3"),
        ("Z", "z"),
        ("Y", "y"),
    ]


def test_env_value_from_overrides_value_and_vice_versa() -> None:
    secret_ref = {"secretKeyRef": {"name": "s", "key": "k"}}
    inherited = [EnvVar(name="TOKEN", value="plain"), EnvVar(name="OTHER", value_from=secret_ref)]
    own = [EnvVar(name="TOKEN", value_from=secret_ref), EnvVar(name="OTHER", value="x")]
    merged = merge_env(inherited, own)
    assert [v.dump() for v in merged] == [
        {"name": "TOKEN", "valueFrom": secret_ref},
        {"name": "OTHER", "value": "x"},
    ]


@pytest.mark.parametrize(
    ("inherited", "own", "expected"),
    [
        ([], [], []),
        (env(("A", "1")), [], [("A", "1")]),
        ([], env(("A", "1"), ("B", "2")), [("A", "1"), ("B", "2")]),
    ],
)
def test_env_empty_inputs(
    inherited: list[EnvVar], own: list[EnvVar], expected: list[tuple[str, str | None]]
) -> None:
    assert flat(merge_env(inherited, own)) == expected


def test_env_duplicate_inherited_names_keep_the_first() -> None:
    assert flat(merge_env(env(("A", "1"), ("A", "2")), [])) == [("A", "1")]


def test_env_empty_value_is_kept_as_empty_string() -> None:
    assert EnvVar(name="EMPTY").dump() == {"name": "EMPTY", "value": ""}


def test_env_inputs_are_not_modified() -> None:
    inherited, own = env(("A", "1")), env(("A", "2"))
    merge_env(inherited, own)
    assert flat(inherited) == [("A", "1")] and flat(own) == [("A", "2")]


# ---------------------------------------------------------------- labels


def test_labels_environment_plus_studio_minus_removed_plus_operator() -> None:
    merged = merge_labels(
        {"team": "genomics", "cost-center": "cc-42", "tier": "gold"},
        {"project": "rna", "tier": "silver"},
        ["cost-center"],
        "s1",
    )
    assert merged.labels == {"team": "genomics", "tier": "silver", "project": "rna", **OPERATOR_LABELS}
    assert merged.inherited == ["team"]  # tier is the studio's now; cost-center was dropped
    assert merged.sources == {
        "team": "environment",
        "tier": "studio",
        "project": "studio",
        MANAGED_BY_KEY: "operator",
        STUDIO_LABEL: "operator",
    }


def test_labels_removing_a_studio_label_or_an_absent_key_is_harmless() -> None:
    merged = merge_labels({"a": "1"}, {"b": "2"}, ["b", "does-not-exist"], "s1")
    assert merged.labels == {"a": "1", **OPERATOR_LABELS}


@pytest.mark.parametrize("inherited", [None, {}])
@pytest.mark.parametrize("own", [None, {}])
@pytest.mark.parametrize("remove", [None, []])
def test_labels_empty_inputs_give_the_operator_labels(
    inherited: dict[str, str] | None, own: dict[str, str] | None, remove: list[str] | None
) -> None:
    merged = merge_labels(inherited, own, remove, "s1")
    assert merged.labels == OPERATOR_LABELS
    assert merged.inherited == []


@pytest.mark.parametrize(
    ("own", "remove"),
    [
        ({"studios.dev/studio": "other"}, None),
        ({"studios.dev/anything": "x"}, None),
        ({MANAGED_BY_KEY: "me"}, None),
        (None, ["studios.dev/studio"]),
        (None, [MANAGED_BY_KEY]),
    ],
)
def test_labels_studio_may_not_set_or_remove_reserved_keys(
    own: dict[str, str] | None, remove: list[str] | None
) -> None:
    with pytest.raises(LabelConflict, match="reserved"):
        merge_labels({}, own, remove, "s1")


def test_labels_environment_cannot_claim_reserved_keys_either() -> None:
    merged = merge_labels({MANAGED_BY_KEY: "helm", "studios.dev/studio": "x", "ok": "1"}, None, None, "s1")
    assert merged.labels == {"ok": "1", **OPERATOR_LABELS}
    assert merged.inherited == ["ok"]


def test_labels_other_app_kubernetes_io_keys_are_not_reserved() -> None:
    assert not is_reserved_label("app.kubernetes.io/name")
    assert is_reserved_label(MANAGED_BY_KEY)
    assert is_reserved_label("studios.dev/x")
    merged = merge_labels({}, {"app.kubernetes.io/name": "jupyter"}, None, "s1")
    assert merged.labels["app.kubernetes.io/name"] == "jupyter"


# ---------------------------------------------------------------- resources, nodeSelector, tolerations


def test_resources_per_key_override() -> None:
    ce = env_spec(
        resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "4Gi"}}
    )
    st = studio_spec(resources={"limits": {"memory": "8Gi", "nvidia.com/gpu": 1}})
    assert merge_resources(ce, st) == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
    }


def test_resources_empty() -> None:
    assert merge_resources(env_spec(), studio_spec()) == {}
    assert merge_resources(env_spec(resources={}), studio_spec(resources={"limits": {}})) == {}
    assert merge_resources(env_spec(), studio_spec(resources={"requests": {"cpu": "1"}})) == {
        "requests": {"cpu": "1"}
    }


def test_node_selector_per_key_override() -> None:
    ce = env_spec(nodeSelector={"pool": "cpu", "zone": "a"})
    st = studio_spec(nodeSelector={"pool": "gpu", "disk": "ssd"})
    assert merge_node_selector(ce, st) == {"pool": "gpu", "zone": "a", "disk": "ssd"}
    assert merge_node_selector(env_spec(), studio_spec()) == {}


def test_tolerations_same_key_and_effect_replaced_others_added() -> None:
    ce = env_spec(
        tolerations=[
            {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
        ]
    )
    st = studio_spec(
        tolerations=[
            {"key": "spot", "operator": "Equal", "value": "false", "effect": "NoSchedule"},
            {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
        ]
    )
    assert merge_tolerations(ce, st) == [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Equal", "value": "false", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ]


def test_tolerations_empty() -> None:
    assert merge_tolerations(env_spec(), studio_spec()) == []
    only_env = merge_tolerations(env_spec(tolerations=[{"operator": "Exists"}]), studio_spec())
    assert only_env == [{"operator": "Exists"}]
