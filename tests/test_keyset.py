"""KeySet: the engine's per-window set of emitted keys, exact before and after it moves
to disk."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from tap_callcenter.keyset import KeySet

keys = st.tuples(st.one_of(st.text(max_size=12), st.integers(-(2**62), 2**62)))


@given(st.lists(keys, max_size=200), st.lists(keys, max_size=50), st.integers(0, 20))
@settings(max_examples=200, deadline=None)
def test_a_keyset_answers_like_a_set_before_and_after_it_spills(
    added: list, probes: list, spill_after: int
) -> None:
    model: set = set()
    keyset = KeySet(spill_after=spill_after)
    for key in added:
        assert (key in keyset) == (key in model)
        keyset.add(key)
        model.add(key)
        assert len(keyset) == len(model)
    for key in [*probes, *added]:
        assert (key in keyset) == (key in model)
    keyset.close()


_MILLION = """
import sys
from tap_callcenter.keyset import KeySet

def kib(field):
    # this process's own figures (ru_maxrss would carry the parent's peak over exec)
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith(field + ":"))

keyset = KeySet(spill_after=int(sys.argv[1]))
base = kib("VmRSS")
for n in range(1_000_000):
    keyset.add((f"1715000000.{n:07d}",))
assert len(keyset) == 1_000_000
assert ("1715000000.0999999",) in keyset and ("nope",) not in keyset
print((kib("VmHWM") - base) // 1024)
"""


def grown_mib(spill_after: int) -> int:
    """MiB a fresh process grows by holding a million keys (its own peak, VmHWM)."""
    done = subprocess.run(
        [sys.executable, "-c", _MILLION, str(spill_after)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_a_million_keys_stay_within_the_memory_of_the_spill_threshold() -> None:
    spilled, in_memory = grown_mib(50_000), grown_mib(10**9)
    # in memory, a million such keys take about 100 MiB; spilled, a few MiB
    assert in_memory > 60, in_memory
    assert spilled < 25, f"grew {spilled} MiB with the spill ({in_memory} MiB without)"
