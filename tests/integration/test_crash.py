"""SIGKILL a ledger writer at random instants: what it acknowledged survives, whole.

The writer runs in a forked child (no interpreter start-up per round, so the
default suite can afford 50 kills); it announces each block after its append
returned, i.e. after the commit. After every kill the ledger is reopened: it
verifies, and holds every announced block with the announced last entry.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from multiprocessing.connection import Connection

import pytest

from chain.errors import WriterLocked
from chain.log import LogWriter
from chain.storage import Ledger
from chain.verify import verify_database
from tests.ledger_helpers import TestLedger, new_test_ledger, seeded_key


def _open_writer(url: str) -> TestLedger:
    deadline = time.monotonic() + 10
    while True:
        try:
            ledger = Ledger.open(url, writer=True)
            break
        except WriterLocked:  # the killed writer's session may take a moment to end
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    keys = {o: seeded_key(f"{o}/1") for o in ("BANK-A", "BANK-B", "REGULATOR")}
    writer = LogWriter(ledger, seeded_key("REGULATOR/seq-1"))
    return TestLedger(ledger, writer, keys, ledger.genesis)


def _writer(url: str, pipe: Connection) -> None:
    t = _open_writer(url)
    start = t.ledger.size
    pipe.send(("ready", 0, ""))
    while True:
        entries = t.append(7, start=start)
        start += 7
        pipe.send(("committed", t.ledger.head().height, entries[-1].hash.hex()))
        time.sleep(0.005)  # keep the ledger small enough to verify after every kill


def kill_at_random(url: str, rounds: int, seed: int) -> int:
    new_test_ledger(url).ledger.close()
    rng = random.Random(seed)
    ctx = mp.get_context("fork")
    total = 0
    for _ in range(rounds):
        acknowledged: dict[int, str] = {}
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_writer, args=(url, sender), daemon=True)
        proc.start()
        sender.close()
        assert receiver.poll(15) and receiver.recv()[0] == "ready"
        time.sleep(rng.uniform(0.0, 0.12))
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(10)
        while True:
            try:
                word, height, last = receiver.recv()
            except EOFError:
                break
            if word == "committed":
                acknowledged[height] = last
        receiver.close()
        with Ledger.open(url) as ledger:
            verify_database(ledger)
            for height, last in acknowledged.items():
                block = ledger.get_block(height)
                assert block is not None, f"acknowledged block {height} was lost"
                assert block.entries[-1].hash.hex() == last
        total += len(acknowledged)
    return total


def test_sigkilled_writer_loses_nothing_acknowledged(db_url: str) -> None:
    assert kill_at_random(db_url, 50, seed=7) > 50


@pytest.mark.slow
def test_sigkilled_writer_loses_nothing_acknowledged_200_times(db_url: str) -> None:
    assert kill_at_random(db_url, 200, seed=11) > 200
