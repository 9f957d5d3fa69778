"""The controller runtime, free of domain kinds: store, queue, scheduler, resync, gate, Events."""

from .kinds import WatchedKind
from .queue import LATER, Later, Scheduler, WorkQueue, run_workers
from .runtime import Runtime
from .store import Body, Key, Store, StorePolicy, resource_version

__all__ = [
    "LATER",
    "Body",
    "Key",
    "Later",
    "Runtime",
    "Scheduler",
    "Store",
    "StorePolicy",
    "WatchedKind",
    "WorkQueue",
    "resource_version",
    "run_workers",
]
