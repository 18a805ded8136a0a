"""The jobs waiting to start and the limits they start under: a pure unit, no processes, no I/O.

A job counts an amount against each of its keys: its threads against `-j` (the key ""; a job
asking more than -j counts -j), one against its rule's own `limit: N`, one against a named limit
its rule joins with `limit: NAME`, and AMOUNT against each named limit its `resources:` name. It
starts only when every amount fits beside what the running jobs hold. Jobs wait in one queue per
set of amounts, in the order they became ready, so taking the jobs that fit costs one look per
queue, not one per job.
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

    def keys(self, rule, threads: int | None = None) -> tuple[tuple[str, int], ...]:
        """What a job of `rule` counts: (key, amount) for each limit it counts against;
        `threads`: the job's own, when its rule computes them per job."""
        demand = {ALL: min(threads or getattr(rule, "threads", None) or 1, self.capacity[ALL])}
        limit = rule.limit
        if isinstance(limit, int):
            own = f"rule:{rule.index}"
            self.capacity.setdefault(own, limit)
            demand[own] = 1
        elif limit is not None:
            demand[limit] = 1  # `limit: NAME` is `resources: NAME=1`
        for resource in getattr(rule, "resources", ()):
            if resource.name in self.capacity and resource.name != ALL:
                demand[resource.name] = demand.get(resource.name, 0) + resource.amount
        return tuple(demand.items())

    def has_room(self, keys: tuple[tuple[str, int], ...]) -> bool:
        return all(self.used.get(k, 0) + amount <= self.capacity[k] for k, amount in keys)

    def take(self, keys: tuple[tuple[str, int], ...]) -> None:
        for key, amount in keys:
            self.used[key] = self.used.get(key, 0) + amount

    def give(self, keys: tuple[tuple[str, int], ...]) -> None:
        for key, amount in keys:
            self.used[key] -= amount

    @property
    def full(self) -> bool:
        return self.used.get(ALL, 0) >= self.capacity[ALL]


class ReadyQueue:
    """Jobs whose inputs are made, waiting for room under their limits."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._waiting: dict[tuple[tuple[str, int], ...], deque] = {}
        self._keys: dict[Hashable, tuple[tuple[str, int], ...]] = {}
        self._rule_keys: dict[tuple[int, int | None], tuple[tuple[str, int], ...]] = {}

    def add(self, job: Hashable, rule, threads: int | None = None) -> None:
        # one tuple of keys per rule (and thread count): 100,000 jobs may wait at once
        cached = (rule.index, threads)
        keys = self._rule_keys.get(cached)
        if keys is None:
            keys = self._rule_keys[cached] = self.limits.keys(rule, threads)
        self._keys[job] = keys
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

    def upcoming(self, count: int) -> list:
        """Up to `count` waiting jobs, those likely to start next first (not taken)."""
        found = []
        for waiting in self._waiting.values():
            for job in waiting:
                if len(found) == count:
                    return found
                found.append(job)
        return found

    def done(self, job: Hashable) -> None:
        """A job taken has ended: its room is free again."""
        self.limits.give(self._keys.pop(job))

    def drop_all(self) -> Iterable:
        """Forget every waiting job (the run is stopping); returns them."""
        dropped = [job for waiting in self._waiting.values() for job in waiting]
        self._waiting.clear()
        return dropped
