"""SIGKILL a loaded `pfnode serve` at random instants: nothing acknowledged is lost.

The harness is ``node.bench_reliability.CrashLoop`` (also behind `pfnode bench
reliability`): three clients write through the HTTP API (signed envelopes resent
unchanged, unsigned bodies whose natural key makes a resend safe), the node is killed
and restarted on the same data directory and database, and after every kill, with the
node down, the checks run: indexes 0..n-1 with no gap and none reused, every write
answered with a receipt at its index with its hash, each client's indexes increasing,
and a full verification with every receipt replayed. The kills restart the node forked
from a server that imported the code once; the last restart is its own interpreter
(`python -m node.cli serve`), and `pfnode verify` runs at the end.

Default suite: 5 kills per backend. ``-m slow``: 200 per backend
(``PFNODE_CRASH_KILLS`` overrides the number, e.g. for a short try of the slow variant).
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.bench_reliability import CrashLoop
from node.genesis import init_demo
from tests.ledger_helpers import new_test_ledger

DEFAULT_KILLS = 5
SLOW_KILLS = 200


def crash_loop(tmp_path: Path, backend: str | None, kills: int, seed: int) -> CrashLoop:
    data = tmp_path / "data"
    init_demo(data, backend, datetime.now(UTC))
    return CrashLoop(data, backend, kills, seed=seed, mode="fork")


def test_sigkilled_node_loses_no_acknowledged_write(
    tmp_path: Path, backend: str | None, record_property: pytest.RecordProperty
) -> None:
    loop = crash_loop(tmp_path, backend, DEFAULT_KILLS, seed=5)
    figures = loop.run()
    record_property("crash_loop", figures.summary())
    assert figures.kills == DEFAULT_KILLS
    assert figures.verifications == DEFAULT_KILLS + 2  # after each kill, at the end, the CLI
    assert figures.acknowledged >= DEFAULT_KILLS  # the load really ran between kills
    assert figures.entries >= figures.acknowledged - figures.duplicates
    assert all(not c.errors for c in loop.clients)


@pytest.mark.slow
def test_sigkilled_node_loses_no_acknowledged_write_200_times(
    tmp_path: Path, backend: str | None, record_property: pytest.RecordProperty
) -> None:
    kills = int(os.environ.get("PFNODE_CRASH_KILLS", SLOW_KILLS))
    loop = crash_loop(tmp_path, backend, kills, seed=11)
    figures = loop.run()
    record_property("crash_loop", figures.summary())
    assert figures.kills == kills
    assert figures.verifications == kills + 2
    assert figures.acknowledged >= kills


def test_health_reads_during_commits_never_fail_a_block(tmp_path: Path) -> None:
    """Found by the crash loop, which polls /healthz while the clients write: the health
    probe's fresh read of the head, finishing after the sequencer appended, put the older
    head back into the writer's cache, and the next block failed ("the writer's tree edge
    is at 2361, the head at 2360"): a 503 and a full replay. Here a thread reads the head
    as /healthz does while blocks are appended; before the fix about one append in a
    hundred failed."""
    t = new_test_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            t.ledger.head(fresh=True)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        for i in range(300):
            t.append(1, start=i)  # raises StorageError if the cached head went back
    finally:
        stop.set()
        prober.join()
    assert t.ledger.size == 300
    t.ledger.close()
