"""RBAC from one place (pure): the workspace roles users are bound to, the operator's own role,
and the per-studio connect grant.

`python -m studio_operator.rbac <outdir>` writes `user-roles.yaml` and `operator-role.yaml`;
`make rbac` puts them in manifests/rbac/ and the chart, and a unit test fails when they drift.

The user roles list their rules explicitly (each role repeats the rules of the one below it)
rather than using `aggregationRule`: the result does not depend on the controller-manager's
aggregation controller, `kubectl describe clusterrole` shows all of it, and nobody can widen a
role by creating another ClusterRole that carries the aggregation label.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .api.common import GROUP
from .resources import names

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
PART_OF = {"app.kubernetes.io/part-of": "studio-operator"}
DESCRIPTION = "kubernetes.io/description"

VIEW = "studios-view"
CONNECT = "studios-connect"
LAUNCH = "studios-launch"
MAINTAIN = "studios-maintain"
ADMIN = "studios-admin"
USER_ROLES: tuple[str, ...] = (VIEW, CONNECT, LAUNCH, MAINTAIN, ADMIN)  # lowest first
# Subjects bound to one of these (as a ClusterRole) may connect to non-private studios.
CONNECT_ROLES: frozenset[str] = frozenset(USER_ROLES[USER_ROLES.index(CONNECT) :])

# The custom verb that separates "configure a studio" (maintain) from "start/stop it" (launch);
# the admission webhook checks it with a SubjectAccessReview.
CONFIGURE_VERB = "configure"

OPERATOR_ROLE = "studio-operator"
OPERATOR_WEBHOOKS_ROLE = "studio-operator-webhooks"
MANAGED_WEBHOOK_CONFIG = "studios.dev"  # settings.admission.managed in local mode

READ = ["get", "list", "watch"]
WORKSPACE_KINDS = ["computeenvironments", "datalinks", "workspacesettings"]
# Subresources no user role may grant: connect is granted per studio by the operator.
NEVER_GRANTED = frozenset({"pods/portforward", "pods/exec", "pods/attach", "services/proxy"})


def rule(
    groups: Sequence[str], resources: Sequence[str], verbs: Sequence[str], names_: Sequence[str] = ()
) -> dict[str, Any]:
    out: dict[str, Any] = {"apiGroups": list(groups), "resources": list(resources)}
    if names_:
        out["resourceNames"] = list(names_)
    out["verbs"] = list(verbs)
    return out


# What each role adds to the one below it.
_ADDED_RULES: dict[str, list[dict[str, Any]]] = {
    VIEW: [
        rule([GROUP], ["studios", "studios/status", *WORKSPACE_KINDS, "datalinks/status"], READ),
    ],
    CONNECT: [],  # connect itself is a per-studio Role the operator grants to holders of this role
    LAUNCH: [
        # start/stop; the webhook limits launch to spec.state and two annotations
        rule([GROUP], ["studios"], ["update", "patch"]),
    ],
    MAINTAIN: [
        rule([GROUP], ["studios"], ["create", "delete", "deletecollection", CONFIGURE_VERB]),
    ],
    ADMIN: [
        rule([GROUP], WORKSPACE_KINDS, ["create", "update", "patch", "delete", "deletecollection"]),
    ],
}

_DESCRIPTIONS = {
    VIEW: "Read studios, compute environments, data links and workspace settings.",
    CONNECT: "studios-view, and connect to non-private studios (granted per studio by the operator).",
    LAUNCH: "studios-connect, and start/stop studios (spec.state, restart and session-lifespan annotations).",
    MAINTAIN: "studios-launch, and create, configure and delete studios.",
    ADMIN: "studios-maintain, and manage compute environments, data links and workspace settings.",
}


def user_role_rules(role: str) -> list[dict[str, Any]]:
    """All rules of `role`: its own plus those of every role below it."""
    upto = USER_ROLES[: USER_ROLES.index(role) + 1]
    return [dict(r) for name in upto for r in _ADDED_RULES[name]]


def _cluster_role(name: str, rules: list[dict[str, Any]], description: str) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": dict(PART_OF), "annotations": {DESCRIPTION: description}},
        "rules": rules,
    }


def user_cluster_roles() -> list[dict[str, Any]]:
    return [_cluster_role(r, user_role_rules(r), _DESCRIPTIONS[r]) for r in USER_ROLES]


def operator_cluster_role() -> dict[str, Any]:
    """The operator's own permissions, least privilege, no wildcards. Each line says who needs it."""
    rules = [
        # kopf: watch studios, add its finalizer and progress annotations (never the spec)
        rule([GROUP], ["studios"], ["get", "list", "watch", "patch", "update"]),
        rule([GROUP], ["studios/status"], ["get", "patch", "update"]),
        # inputs of a session; data links also get kopf's annotations and a Ready status
        rule([GROUP], WORKSPACE_KINDS, READ),
        rule([GROUP], ["datalinks"], ["patch"]),
        rule([GROUP], ["datalinks/status"], ["patch"]),
        # the session itself
        rule([""], ["pods"], ["get", "list", "watch", "create", "delete"]),
        rule(
            [""],
            ["services", "persistentvolumeclaims"],
            ["get", "list", "watch", "create", "patch", "delete"],
        ),
        # csi mounts: statically provisioned volumes (cluster-scoped)
        rule([""], ["persistentvolumes"], ["get", "list", "watch", "create", "patch", "delete"]),
        # credentials for checking data links (never copied anywhere)
        rule([""], ["secrets"], ["get"]),
        rule([""], ["events"], ["create", "patch"]),
        rule(["events.k8s.io"], ["events"], ["create", "patch"]),
        # the per-studio connect grant, and the bindings that decide who gets it
        rule(
            [RBAC_GROUP],
            ["roles", "rolebindings"],
            ["get", "list", "watch", "create", "patch", "update", "delete"],
        ),
        rule([RBAC_GROUP], ["clusterrolebindings"], READ),
        # Kubernetes' escalation check: a Role may only grant what its creator holds
        rule([""], ["pods/portforward"], ["create", "get"]),
        rule([""], ["services/proxy"], ["get", "create"]),
        # admission: "may this user configure studios?", and who the operator itself is
        rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
        rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"]),
        # kopf: resource discovery and namespace patterns
        rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], READ),
        rule([""], ["namespaces"], READ),
        # high availability (--leader-election): one replica holds the Lease and acts
        rule(["coordination.k8s.io"], ["leases"], ["get", "create", "update"]),
        # kopf peering (only used when a peering object exists; standalone otherwise)
        rule(
            ["kopf.dev"], ["clusterkopfpeerings", "kopfpeerings"], ["get", "list", "watch", "create", "patch"]
        ),
    ]
    return _cluster_role(OPERATOR_ROLE, rules, "The studio operator's own permissions.")


CLUSTER_SCOPED_RESOURCES = frozenset(
    {
        "persistentvolumes",
        "subjectaccessreviews",
        "selfsubjectreviews",
        "customresourcedefinitions",
        "namespaces",
        "clusterrolebindings",
        "clusterkopfpeerings",
    }
)


def operator_cluster_scope_role() -> dict[str, Any]:
    """A namespaced install (chart value operator.watchNamespaces) binds the operator's role per
    namespace with RoleBindings; these rules about cluster-scoped resources stay cluster-wide."""
    rules = []
    for r in operator_cluster_role()["rules"]:
        kept = [res for res in r["resources"] if res in CLUSTER_SCOPED_RESOURCES]
        if kept:
            rules.append({**r, "resources": kept})
    return _cluster_role(
        f"{OPERATOR_ROLE}-cluster-scope",
        rules,
        "The studio operator's permissions on cluster-scoped resources (namespaced installs).",
    )


def operator_webhooks_cluster_role(config_name: str = MANAGED_WEBHOOK_CONFIG) -> dict[str, Any]:
    """Only for self-managed webhooks (local mode): kopf creates and patches its configurations.

    Kept separate because write access to webhook configurations is cluster-wide power; when the
    chart ships the configurations, do not bind this. `create` cannot be limited by name.
    """
    kinds = ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"]
    rules = [
        rule(["admissionregistration.k8s.io"], kinds, ["create"]),
        rule(["admissionregistration.k8s.io"], kinds, ["get", "patch", "update"], [config_name]),
    ]
    return _cluster_role(
        OPERATOR_WEBHOOKS_ROLE, rules, "Lets the studio operator manage its own webhook configurations."
    )


WEBHOOK_CERT_ROLE = "studio-operator-webhook-cert"
SHIPPED_WEBHOOK_CONFIG = "studio-operator"  # the configurations manifests/default ships
WEBHOOK_CERT_SECRET = "studio-operator-webhook-tls"


def operator_webhook_cert_roles(
    config_name: str = SHIPPED_WEBHOOK_CONFIG, secret: str = WEBHOOK_CERT_SECRET
) -> list[dict[str, Any]]:
    """For --webhook-cert-secret (manifests/default): a ClusterRole to put the CA into exactly the
    shipped webhook configurations, and a Role (bound in the operator's namespace) for its Secret.
    `create` cannot be limited by name; `get` on secrets is in the operator's role already."""
    kinds = ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"]
    cluster_role = _cluster_role(
        WEBHOOK_CERT_ROLE,
        [rule(["admissionregistration.k8s.io"], kinds, ["get", "patch"], [config_name])],
        "Lets the studio operator inject its webhook CA into its own webhook configurations.",
    )
    role = {
        "apiVersion": RBAC_API_VERSION,
        "kind": "Role",
        "metadata": {
            "name": WEBHOOK_CERT_ROLE,
            "labels": dict(PART_OF),
            "annotations": {DESCRIPTION: "Lets the studio operator keep its webhook certificate Secret."},
        },
        "rules": [
            rule([""], ["secrets"], ["create"]),
            rule([""], ["secrets"], ["get", "update"], [secret]),
        ],
    }
    return [cluster_role, role]


# ---------------------------------------------------------------- per-studio connect grant


def service_proxy_names(service: str, ports: Iterable[int | str] = ()) -> list[str]:
    """The names `services/proxy` is authorized against: `[scheme:]name[:port]` as in the URL."""
    forms = [service, f"http:{service}:"]
    for port in ports:
        forms += [f"{service}:{port}", f"http:{service}:{port}"]
    return list(dict.fromkeys(forms))


def connect_role(
    studio_name: str,
    namespace: str,
    pod_name: str,
    service_name: str,
    labels: Mapping[str, str],
    owner_ref: Mapping[str, Any],
    *,
    ports: Iterable[int | str] = (),
) -> dict[str, Any]:
    """Port-forward to (or proxy) exactly this session's pod and service, nothing else.

    `get` on the pod and service lets `kubectl port-forward pod/<pod>` resolve its target;
    `ports` (e.g. 8888 and "http") adds the `name:port` forms a proxy URL may use.
    """
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "Role",
        "metadata": _grant_metadata(studio_name, namespace, labels, owner_ref),
        "rules": [
            rule([""], ["pods"], ["get"], [pod_name]),
            rule([""], ["pods/portforward"], ["create", "get"], [pod_name]),
            rule([""], ["services"], ["get"], [service_name]),
            rule([""], ["services/proxy"], ["get", "create"], service_proxy_names(service_name, ports)),
        ],
    }


def connect_binding(
    studio_name: str,
    namespace: str,
    labels: Mapping[str, str],
    owner_ref: Mapping[str, Any],
    subjects: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    """The RoleBinding of the connect Role; None (no binding: nobody connects) when no subjects."""
    if not subjects:
        return None
    role = names.connect_role_name(studio_name)
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "RoleBinding",
        "metadata": _grant_metadata(studio_name, namespace, labels, owner_ref),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role},
        "subjects": [dict(s) for s in subjects],
    }


def _grant_metadata(
    studio_name: str, namespace: str, labels: Mapping[str, str], owner_ref: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "name": names.connect_role_name(studio_name),
        "namespace": namespace,
        "labels": dict(labels),
        "ownerReferences": [dict(owner_ref)],
    }


_KIND_ORDER = {"User": 0, "Group": 1, "ServiceAccount": 2}


def user_subject(name: str) -> dict[str, Any]:
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": name}


def _normalize(subject: Mapping[str, Any], default_namespace: str | None) -> dict[str, Any] | None:
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str) or not name:
        return None
    if kind in ("User", "Group"):
        return {"kind": kind, "apiGroup": RBAC_GROUP, "name": name}
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or default_namespace
        if not sa_namespace:
            return None  # a cluster binding's service account without a namespace matches nobody
        return {"kind": "ServiceAccount", "name": name, "namespace": sa_namespace}
    return None


def grants_connect(binding: Mapping[str, Any]) -> bool:
    ref = binding.get("roleRef") or {}
    return bool(ref.get("kind") == "ClusterRole" and ref.get("name") in CONNECT_ROLES)


def connect_subjects(
    namespace: str,
    *,
    private: bool,
    creator: str | None,
    rolebindings: Iterable[Mapping[str, Any]],
    clusterrolebindings: Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Who may connect: a private studio's creator alone (nobody if unknown: fail closed);
    otherwise every subject bound to studios-connect or above, in this namespace or cluster-wide.
    Deduplicated and sorted so that the RoleBinding is stable (no needless writes)."""
    if private:
        return [user_subject(creator)] if creator else []
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    sources: list[tuple[Mapping[str, Any], str | None]] = []
    for rb in rolebindings:
        rb_namespace = (rb.get("metadata") or {}).get("namespace", namespace)
        if rb_namespace == namespace:
            sources.append((rb, namespace))
    sources += [(crb, None) for crb in clusterrolebindings]
    for binding, default_ns in sources:
        if not grants_connect(binding):
            continue
        for subject in binding.get("subjects") or []:
            norm = _normalize(subject, default_ns)
            if norm is not None:
                found[(norm["kind"], norm.get("namespace", ""), norm["name"])] = norm
    return [found[k] for k in sorted(found, key=lambda k: (_KIND_ORDER[k[0]], k[1], k[2]))]


# ---------------------------------------------------------------- manifests

HEADER = (
    "# Generated by `python -m studio_operator.rbac` from operator/studio_operator/rbac.py.\n"
    "# Do not edit: change the code and run `make rbac`.\n"
)


def render(objects: Iterable[Mapping[str, Any]]) -> str:
    docs = [yaml.safe_dump(dict(o), sort_keys=False, default_flow_style=False) for o in objects]
    return HEADER + "---\n" + "---\n".join(docs)


def manifests() -> dict[str, str]:
    """File name -> content, as committed under manifests/rbac/."""
    return {
        "user-roles.yaml": render(user_cluster_roles()),
        "operator-role.yaml": render([operator_cluster_role(), operator_webhooks_cluster_role()]),
    }


def write_manifests(outdir: Path | str) -> list[Path]:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in manifests().items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m studio_operator.rbac <outdir>", file=sys.stderr)
        return 2
    for path in write_manifests(args[0]):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
