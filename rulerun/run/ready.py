"""The jobs waiting to start and the limits they start under: a pure unit, no processes, no I/O.

A job counts against `-j` (the key "") and, if its rule says `limit:`, against the rule's own
limit or a named limit shared by every rule naming it; it starts only when there is room in
each. Jobs wait in one queue per set of keys, in the order they became ready, so taking the
jobs that fit costs one look per queue, not one per job.
"""

from __future__ import annotations

from collections import deque
from typing import Hashable, Iterable, Mapping

ALL = ""  # the key every job counts against: -j


class Limits:
    """How many jobs may run at once under each key, and how many do."""

    def __init__(self, jobs: int, named: Mapping[str, int]):
        self.capacity: dict[str, int] = {ALL: max(1, jobs), **named}
        self.used: dict[str, int] = {}

    def keys(self, rule) -> tuple[str, ...]:
        """The keys a job of `rule` counts against."""
        limit = rule.limit
        if limit is None:
            return (ALL,)
        if isinstance(limit, int):
            own = f"rule:{rule.index}"
            self.capacity.setdefault(own, limit)
            return (ALL, own)
        return (ALL, limit)

    def has_room(self, keys: tuple[str, ...]) -> bool:
        return all(self.used.get(k, 0) < self.capacity[k] for k in keys)

    def take(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self.used[key] = self.used.get(key, 0) + 1

    def give(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self.used[key] -= 1

    @property
    def full(self) -> bool:
        return self.used.get(ALL, 0) >= self.capacity[ALL]


class ReadyQueue:
    """Jobs whose inputs are made, waiting for room under their limits."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._waiting: dict[tuple[str, ...], deque] = {}
        self._keys: dict[Hashable, tuple[str, ...]] = {}

    def add(self, job: Hashable, rule) -> None:
        keys = self._keys[job] = self.limits.keys(rule)
        self._waiting.setdefault(keys, deque()).append(job)

    def __bool__(self) -> bool:
        return any(self._waiting.values())

    def take(self) -> list:
        """The waiting jobs that fit within the limits now, in the order they became ready
        within each queue; their room is taken until `done`."""
        batch = []
        for keys, waiting in self._waiting.items():
            while waiting and self.limits.has_room(keys):
                self.limits.take(keys)
                batch.append(waiting.popleft())
            if self.limits.full:
                break
        return batch

    def done(self, job: Hashable) -> None:
        """A job taken has ended: its room is free again."""
        self.limits.give(self._keys.pop(job))

    def drop_all(self) -> Iterable:
        """Forget every waiting job (the run is stopping); returns them."""
        dropped = [job for waiting in self._waiting.values() for job in waiting]
        self._waiting.clear()
        return dropped
