"""Admission rules (pure) and the handlers with the API calls replaced."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from pathlib import Path
from typing import Any

import kopf
import pytest
from cryptography import x509

from studio_operator.handlers import admission as adm

CREATED_BY = "studios.dev/created-by"


def studio(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "studios.dev/v1alpha1",
        "kind": "Studio",
        "metadata": {
            "name": "rna",
            "namespace": "team-a",
            "uid": "u-1",
            "resourceVersion": "10",
            "generation": 1,
            "annotations": {CREATED_BY: "alice"},
            "labels": {"project": "rna"},
            "finalizers": ["studios.dev/finalizer"],
        },
        "spec": {
            "computeEnvironment": "aws-eu",
            "template": {"image": "jupyter:4", "port": 8888},
            "state": "Running",
        },
        "status": {"phase": "Running"},
    }
    base["spec"].update(spec)
    return base


def changed(body: dict[str, Any], fn: Any) -> dict[str, Any]:
    new = copy.deepcopy(body)
    fn(new)
    return new


# ---------------------------------------------------------------- created-by


def test_create_stamps_the_user_over_a_forged_value() -> None:
    forged = studio()
    forged["metadata"]["annotations"][CREATED_BY] = "mallory"
    assert adm.creator_to_stamp("CREATE", None, forged, "alice") == "alice"
    bare = studio()
    del bare["metadata"]["annotations"]
    assert adm.creator_to_stamp("CREATE", None, bare, "alice") == "alice"


def test_create_already_right_needs_no_patch() -> None:
    assert adm.creator_to_stamp("CREATE", None, studio(), "alice") is None


def test_update_restores_a_dropped_creator_only() -> None:
    old = studio()
    dropped = changed(old, lambda b: b["metadata"]["annotations"].pop(CREATED_BY))
    assert adm.creator_to_stamp("UPDATE", old, dropped, "bob") == "alice"
    assert adm.creator_to_stamp("UPDATE", old, old, "bob") is None
    other = changed(old, lambda b: b["metadata"]["annotations"].update({CREATED_BY: "bob"}))
    assert adm.creator_to_stamp("UPDATE", old, other, "bob") is None  # the validator rejects it
    never = changed(old, lambda b: b["metadata"]["annotations"].pop(CREATED_BY))
    assert adm.creator_to_stamp("UPDATE", never, never, "bob") is None


def test_created_by_cannot_change_or_appear() -> None:
    old = studio()
    assert adm.created_by_violation(old, copy.deepcopy(old)) is None
    for value in ("bob", ""):
        new = changed(old, lambda b, v=value: b["metadata"]["annotations"].update({CREATED_BY: v}))
        message = adm.created_by_violation(old, new)
        assert message and message.startswith(f'metadata.annotations["{CREATED_BY}"]')
    removed = changed(old, lambda b: b["metadata"].pop("annotations"))
    assert adm.created_by_violation(old, removed)
    unknown = changed(old, lambda b: b["metadata"].pop("annotations"))
    assert adm.created_by_violation(unknown, old)  # nobody may fill it in later either


# ---------------------------------------------------------------- configure


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["spec"].update(state="Stopped"),
        lambda b: b["spec"].pop("state"),
        lambda b: b["metadata"]["annotations"].update({"studios.dev/restart": "2026-11-25T10:00:00Z"}),
        lambda b: b["metadata"]["annotations"].update({"studios.dev/session-lifespan-hours": "12"}),
        lambda b: b["metadata"].update(resourceVersion="11", generation=2, managedFields=[{"manager": "x"}]),
        lambda b: b["metadata"].update(deletionTimestamp="2026-11-25T10:00:00Z"),
        lambda b: b["status"].update(phase="Stopped"),
        lambda b: b["metadata"]["annotations"].update(
            {"kubectl.kubernetes.io/last-applied-configuration": '{"spec": {}}'}
        ),
    ],
)
def test_launch_level_changes(change: Any) -> None:
    old = studio()
    assert adm.configuration_changes(old, changed(old, change)) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda b: b["spec"]["template"].update(image="evil:1"), "spec.template"),
        (lambda b: b["spec"].update(private=True), "spec.private"),
        (lambda b: b["spec"].update(env=[{"name": "A", "value": "1"}]), "spec.env"),
        (lambda b: b["spec"].pop("computeEnvironment"), "spec.computeEnvironment"),
        (lambda b: b["metadata"]["labels"].update(project="x"), 'metadata.labels["project"]'),
        (lambda b: b["metadata"]["labels"].pop("project"), 'metadata.labels["project"]'),
        (lambda b: b["metadata"]["annotations"].update(note="x"), 'metadata.annotations["note"]'),
        (
            lambda b: b["metadata"]["annotations"].update({"studios.dev/kopf-progress": "x"}),
            'metadata.annotations["studios.dev/kopf-progress"]',
        ),
        (lambda b: b["metadata"].update(ownerReferences=[{"uid": "x"}]), "metadata.ownerReferences"),
        (lambda b: b.update(extra={"a": 1}), "extra"),
    ],
)
def test_configuration_changes(change: Any, path: str) -> None:
    old = studio()
    assert adm.configuration_changes(old, changed(old, change)) == [path]


def test_owner_references_may_be_dropped() -> None:
    old = changed(studio(), lambda b: b["metadata"].update(ownerReferences=[{"uid": "x"}]))
    assert adm.configuration_changes(old, changed(old, lambda b: b["metadata"].pop("ownerReferences"))) == []


def test_state_with_config_still_needs_configure() -> None:
    old = studio()
    new = changed(old, lambda b: (b["spec"].update(state="Stopped"), b["spec"]["template"].update(image="x")))
    assert adm.configuration_changes(old, new) == ["spec.template"]


def test_created_by_is_not_a_configuration_path() -> None:
    old = studio()
    new = changed(old, lambda b: b["metadata"]["annotations"].update({CREATED_BY: "bob"}))
    assert adm.configuration_changes(old, new) == []  # it has its own, stricter rule


def test_denied_message_names_the_role() -> None:
    message = adm.configure_denied_message(["spec.template"])
    assert message.startswith("changing spec.template requires the studios-maintain role (verb configure")
    assert "studios-launch may only change spec.state" in message
    assert "studios.dev/restart" in message and "studios.dev/session-lifespan-hours" in message
    many = adm.configure_denied_message([f"spec.f{i}" for i in range(8)])
    assert "(and 3 more)" in many


# ---------------------------------------------------------------- field rules


def test_reserved_labels_name_the_field() -> None:
    new = studio(
        resourceLabels={"team": "a", "studios.dev/x": "1"},
        removeResourceLabels=["app.kubernetes.io/managed-by"],
    )
    errors = adm.label_errors("studios", None, new)
    assert errors[0].startswith('spec.resourceLabels["studios.dev/x"]: label keys under studios.dev/')
    assert errors[1].startswith('spec.removeResourceLabels[0] ("app.kubernetes.io/managed-by"): ')
    assert len(errors) == 2


def test_reserved_labels_already_present_do_not_block_other_changes() -> None:
    old = studio(resourceLabels={"studios.dev/x": "1"})
    assert adm.label_errors("studios", old, changed(old, lambda b: b["spec"].update(state="Stopped"))) == []
    env = {"spec": {"resourceLabels": {"app.kubernetes.io/managed-by": "me"}}}
    assert len(adm.label_errors("computeenvironments", None, env)) == 1
    assert adm.label_errors("computeenvironments", env, env) == []


def test_lifespan_annotation() -> None:
    key = "studios.dev/session-lifespan-hours"
    for bad in ("0", "121", "eight", "1.5"):
        new = changed(studio(), lambda b, v=bad: b["metadata"]["annotations"].update({key: v}))
        message = adm.lifespan_annotation_error(studio(), new)
        assert message and message.startswith(f'metadata.annotations["{key}"]: ')
    good = changed(studio(), lambda b: b["metadata"]["annotations"].update({key: "12"}))
    assert adm.lifespan_annotation_error(studio(), good) is None
    # an unchanged (older) bad value does not block a stop
    bad = changed(studio(), lambda b: b["metadata"]["annotations"].update({key: "999"}))
    assert (
        adm.lifespan_annotation_error(bad, changed(bad, lambda b: b["spec"].update(state="Stopped"))) is None
    )


def test_workspace_settings_name() -> None:
    assert adm.workspace_settings_name_error("default") is None
    message = adm.workspace_settings_name_error("other")
    assert (
        message == 'metadata.name: WorkspaceSettings must be named "default" (one per namespace), not "other"'
    )


def test_object_refs() -> None:
    env = [
        {"name": "A", "value": "1"},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
        {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    refs = adm.object_refs("studios", studio(env=env))
    assert refs == [
        adm.ObjectRef("secrets", "db", "spec.env[1].valueFrom.secretKeyRef.name", key="pw", variable="B"),
        adm.ObjectRef(
            "configmaps", "cfg", "spec.env[2].valueFrom.configMapKeyRef.name", key="k", variable="C"
        ),
    ]
    ce = {"spec": {"credentialsSecret": "aws", "env": env[1:2]}}
    assert [r.path for r in adm.object_refs("computeenvironments", ce)] == [
        "spec.env[0].valueFrom.secretKeyRef.name",
        "spec.credentialsSecret",
    ]
    # only what a request adds is checked again
    assert adm.new_refs("studios", studio(env=env), studio(env=env)) == []
    more = [*env, {"name": "E", "valueFrom": {"secretKeyRef": {"name": "other"}}}]
    assert [r.name for r in adm.new_refs("studios", studio(env=env), studio(env=more))] == ["other"]


def secret_env(name: str, secret: str, key: str | None) -> dict[str, Any]:
    ref = {"name": secret} if key is None else {"name": secret, "key": key}
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        # the same key under another name in the same secret: the key changed
        ([secret_env("U", "db", "username")], [secret_env("U", "db", "password")], ["password"]),
        # a new variable reading another key of an already referenced secret
        (
            [secret_env("U", "db", "username")],
            [secret_env("U", "db", "username"), secret_env("P", "db", "password")],
            ["password"],
        ),
        # a new variable reading the same key (another copy the requester decides on)
        (
            [secret_env("U", "db", "username")],
            [secret_env("U", "db", "username"), secret_env("V", "db", "username")],
            ["username"],
        ),
        # a key added to a reference that had none (and the reverse)
        ([secret_env("U", "db", None)], [secret_env("U", "db", "password")], ["password"]),
        ([secret_env("U", "db", "password")], [secret_env("U", "db", None)], [None]),
        # unchanged, reordered or removed references are not new
        (
            [secret_env("U", "db", "username"), secret_env("P", "db", "password")],
            [secret_env("P", "db", "password"), secret_env("U", "db", "username")],
            [],
        ),
        ([secret_env("U", "db", "username")], [], []),
    ],
)
def test_new_refs_compare_the_key_and_the_variable(
    before: list[Any], after: list[Any], expected: list[str | None]
) -> None:
    assert [r.key for r in adm.new_refs("studios", studio(env=before), studio(env=after))] == expected


def test_ref_denial_names_the_key() -> None:
    (ref,) = adm.new_refs("studios", None, studio(env=[secret_env("P", "db", "password")]))
    assert adm.ref_denied_message(ref, "mal", "team-a") == (
        'spec.env[0].valueFrom.secretKeyRef.name: user "mal" cannot get secret "db" (key "password") '
        'in namespace "team-a", so may not make the operator use it'
    )


def test_finalizers_need_configure_except_the_garbage_collectors() -> None:
    old = studio()
    for change in (
        lambda b: b["metadata"]["finalizers"].clear(),
        lambda b: b["metadata"]["finalizers"].append("example.com/hold"),
        lambda b: b["metadata"].pop("finalizers"),
        lambda b: b["metadata"]["finalizers"].append("foregroundDeletion"),
    ):
        assert adm.configuration_changes(old, changed(old, change)) == ["metadata.finalizers"]
    deleting = changed(old, lambda b: b["metadata"]["finalizers"].extend(["foregroundDeletion", "orphan"]))
    assert adm.configuration_changes(deleting, studio()) == []  # what the garbage collector does
    assert "changing metadata.finalizers requires the studios-maintain role" in adm.configure_denied_message(
        ["metadata.finalizers"]
    )


@pytest.mark.parametrize(
    ("before", "after", "who", "allowed"),
    [
        (False, True, "alice", True),  # the creator, both ways
        (True, False, "alice", True),
        (True, False, "erin", False),  # an admin
        (False, True, "erin", False),
        (True, False, "system:admin", False),
        (True, True, "erin", True),  # unchanged
        (None, False, "erin", True),  # unset is false
    ],
)
def test_only_the_creator_changes_private(before: bool | None, after: bool, who: str, allowed: bool) -> None:
    old = studio() if before is None else studio(private=before)
    message = adm.private_violation(old, studio(private=after), who)
    if allowed:
        assert message is None
    else:
        assert message == f'spec.private: only its creator "alice" may change it (user "{who}" may not)'


def test_private_without_creator_is_frozen() -> None:
    old = changed(studio(private=True), lambda b: b["metadata"].pop("annotations"))
    message = adm.private_violation(old, studio(private=False), "alice")
    assert message and message.startswith("spec.private: only its creator, and this studio has no recorded")


@pytest.mark.parametrize(
    ("before", "after", "paths"),
    [
        ({}, {"serviceAccountName": "ci"}, ["spec.serviceAccountName"]),
        ({"serviceAccountName": "ci"}, {"serviceAccountName": "ci"}, []),
        ({"serviceAccountName": "ci"}, {}, []),  # dropping power needs nothing
        ({}, {"securityProfile": "Baseline"}, ["spec.securityProfile"]),
        ({}, {"securityProfile": "Restricted"}, []),
        ({"securityProfile": "Baseline"}, {"securityProfile": "Baseline", "region": "eu-west-1"}, []),
        ({}, {"storage": {"driver": "fuse"}}, ["spec.storage.driver"]),
        ({}, {"storage": {"driver": "csi", "fuseImage": "evil:1"}}, ["spec.storage.fuseImage"]),
        (
            {"storage": {"driver": "fuse", "fuseImage": "a:1"}},
            {"storage": {"driver": "fuse", "fuseImage": "b:1"}},
            ["spec.storage.fuseImage"],
        ),
        (
            {"imagePullSecrets": [{"name": "a"}]},
            {"imagePullSecrets": [{"name": "b"}, {"name": "a"}]},
            ["spec.imagePullSecrets[0]"],
        ),
        ({}, {"env": [{"name": "A", "value": "1"}], "tolerations": [{"key": "gpu"}]}, []),
    ],
)
def test_power_fields(before: dict[str, Any], after: dict[str, Any], paths: list[str]) -> None:
    assert adm.power_field_changes({"spec": before}, {"spec": after}) == paths
    if paths:
        message = adm.pods_denied_message(paths, "erin", "team-a")
        assert message.startswith(f'{paths[0]}: requires permission to create pods in namespace "team-a"')
        assert '(user "erin" may not)' in message


def test_sar_body_carries_the_whole_user() -> None:
    userinfo = {
        "username": "bob",
        "uid": "42",
        "groups": ["team", "system:authenticated"],
        "extra": {"k": ["v"]},
    }
    body = adm.sar_body(userinfo, "team-a", "configure", "studios", group="studios.dev", name="rna")
    assert body["spec"] == {
        "resourceAttributes": {
            "namespace": "team-a",
            "verb": "configure",
            "group": "studios.dev",
            "resource": "studios",
            "name": "rna",
        },
        "user": "bob",
        "groups": ["team", "system:authenticated"],
        "uid": "42",
        "extra": {"k": ["v"]},
    }


# ---------------------------------------------------------------- handlers (API calls faked)


class FakeApi:
    def __init__(self, allowed: set[tuple[str, str, str]]) -> None:
        self.allowed = allowed  # (user, verb, resource)
        self.reviews: list[tuple[str, str, str, str | None]] = []

    async def access_allowed(
        self,
        userinfo: Any,
        namespace: str,
        verb: str,
        resource: str,
        *,
        group: str = "",
        name: str | None = None,
    ) -> bool:
        self.reviews.append((userinfo["username"], verb, resource, name))
        return (userinfo["username"], verb, resource) in self.allowed

    async def exists(self, namespace: str, plural: str, name: str) -> bool | None:
        return name.startswith("known")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi({("alice", "configure", "studios"), ("alice", "get", "secrets")})
    monkeypatch.setattr(adm, "access_allowed", fake.access_allowed)
    monkeypatch.setattr(adm, "_exists", fake.exists)
    monkeypatch.setattr(
        adm, "_state", adm._State(operator_username="system:serviceaccount:ops:studio-operator")
    )
    return fake


def user(name: str) -> dict[str, Any]:
    return {"username": name, "uid": name, "groups": ["system:authenticated"]}


def validate(operation: str, old: dict[str, Any] | None, new: dict[str, Any], who: str) -> list[str]:
    warnings: list[str] = []
    asyncio.run(
        adm.validate_studio(
            userinfo=user(who),
            name=new["metadata"]["name"],
            namespace="team-a",
            warnings=warnings,
            operation=operation,
            old=old,
            new=new,
        )
    )
    return warnings


def test_mutate_patches_created_by() -> None:
    forged = changed(studio(), lambda b: b["metadata"]["annotations"].update({CREATED_BY: "mallory"}))
    patch = kopf.Patch()
    asyncio.run(adm.mutate_studio(userinfo=user("alice"), patch=patch, operation="CREATE", new=forged))
    assert patch == {"metadata": {"annotations": {CREATED_BY: "alice"}}}
    assert patch.as_json_patch(forged) == [
        {"op": "replace", "path": "/metadata/annotations/studios.dev~1created-by", "value": "alice"}
    ]
    bare = changed(studio(), lambda b: b["metadata"].pop("annotations"))
    assert patch.as_json_patch(bare) == [
        {"op": "add", "path": "/metadata/annotations", "value": {CREATED_BY: "alice"}}
    ]


def test_bob_may_stop_but_not_change_the_image(api: FakeApi) -> None:
    old = studio()
    validate("UPDATE", old, changed(old, lambda b: b["spec"].update(state="Stopped")), "bob")
    assert api.reviews == []  # a launch-level change costs no review
    with pytest.raises(kopf.AdmissionError) as exc:
        validate("UPDATE", old, changed(old, lambda b: b["spec"]["template"].update(image="x")), "bob")
    assert "requires the studios-maintain role" in str(exc.value) and exc.value.code == 403
    assert api.reviews == [("bob", "configure", "studios", "rna")]


def test_alice_may_configure(api: FakeApi) -> None:
    old = studio()
    validate("UPDATE", old, changed(old, lambda b: b["spec"]["template"].update(image="x")), "alice")


def test_nobody_changes_created_by(api: FakeApi) -> None:
    old = studio()
    new = changed(old, lambda b: b["metadata"]["annotations"].update({CREATED_BY: "alice2"}))
    for who in ("alice", "erin", "system:admin"):
        with pytest.raises(kopf.AdmissionError, match="created-by"):
            validate("UPDATE", old, new, who)


def test_the_operator_always_passes(api: FakeApi) -> None:
    old = studio(resourceLabels={"studios.dev/x": "1"})
    new = changed(old, lambda b: b["metadata"]["annotations"].update({CREATED_BY: "x", "y": "z"}))
    validate("UPDATE", old, new, "system:serviceaccount:ops:studio-operator")
    assert api.reviews == []


def test_create_checks(api: FakeApi) -> None:
    ok = studio(computeEnvironment="known-env")
    assert validate("CREATE", None, ok, "alice") == []
    with pytest.raises(kopf.AdmissionError, match="must be the creating user"):
        validate("CREATE", None, ok, "bob")
    with pytest.raises(kopf.AdmissionError, match=r'spec.resourceLabels\["studios.dev/x"\]'):
        validate(
            "CREATE",
            None,
            studio(computeEnvironment="known-env", resourceLabels={"studios.dev/x": "1"}),
            "alice",
        )


def test_create_warns_about_missing_references(api: FakeApi) -> None:
    new = studio(computeEnvironment="missing", mounts=[{"dataLink": "known-link"}, {"dataLink": "gone"}])
    warnings = validate("CREATE", None, new, "alice")
    assert warnings == [
        'spec.computeEnvironment: ComputeEnvironment "missing" does not exist in "team-a" yet; '
        "the studio waits (Stalled) until it does",
        'spec.mounts[1].dataLink: DataLink "gone" does not exist in "team-a" yet',
    ]


def test_secret_refs_need_read_access(api: FakeApi) -> None:
    env = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]
    new = studio(computeEnvironment="known-env", env=env)
    validate("CREATE", None, new, "alice")  # alice can read secrets
    new["metadata"]["annotations"][CREATED_BY] = "maint"
    with pytest.raises(kopf.AdmissionError) as exc:
        validate("CREATE", None, new, "maint")
    assert str(exc.value).startswith(
        'spec.env[0].valueFrom.secretKeyRef.name: user "maint" cannot get secret "db"'
    )


def test_other_kinds(api: FakeApi) -> None:
    check = adm._validate_kind("workspacesettings")
    with pytest.raises(kopf.AdmissionError, match=r"metadata\.name: WorkspaceSettings must be named"):
        asyncio.run(
            check(userinfo=user("erin"), name="x", namespace="n", operation="CREATE", new={"spec": {}})
        )
    asyncio.run(
        check(userinfo=user("erin"), name="default", namespace="n", operation="CREATE", new={"spec": {}})
    )
    check_ce = adm._validate_kind("computeenvironments")
    with pytest.raises(
        kopf.AdmissionError, match=r'^spec.credentialsSecret: user "erin" cannot get secret "aws"'
    ):
        asyncio.run(
            check_ce(
                userinfo=user("erin"),
                name="e",
                namespace="n",
                operation="CREATE",
                new={"spec": {"credentialsSecret": "aws"}},
            )
        )


def validate_ce(operation: str, old: dict[str, Any] | None, spec: dict[str, Any], who: str) -> None:
    check = adm._validate_kind("computeenvironments")
    asyncio.run(
        check(
            userinfo=user(who),
            name="gpu",
            namespace="team-a",
            operation=operation,
            old=old,
            new={"spec": spec},
        )
    )


def test_power_fields_need_create_pods(api: FakeApi) -> None:
    spec = {"serviceAccountName": "ci", "storage": {"driver": "fuse", "fuseImage": "evil:1"}}
    with pytest.raises(kopf.AdmissionError) as exc:
        validate_ce("CREATE", None, spec, "erin")
    assert exc.value.code == 403
    assert str(exc.value).startswith(
        "spec.serviceAccountName: requires permission to create pods in namespace"
    )
    assert "spec.storage.driver: requires" in str(exc.value) and "spec.storage.fuseImage" in str(exc.value)
    assert api.reviews == [("erin", "create", "pods", None)]
    api.allowed.add(("paula", "create", "pods"))
    validate_ce("CREATE", None, spec, "paula")
    # an unrelated change to an environment that has them costs no review
    api.reviews.clear()
    validate_ce("UPDATE", {"spec": spec}, {**spec, "region": "eu-west-1"}, "erin")
    assert api.reviews == []


def test_placement_beyond_the_environment_needs_create_pods(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "nodeSelector": {"pool": "cpu"},
        "allowedNodeSelectors": {"pool": ["gpu"]},
        "allowedTolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }

    async def environment(namespace: str, name: str) -> Any:
        return env if name == "known-env" else None

    monkeypatch.setattr(adm, "_environment_spec", environment)
    ok = studio(
        computeEnvironment="known-env",
        nodeSelector={"pool": "gpu"},
        tolerations=[{"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}],
    )
    validate("CREATE", None, ok, "alice")
    assert api.reviews == []
    bad = studio(computeEnvironment="known-env", nodeSelector={"pool": "control-plane"})
    with pytest.raises(kopf.AdmissionError) as exc:
        validate("CREATE", None, bad, "alice")
    assert exc.value.code == 403 and str(exc.value).startswith(
        'spec.nodeSelector["pool"]: "control-plane" is neither the nodeSelector of ComputeEnvironment '
        '"known-env" nor in its allowedNodeSelectors; choosing other placement requires permission to '
        'create pods in namespace "team-a" (user "alice" may not)'
    )
    # moving to an environment that does not exist re-checks the whole placement
    with pytest.raises(kopf.AdmissionError, match='ComputeEnvironment "gone" does not exist'):
        validate("UPDATE", ok, changed(ok, lambda b: b["spec"].update(computeEnvironment="gone")), "alice")
    api.allowed.add(("alice", "create", "pods"))
    validate("CREATE", None, bad, "alice")


def test_private_is_the_creators(api: FakeApi) -> None:
    old = studio(private=True)
    api.allowed.add(("erin", "configure", "studios"))
    with pytest.raises(kopf.AdmissionError) as exc:
        validate("UPDATE", old, studio(private=False), "erin")
    assert exc.value.code == 403 and str(exc.value).startswith("spec.private: only its creator")
    validate("UPDATE", old, studio(private=False), "alice")


def test_launcher_cannot_touch_finalizers(api: FakeApi) -> None:
    old = studio()
    with pytest.raises(
        kopf.AdmissionError, match=r"changing metadata\.finalizers requires the studios-maintain"
    ):
        validate("UPDATE", old, changed(old, lambda b: b["metadata"]["finalizers"].clear()), "bob")
    validate("UPDATE", old, changed(old, lambda b: b["metadata"]["finalizers"].clear()), "alice")


def test_no_client_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adm, "_state", adm._State())
    old = studio()
    with pytest.raises(kopf.AdmissionError, match="still starting"):
        validate("UPDATE", old, changed(old, lambda b: b["spec"]["template"].update(image="x")), "bob")


# ---------------------------------------------------------------- serving


def test_local_certificates(tmp_path: Path) -> None:
    files = adm.ensure_local_certificates(tmp_path, "127.0.0.1")
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    assert files.key.stat().st_mode & 0o077 == 0
    before = files.cert.read_bytes()
    assert adm.ensure_local_certificates(tmp_path, "127.0.0.1").cert.read_bytes() == before  # reused
    adm.ensure_local_certificates(tmp_path, "::1")
    assert files.cert.read_bytes() != before  # another host: a new certificate


def test_configure_admission_modes(tmp_path: Path) -> None:
    registry = kopf.OperatorRegistry()
    settings = kopf.OperatorSettings()
    assert adm.configure_admission(settings, "none", "127.0.0.1", 0, tmp_path, registry=registry) is None
    assert settings.admission.server is None and not registry._webhooks.get_all_handlers()

    server = adm.configure_admission(settings, "local", "127.0.0.1", 0, tmp_path / "local", registry=registry)
    assert isinstance(server, kopf.WebhookServer) and settings.admission.server is server
    assert settings.admission.managed == "studios.dev"
    assert server.addr == "127.0.0.1" and server.host == "127.0.0.1" and server.port is None
    assert server.cafile and Path(server.cafile).exists()
    ids = sorted(h.id for h in registry._webhooks.get_all_handlers())
    assert ids == sorted(
        [
            "mutate-studio",
            "validate-studio",
            "validate-computeenvironment",
            "validate-datalink",
            "validate-workspacesettings",
        ]
    )
    for handler in registry._webhooks.get_all_handlers():
        assert (
            not handler.ignore_failures and not handler.side_effects
        )  # failurePolicy Fail, sideEffects None
        assert sorted(handler.operations or []) == ["CREATE", "UPDATE"]
    adm.configure_admission(settings, "local", "127.0.0.1", 0, tmp_path / "local", registry=registry)
    assert len(registry._webhooks.get_all_handlers()) == 5  # idempotent

    mounted = tmp_path / "tls"
    mounted.mkdir()
    server = adm.configure_admission(
        settings, "cluster", "studio-operator.ops.svc", 9443, mounted, registry=kopf.OperatorRegistry()
    )
    assert server is not None and server.addr == "0.0.0.0" and server.host == "studio-operator.ops.svc"
    assert server.certfile == str(mounted / "tls.crt") and server.cafile is None
    assert settings.admission.managed is None

    with pytest.raises(ValueError, match="webhook mode"):
        adm.configure_admission(settings, "tunnel", "x", 0, tmp_path)


def test_webhook_server_reads_reviews_beyond_one_mebibyte() -> None:
    """aiohttp refuses bodies over 1 MiB (413) unless told otherwise: the old and new object of a
    large studio are more than that."""
    import aiohttp

    seen: list[int] = []

    async def fn(data: Any, **_: Any) -> dict[str, Any]:
        seen.append(len(data["request"]["object"]["blob"]))
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"allowed": True}}

    async def main() -> int:
        server = adm.WebhookServer(addr="127.0.0.1", host="127.0.0.1", insecure=True)
        serving = server(fn).__aiter__()
        config = await serving.__anext__()
        review = {"request": {"uid": "1", "object": {"blob": "x" * (3 * 1024 * 1024)}}}
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{config['url']}/validate-studio", json=review) as response,
            ):
                return response.status
        finally:
            await serving.aclose()  # type: ignore[attr-defined]

    assert asyncio.run(main()) == 200
    assert seen == [3 * 1024 * 1024]
