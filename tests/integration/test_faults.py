"""Faults under a running node: each gives a clear error, never a half-written block, and
the node recovers by itself when the cause goes, losing nothing it acknowledged.

How each fault is made (real mechanisms, no mocks):

- **Disk full**: the SQLite ledger lives on a tmpfs mounted for the test
  (``mount -t tmpfs -o size=16m``); a filler file takes every free byte. Needs root (CI
  runs as root on this machine); elsewhere the test skips with the reason.
- **Read-only database file**: ``chattr +i`` on the database and its WAL. (``chmod 0444``
  does not stop root, and a file already open stays writable through its descriptor;
  the immutable flag stops writes through open descriptors too.) Skips where the file
  system has no immutable flag.
- **Database gone mid-request** (PostgreSQL): a trigger stalls the block insert
  (``pg_sleep``, so the request is provably inside the commit); the database then stops
  accepting connections (``ALTER DATABASE ... ALLOW_CONNECTIONS false``) and every
  backend of the node is terminated (``pg_terminate_backend``): the shared server keeps
  running, only this test's database goes away. Then it comes back.
- **Sessions dropped** (PostgreSQL): every backend of the node terminated at once, the
  writer lock's session included, as a database restart or a network cut would.
- **Clock skew**: an envelope signed outside the node's +-5 min window, both ways; and a
  node whose own clock runs 10 minutes ahead (a fake clock: see the last test's docstring
  for what that means and what it does not).

After each: the blocks are whole (entries, receipts and ``entry_count`` agree, indexes
contiguous), the ledger verifies with every receipt replayed, and every write that was
answered 201 is at its index with its hash.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from chain.entries import make_entry
from chain.storage import Ledger, normalise_url
from node.genesis import NodeFiles, init_demo
from tests.conftest import PG_URL
from tests.integration.cluster_helpers import ServeProcess, tokens
from tests.integration.test_cluster import TODAY, auth, setup_story, verify_all
from tests.unit.api.story import NOW
from tests.unit.api.story import running_story as in_process_story

PROBLEM = "application/problem+json"
STORAGE = "https://pfnode.dev/problems/storage-unavailable"
DEADLINE_S = 60.0  # generous: a recovery on a busy two-core machine


# --------------------------------------------------------------------------- helpers


def rate_body(day_offset: int) -> dict[str, str]:
    day = (TODAY - timedelta(days=day_offset)).isoformat()
    return {"date": day, "base": "EUR", "quote": "USD", "rate": "1.0850"}


@dataclass
class Writes:
    """The regulator's reference rates, one per day back from today; what was answered 201."""

    base: str
    token: str
    acknowledged: dict[str, int] = field(default_factory=dict)  # entry hash -> index
    next_day: int = 0

    def post(self, body: dict[str, str], timeout: float = DEADLINE_S) -> httpx.Response:
        answer = httpx.post(
            f"{self.base}/v1/fx-rates", json=body, headers=auth(self.token), timeout=timeout
        )
        if answer.status_code == 201:
            self.acknowledged[answer.json()["entry_hash"]] = answer.json()["index"]
        return answer

    def new(self) -> dict[str, str]:
        self.next_day += 1
        return rate_body(self.next_day)

    def until_accepted(self, body: dict[str, str]) -> tuple[httpx.Response, float]:
        """Resend `body` unchanged while the node answers 503; (answer, seconds taken)."""
        start = time.monotonic()
        while True:
            answer = self.post(body)
            if answer.status_code != 503 or time.monotonic() - start > DEADLINE_S:
                return answer, time.monotonic() - start
            assert_problem(answer, 503)
            time.sleep(0.1)


def assert_problem(answer: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM), answer.headers
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == status and problem["detail"]
    if type_ is not None:
        assert problem["type"] == type_, problem
    return problem


def assert_whole(data: Path, url: str, acknowledged: dict[str, int]) -> int:
    """No half-written block; every acknowledged write at its index; the ledger verifies."""
    with Ledger.open(url) as ledger, ledger.engine.connect() as conn:
        blocks, counted, last = conn.execute(
            sa.text(
                "SELECT count(*), coalesce(sum(entry_count), 0), max(height) FROM ledger_blocks"
            )
        ).one()
        entries, low, high = conn.execute(
            sa.text("SELECT count(*), min(idx), max(idx) FROM ledger_entries")
        ).one()
        receipts = conn.execute(sa.text("SELECT count(*) FROM ledger_receipts")).scalar()
        head = ledger.head()
        assert head is not None and head.height == last == blocks - 1
        assert entries == counted == receipts == head.log_size
        assert (low, high) == (0, entries - 1)
        for entry_hash, index in acknowledged.items():
            stored = ledger.get_entry(bytes.fromhex(entry_hash))
            assert stored is not None, f"answered 201 but lost: {entry_hash}"
            assert stored.index == index
    assert verify_all(data, url) == entries
    return int(entries)


def started(data: Path, db: str | None) -> ServeProcess:
    node = ServeProcess(data, db).start()
    node.wait_healthy(DEADLINE_S)
    return node


def node_log(node: ServeProcess) -> str:
    return (node.data / f"serve-{node.port}.log").read_text(errors="replace")


def wait_healthy_leader(node: ServeProcess) -> float:
    start = time.monotonic()
    health: Any = None
    while time.monotonic() - start < DEADLINE_S:
        try:
            health = httpx.get(f"{node.base}/healthz", timeout=5).json()
            if health.get("role") == "leader" and health.get("status") == "ok":
                return time.monotonic() - start
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"not a healthy leader after {DEADLINE_S} s: {health}")


# --------------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for this test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (1 << 20, 1 << 12):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def test_disk_full_answers_503_then_recovers_when_space_returns(
    small_disk: Path, record_property: pytest.RecordProperty
) -> None:
    data = small_disk / "data"
    init_demo(data, None, datetime.now(UTC))
    url = f"sqlite:///{data / 'ledger.db'}"
    node = started(data, None)
    try:
        setup_story(node.base, tokens(data))
        writes = Writes(node.base, tokens(data)["REGULATOR"])
        assert writes.post(writes.new()).status_code == 201
        filler = fill(small_disk)
        accepted_on_full_disk = 0
        while True:  # the WAL may still have room for a few blocks
            refused_body = writes.new()
            refused = writes.post(refused_body)
            if refused.status_code != 201 or accepted_on_full_disk == 500:
                break
            accepted_on_full_disk += 1
        assert "not recorded" in assert_problem(refused, 503, STORAGE)["detail"]
        assert "database or disk is full" in node_log(node)  # the cause, for the operator
        reads = httpx.get(f"{node.base}/v1/loans", headers=auth(tokens(data)["BANK-A"]))
        assert reads.status_code == 200
        assert writes.post(writes.new()).status_code == 503  # still full: still refused
        filler.unlink()
        answer, took = writes.until_accepted(refused_body)  # the same write, sent again
        assert answer.status_code == 201, answer.text
        assert writes.post(writes.new()).status_code == 201
        record_property(
            "disk_full",
            f"503 after {accepted_on_full_disk} more blocks fit; accepted {took:.2f} s after",
        )
    finally:
        node.stop()
    assert assert_whole(data, url, writes.acknowledged) == 3 + len(writes.acknowledged)


# --------------------------------------------------------------------------- read-only file


def set_immutable(paths: list[Path], on: bool) -> None:
    done = subprocess.run(
        ["chattr", "+i" if on else "-i", *map(str, paths)], capture_output=True, text=True
    )
    if done.returncode != 0:
        if on:
            pytest.skip(f"no immutable flag on this file system: {done.stderr.strip()}")
        raise RuntimeError(done.stderr)


def test_read_only_database_refuses_writes_serves_reads_and_recovers(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    data = tmp_path / "data"
    init_demo(data, None, datetime.now(UTC))
    url = f"sqlite:///{data / 'ledger.db'}"
    node = started(data, None)
    files = [p for p in (data / "ledger.db", data / "ledger.db-wal") if p.exists()]
    pid = node.proc.pid if node.proc else None
    try:
        tok = tokens(data)
        setup_story(node.base, tok)
        writes = Writes(node.base, tok["REGULATOR"])
        assert writes.post(writes.new()).status_code == 201
        size = httpx.get(f"{node.base}/healthz").json()["log_size"]
        set_immutable(files, True)
        try:
            refused_body = writes.new()
            assert_problem(writes.post(refused_body), 503, STORAGE)
            assert_problem(writes.post(writes.new()), 503, STORAGE)
            loans = httpx.get(f"{node.base}/v1/loans", headers=auth(tok["BANK-A"]))
            assert loans.status_code == 200
            block = httpx.get(f"{node.base}/v1/ledger/blocks/0", headers=auth(tok["REGULATOR"]))
            assert block.status_code == 200
            assert httpx.get(f"{node.base}/healthz").json()["log_size"] == size
        finally:
            set_immutable(files, False)
        answer, took = writes.until_accepted(refused_body)
        assert answer.status_code == 201, answer.text
        assert node.proc is not None and node.proc.pid == pid and node.proc.poll() is None
        record_property("read_only", f"503 while immutable; accepted {took:.2f} s after")
    finally:
        node.stop()
    assert assert_whole(data, url, writes.acknowledged) == 3 + len(writes.acknowledged)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_node(tmp_path: Path, pg_server: str) -> Iterator[tuple[Path, str, str]]:
    """A demo node's data directory on a database of its own: (data, url, database name)."""
    admin = sa.create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    name = f"{pg_server.rsplit('/', 1)[1]}_faults"
    url = f"{pg_server.rsplit('/', 1)[0]}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    data = tmp_path / "data"
    init_demo(data, url, datetime.now(UTC))
    try:
        yield data, url, name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def admin_sql(sql: str, **params: Any) -> Any:
    engine = sa.create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text(sql), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def terminate_backends(name: str) -> int:
    rows = admin_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = :db AND pid <> pg_backend_pid()",
        db=name,
    )
    return len(rows)


def holds_writer_lock(name: str) -> bool:
    """Whether a session on database `name` holds the writer's advisory lock."""
    rows = admin_sql(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = :db",
        db=name,
    )
    return any(r[0].startswith("pfnode-writer") for r in rows)


@pytest.mark.postgres
def test_dropped_sessions_are_reopened_and_the_writer_lock_taken_again(
    pg_node: tuple[Path, str, str], record_property: pytest.RecordProperty
) -> None:
    data, url, name = pg_node
    node = started(data, url)
    try:
        writes = Writes(node.base, tokens(data)["REGULATOR"])
        setup_story(node.base, tokens(data))
        assert writes.post(writes.new()).status_code == 201
        assert holds_writer_lock(name)
        assert terminate_backends(name) >= 1  # the writer lock's session among them
        answer, took = writes.until_accepted(writes.new())
        assert answer.status_code == 201, answer.text
        healthy_after = wait_healthy_leader(node)
        assert holds_writer_lock(name)
        assert writes.post(writes.new()).status_code == 201
        record_property(
            "sessions_dropped",
            f"write accepted {took:.2f} s after; healthy leader with the lock "
            f"{healthy_after:.2f} s after that",
        )
    finally:
        node.stop()
    assert assert_whole(data, normalise_url(url), writes.acknowledged) == 3 + len(
        writes.acknowledged
    )


STALL = """
CREATE FUNCTION pfnode_fault_stall() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$;
CREATE TRIGGER pfnode_fault_stall BEFORE INSERT ON ledger_blocks
FOR EACH ROW EXECUTE FUNCTION pfnode_fault_stall();
"""
UNSTALL = "DROP TRIGGER pfnode_fault_stall ON ledger_blocks; DROP FUNCTION pfnode_fault_stall();"


def on_database(url: str, sql: str) -> None:
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def wait_stalled(name: str) -> None:
    """Until a backend of the node sleeps in the trigger: the block insert is in flight."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        rows = admin_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = :db AND wait_event = 'PgSleep'",
            db=name,
        )
        if rows:
            return
        time.sleep(0.05)
    raise AssertionError("the block insert never reached the stall")


@pytest.mark.postgres
def test_database_gone_mid_request_answers_503_and_recovers_when_it_returns(
    pg_node: tuple[Path, str, str], record_property: pytest.RecordProperty
) -> None:
    data, url, name = pg_node
    node = started(data, url)
    tok = tokens(data)
    try:
        writes = Writes(node.base, tok["REGULATOR"])
        setup_story(node.base, tok)
        assert writes.post(writes.new()).status_code == 201
        on_database(url, STALL)
        in_flight_body = writes.new()
        answers: list[httpx.Response] = []
        sender = threading.Thread(target=lambda: answers.append(writes.post(in_flight_body)))
        sender.start()
        wait_stalled(name)
        admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        terminate_backends(name)
        sender.join(DEADLINE_S)
        assert answers, "the write in flight got no answer"
        assert_problem(answers[0], 503, STORAGE)
        time.sleep(2)  # the database stays away a while: checkpoints and lock checks fail
        while_away_body = writes.new()
        assert_problem(writes.post(while_away_body), 503, STORAGE)
        reads = httpx.get(f"{node.base}/v1/loans", headers=auth(tok["BANK-A"]), timeout=30)
        assert_problem(reads, 503, STORAGE)
        admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        back = time.monotonic()
        on_database(url, UNSTALL)
        for body in (in_flight_body, while_away_body):  # each sent again, unchanged
            answer, _took = writes.until_accepted(body)
            assert answer.status_code == 201, answer.text
        recovered = time.monotonic() - back
        wait_healthy_leader(node)
        assert holds_writer_lock(name)
        reads = httpx.get(f"{node.base}/v1/loans", headers=auth(tok["BANK-A"]), timeout=30)
        assert reads.status_code == 200
        record_property(
            "database_gone", f"503 while away; both writes accepted {recovered:.2f} s after"
        )
    finally:
        node.stop()
        admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert assert_whole(data, normalise_url(url), writes.acknowledged) == 3 + len(
        writes.acknowledged
    )


# --------------------------------------------------------------------------- clock skew


def envelope(data: Path, org: str, body: dict[str, Any], ts: datetime) -> bytes:
    key = NodeFiles(data).org_key(org)
    assert key is not None
    return make_entry(key, "fx.rate", body, ts).raw


def test_refuses_envelope_signed_outside_the_clock_window(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    data = tmp_path / "data"
    init_demo(data, None, datetime.now(UTC))
    node = started(data, None)
    token = tokens(data)["REGULATOR"]
    headers = {**auth(token), "content-type": "application/json"}
    try:
        size = httpx.get(f"{node.base}/healthz").json()["log_size"]
        for skew in (timedelta(minutes=-6), timedelta(minutes=6)):
            raw = envelope(data, "REGULATOR", rate_body(1), datetime.now(UTC) + skew)
            refused = httpx.post(f"{node.base}/v1/entries", content=raw, headers=headers)
            problem = assert_problem(refused, 422)
            assert problem["errors"][0]["field"] == "entry.ts"
            assert "window is +-300s" in problem["errors"][0]["message"]
        assert httpx.get(f"{node.base}/healthz").json()["log_size"] == size  # nothing added
        raw = envelope(data, "REGULATOR", rate_body(1), datetime.now(UTC) - timedelta(minutes=4))
        accepted = httpx.post(f"{node.base}/v1/entries", content=raw, headers=headers)
        assert accepted.status_code == 201, accepted.text
        record_property("clock_window", "+-6 min refused 422 entry.ts; -4 min accepted")
    finally:
        node.stop()
    with Ledger.open(f"sqlite:///{data / 'ledger.db'}") as ledger:
        assert ledger.size == size + 1


async def test_node_with_a_clock_ahead_refuses_true_time_and_recovers_when_set_right(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    """A node whose own clock runs 10 minutes ahead (a broken NTP): what it signs itself
    carries its (wrong) time and is accepted; an envelope signed at the true time by an
    institution's HSM is refused as outside the window, and the refusal names entry.ts and
    the node's clock, which is how the operator finds the fault. When the clock is set
    right (it steps back 10 minutes), envelopes are accepted again, and block time does not
    go backwards: blocks keep the last block's time until the clock passes it, so the ledger
    still verifies. (A real process cannot be given another clock without faketime; the
    node takes its clock as a parameter, so this runs the same code in-process.)"""
    async with in_process_story(tmp_path / "data") as story:
        clock = story.node.clock
        clock.current = NOW + timedelta(minutes=10)  # type: ignore[attr-defined]
        own = await story.post("REGULATOR", "/v1/fx-rates", rate_body(1))
        assert own.status_code == 201, own.text
        skewed_height = own.json()["height"]
        raw = envelope(story.data, "REGULATOR", rate_body(2), NOW)
        refused = await story.post_raw("REGULATOR", "/v1/entries", raw)
        problem = assert_problem(refused, 422)
        assert problem["errors"][0]["field"] == "entry.ts"
        assert "-600.000s from the node's clock" in problem["errors"][0]["message"]
        clock.current = NOW + timedelta(seconds=5)  # type: ignore[attr-defined]
        accepted = await story.post_raw("REGULATOR", "/v1/entries", raw)
        assert accepted.status_code == 201, accepted.text
        later = await story.post("REGULATOR", "/v1/fx-rates", rate_body(3))
        assert later.status_code == 201, later.text
        times = []
        for height in (skewed_height, accepted.json()["height"], later.json()["height"]):
            block = await story.get("REGULATOR", f"/v1/ledger/blocks/{height}")
            times.append(block.json()["header"]["time"])
        assert times[0] == times[1] == times[2]  # clamped to the skewed block's time
        record_property("clock_ahead", "true-time envelope 422 entry.ts; accepted once set right")
    url = f"sqlite:///{tmp_path / 'data' / 'ledger.db'}"
    with Ledger.open(url) as ledger:
        size = ledger.size
    assert verify_all(tmp_path / "data", url) == size
