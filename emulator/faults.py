"""Fault injection shared by every provider's data requests.

All knobs are deterministic counters so a test can say exactly which request
fails; ``random_rate`` adds a seeded random mode for soak runs. The object is live:
tests change attributes (or call :meth:`FaultConfig.set`) while the emulator runs.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields
from typing import Any

#: Fault kinds, in the order they win when several fire for one request.
KINDS: tuple[str, ...] = ("drop", "truncate", "rate_limit", "unavailable", "malformed", "slow")
#: Kinds the random mode draws from by default ("slow" is opt-in: it costs wall time).
DEFAULT_RANDOM_KINDS: tuple[str, ...] = (
    "drop",
    "truncate",
    "rate_limit",
    "unavailable",
    "malformed",
)


@dataclass
class FaultDecision:
    """What to do with one data request: sleep ``latency_s``, then apply ``kind``."""

    kind: str | None = None
    latency_s: float = 0.0
    slow_s: float = 0.0
    retry_after: int = 1
    variant: int = 0


@dataclass
class FaultConfig:
    """Live fault knobs and their counters (``*_next = -1`` means "forever").

    ``path_contains`` restricts every knob to data requests whose path contains it;
    other requests are neither faulted nor counted.
    """

    latency_ms: float = 0.0
    rate_limit_next: int = 0
    rate_limit_every: int = 0
    retry_after_seconds: int = 1
    unavailable_next: int = 0
    unavailable_every: int = 0
    drop_next: int = 0
    drop_every: int = 0
    truncate_next: int = 0
    truncate_every: int = 0
    malformed_next: int = 0
    malformed_every: int = 0
    slow_next: int = 0
    slow_seconds: float = 5.0
    random_rate: float = 0.0
    random_seed: int | None = None
    random_kinds: tuple[str, ...] = DEFAULT_RANDOM_KINDS
    path_contains: str | None = None

    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _seen: int = field(default=0, init=False, repr=False, compare=False)
    _variant: int = field(default=0, init=False, repr=False, compare=False)
    _rng: random.Random = field(
        default_factory=random.Random, init=False, repr=False, compare=False
    )
    _default_seed: int = field(default=0, init=False, repr=False, compare=False)
    applied: dict[str, int] = field(default_factory=dict, init=False, compare=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.random_seed if self.random_seed is not None else 0)

    @classmethod
    def knob_names(cls) -> list[str]:
        """Public knobs (what ``POST /_emulator/faults`` accepts)."""
        return [f.name for f in fields(cls) if f.init]

    def seed_default(self, seed: int) -> None:
        """Seed the random mode from the emulator seed when ``random_seed`` is None."""
        with self._lock:
            self._default_seed = seed
            self._rng.seed(self.random_seed if self.random_seed is not None else seed)

    def set(self, **knobs: Any) -> None:
        """Set several knobs at once; unknown names raise ``ValueError`` (typos fail loudly)."""
        names = set(self.knob_names())
        unknown = sorted(set(knobs) - names)
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(unknown)}")
        with self._lock:
            if "random_kinds" in knobs:
                kinds = tuple(knobs["random_kinds"])
                bad = sorted(set(kinds) - set(KINDS))
                if bad:
                    raise ValueError(f"unknown fault kind(s): {', '.join(bad)}")
                knobs["random_kinds"] = kinds
            for name, value in knobs.items():
                setattr(self, name, value)
            if "random_seed" in knobs:
                seed = self.random_seed if self.random_seed is not None else self._default_seed
                self._rng.seed(seed)

    def reset(self) -> None:
        """All knobs back to "no faults" and every counter to zero."""
        with self._lock:
            for f in fields(self):
                if f.init:
                    setattr(self, f.name, FaultConfig.__dataclass_fields__[f.name].default)
            self._seen = 0
            self._variant = 0
            self.applied = {}
            self._rng.seed(self._default_seed)

    def snapshot(self) -> dict[str, Any]:
        """Current knobs, requests counted and faults applied (JSON-friendly)."""
        with self._lock:
            data: dict[str, Any] = {name: getattr(self, name) for name in self.knob_names()}
            data["random_kinds"] = list(self.random_kinds)
            data["seen"] = self._seen
            data["applied"] = dict(self.applied)
            return data

    def _take_next(self, name: str) -> bool:
        """Consume one unit of a ``*_next`` counter (-1 never runs out)."""
        value = int(getattr(self, name))
        if value == 0:
            return False
        if value > 0:
            setattr(self, name, value - 1)
        return True

    def _every(self, name: str) -> bool:
        every = int(getattr(self, name, 0) or 0)
        return every > 0 and self._seen % every == 0

    def decide(self, path: str) -> FaultDecision:
        """Pick the fault (if any) for one data request and advance the counters."""
        with self._lock:
            if self.path_contains and self.path_contains not in path:
                return FaultDecision()
            self._seen += 1
            decision = FaultDecision(
                latency_s=max(0.0, float(self.latency_ms)) / 1000.0,
                retry_after=int(self.retry_after_seconds),
                slow_s=float(self.slow_seconds),
            )
            kind: str | None = None
            for candidate in KINDS:
                if self._take_next(f"{candidate}_next") or self._every(f"{candidate}_every"):
                    kind = candidate
                    break
            if (
                kind is None
                and self.random_rate > 0
                and self.random_kinds
                and self._rng.random() < self.random_rate
            ):
                kind = self._rng.choice(list(self.random_kinds))
            if kind is not None:
                self.applied[kind] = self.applied.get(kind, 0) + 1
                if kind == "malformed":
                    decision.variant = self._variant
                    self._variant += 1
            decision.kind = kind
            return decision


#: The live object is both the configuration and the injector.
FaultInjector = FaultConfig
