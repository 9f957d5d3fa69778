"""metav1.Condition bookkeeping (pure): lastTransitionTime moves only when status flips."""

from __future__ import annotations

from typing import Any


def condition(type_: str, status: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def carry_transition_times(
    new: list[dict[str, Any]], old: list[dict[str, Any]] | None, now: str
) -> list[dict[str, Any]]:
    previous = {c.get("type"): c for c in old or []}
    out = []
    for cond in new:
        before = previous.get(cond["type"])
        if before is not None and before.get("status") == cond["status"] and before.get("lastTransitionTime"):
            cond = {**cond, "lastTransitionTime": before["lastTransitionTime"]}
        else:
            cond = {**cond, "lastTransitionTime": now}
        out.append(cond)
    return out


def find(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    for cond in conditions or []:
        if cond.get("type") == type_:
            return cond
    return None


def kstatus_conditions(
    reason: str, message: str, *, reconciling: bool, stalled: bool, generation: int
) -> list[dict[str, Any]]:
    """Ready, Reconciling and Stalled for one reconcile's outcome, so that kstatus (cli-utils),
    Flux and `kubectl wait` read every state the same way. Exactly one of the three is True:

    - Reconciling: the operator is still acting (a session starting or stopping): InProgress;
    - Stalled: nothing changes until someone acts (a configuration error, a pod that cannot start,
      a session that failed): Failed;
    - Ready otherwise: the studio has settled where its spec and lifespan put it (running, stopped
      on request, or stopped by its lifespan): Current.

    A settled state must never be Ready=False without Stalled: kstatus reads that as InProgress
    forever, and `flux` / `kubectl wait` hang until their timeout. The reason (and message) of
    the True condition is also Ready's, so `Ready`'s reason always explains the state (the REASON
    printer column reads it)."""
    if reconciling and stalled:
        raise ValueError("a studio cannot be reconciling and stalled at once")
    ready = not (reconciling or stalled)
    return [
        condition("Ready", ready, reason, message, generation),
        condition(
            "Reconciling",
            reconciling,
            reason if reconciling else "Reconciled",
            message if reconciling else "",
            generation,
        ),
        condition(
            "Stalled", stalled, reason if stalled else "NotStalled", message if stalled else "", generation
        ),
    ]
