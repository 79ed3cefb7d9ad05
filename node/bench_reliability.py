"""`pfnode bench reliability`: crashes survived, acknowledged writes checked, faults
recovered, hostile inputs refused, and failures found (which must be 0).

    pfnode bench reliability [--repeat KILLS] [--pg URL] [--save DIR]

Three parts, each printing what it measured, with the machine it ran on:

1. **The crash loop** (``CrashLoop``, also run by tests/integration/test_node_crash.py). One
   `pfnode serve` runs under write load from three client threads and is SIGKILLed at random
   instants (one round in ten while it is still starting: replaying the ledger, taking the
   writer lock), then restarted on the same data directory and database; ``--repeat`` kills
   per backend (SQLite, then PostgreSQL in a fresh database beside ``--pg``). The clients:

   - the insurer sends coverage notices as envelopes it signed itself (POST /v1/entries);
     a resent envelope is idempotent by (org, nonce), so a client that lost the answer in a
     crash resends the same bytes and gets the first receipt (``duplicate: true``);
   - a bank draws on the acknowledged notices (POST /v1/loans) and the regulator publishes
     reference rates (POST /v1/fx-rates), both as unsigned bodies that the node signs with a
     nonce of its own. A resent body is a new entry to the ledger; these two are safe to
     resend only because their natural key (loan_id per bank, rate per date and pair) is
     refused the second time with 409 Conflict. Such a 409 on a resend means "the first
     attempt landed but its answer was lost": counted, and checked at the end (exactly one
     entry carries that key).

   Every answer with a receipt (201, or 409 for a recorded-and-rejected entry) is an
   acknowledged write, kept by its entry hash and index. After every kill, with the node
   down: the entry indexes are 0..n-1 with no gap; every index seen before still holds the
   same hash (no index reused, nothing rewritten); every acknowledged write is at its index
   with its hash; each client's acknowledged indexes strictly increase in the order it got
   them; and the ledger verifies with every receipt replayed through the domain rules
   (``verify_database`` with a ``DomainReplayer``, what `pfnode verify` runs). At the end the
   `pfnode verify` command itself runs on the ledger.

   The node is started either as its own interpreter (``exec``: ``python -m node.cli serve``)
   or forked from a server that imported the code once (``fork``: multiprocessing's
   forkserver, the child calling ``node.cli.main(["serve", ...])``): the same command, minus
   four to twelve seconds of imports per restart on a busy two-core machine, which is what
   makes 200 kills affordable. Nothing the child touches (database, locks, threads, state)
   exists in the forkserver. The kills restart forked; the last restart, after the last
   kill, is its own interpreter (``exec_last``).

2. **Faults**: tests/integration/test_faults.py, run by pytest. Each test injects one fault
   (disk full, a read-only database file, a database that goes away mid-request, a skewed
   clock...) into a running node and checks the error, the absence of a half-written block
   and the recovery; each records its figures (``record_property``), read back from pytest's
   JUnit XML.

3. **Hostile input**: the fuzz, hostile-input and invariant tests (``HOSTILE_TESTS``), run
   by pytest; passed/failed/skipped per file, hypothesis examples from its statistics, and
   schemathesis cases per endpoint (``PFNODE_FUZZ_COUNTS``).

Failures found is the sum of crash-loop violations and failed or erroring tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx

from chain.entries import decode_signed_entry, make_entry
from chain.storage import Ledger, iter_entry_hashes, normalise_url
from chain.verify import verify_database
from node import demo
from node.bench import machine
from node.bodies import body_to_json, parse_body
from node.genesis import NodeFiles
from node.replay import DomainReplayer

ROOT = Path(__file__).resolve().parents[1]
FAULT_TESTS = ("tests/integration/test_faults.py",)
HOSTILE_TESTS = (
    "tests/unit/api/test_fuzz.py",
    "tests/unit/api/test_hostile.py",
    "tests/unit/node/test_invariants.py",
)
Mode = Literal["exec", "fork"]
RETRY_S = 0.05
REQUEST_TIMEOUT_S = 60.0  # a write that takes this long is a hung node, not a slow one
LEADER_DEADLINE_S = 180.0  # generous: replay grows with the ledger, the machine may be busy


class CrashLoopBroken(Exception):
    """A crash-loop check failed; the message carries the evidence (round, index, hash)."""


# --------------------------------------------------------------------------- the node


def serve_child(argv: list[str], log_path: str) -> None:
    """The forked node: stdout and stderr to its log, then exactly `pfnode serve ...`."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    from node.cli import main

    sys.exit(main(argv))


_forkserver: Any = None


def forkserver_context() -> Any:
    """A forkserver that imported the node's code once (api.app pulls in all of it)."""
    global _forkserver
    if _forkserver is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["api.app", "uvicorn", "node.cli", "node.bench_reliability"])
        _forkserver = ctx
    return _forkserver


@dataclass
class NodeProcess:
    """One `pfnode serve` on a fixed port, started again after every kill."""

    data: Path
    db: str | None
    port: int
    mode: Mode = "exec"
    _popen: subprocess.Popen[bytes] | None = None
    _forked: Any = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data / f"serve-{self.port}.log"

    def argv(self) -> list[str]:
        argv = ["serve", "--data", str(self.data), "--port", str(self.port)]
        return argv + (["--db", self.db] if self.db else [])

    def start(self) -> None:
        self.starts += 1
        if self.mode == "fork":
            proc = forkserver_context().Process(
                target=serve_child, args=(self.argv(), str(self.log_path)), daemon=False
            )
            proc.start()
            self._forked = proc
            return
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                [sys.executable, "-m", "node.cli", *self.argv()],
                cwd=ROOT,
                stdout=log,
                stderr=log,
                env=os.environ.copy(),
            )

    def is_running(self) -> bool:
        if self._forked is not None:
            return bool(self._forked.is_alive())
        return self._popen is not None and self._popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, and reap."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: uvicorn's graceful shutdown; SIGKILL after 20 s."""
        self._signal(signal.SIGTERM, grace=20)

    def _signal(self, sig: signal.Signals, grace: float = 10) -> None:
        if self._forked is not None:
            proc, self._forked = self._forked, None
            if proc.is_alive():
                os.kill(proc.pid, sig)
            proc.join(grace)
            if proc.is_alive():
                proc.kill()
                proc.join(10)
            proc.close()
        if self._popen is not None:
            popen, self._popen = self._popen, None
            if popen.poll() is None:
                popen.send_signal(sig)
            try:
                popen.wait(grace)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(10)

    def health(self) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = httpx.get(f"{self.base}/healthz", timeout=2).json()
            return answer
        except (httpx.HTTPError, ValueError):
            return None

    def wait_leader(self, deadline_s: float = LEADER_DEADLINE_S) -> float:
        """Seconds until /healthz says leader and ok; raises if the process exits or hangs."""
        start = time.monotonic()
        while time.monotonic() - start < deadline_s:
            if not self.is_running():
                raise CrashLoopBroken(f"pfnode serve exited while starting; log:\n{self.tail()}")
            health = self.health()
            if health and health.get("role") == "leader" and health.get("status") == "ok":
                return time.monotonic() - start
            time.sleep(0.02)
        raise CrashLoopBroken(f"no healthy leader after {deadline_s:.0f} s; log:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


# --------------------------------------------------------------------------- the load


@dataclass(frozen=True)
class Write:
    """One request a client sends, and resends unchanged until it is answered."""

    path: str
    content: bytes
    key: str  # the natural key: notice no, loan id or rate date


@dataclass(frozen=True)
class Ack:
    """A write the node answered with a receipt: it must be at `index` forever."""

    client: str
    entry_hash: bytes
    index: int
    status: str
    duplicate: bool
    key: str
    at: float


@dataclass
class Workload:
    """What the three clients send: notices (signed envelopes), drawdowns, rates."""

    data: Path
    today: date
    notices: queue.Queue[str] = field(default_factory=queue.Queue)  # acknowledged, to draw on
    receivables: dict[str, dict[str, Any]] = field(default_factory=dict)  # by notice no

    def __post_init__(self) -> None:
        self.files = NodeFiles(self.data)  # keeps the insurer's key once loaded

    def setup(self, base: str, tokens: dict[str, str]) -> None:
        """The policy and buyer limit every notice and drawdown hangs on (as in test_cluster)."""
        with httpx.Client(base_url=base, headers=auth(tokens["INSURER"]), timeout=60) as c:
            policy = demo.policy_body(self.today)
            policy["max_liability"] = "900000000000.00"
            limit = demo.limit_body(self.today)
            limit["amount"] = "900000000000.00"
            for path, body in (
                ("/v1/policies", policy),
                ("/v1/policies/SINO-2026-0001/limits", limit),
            ):
                c.post(path, json=body).raise_for_status()

    def notice(self, i: int) -> Write:
        """Coverage notice i, signed here with the insurer's key: an envelope."""
        rec = demo.receivable(self.today, f"INV-C{i}", f"BL-C{i}")
        rec["amount"] = f"{1000 + i}.00"
        rec["shipment"] = {**rec["shipment"], "voyage": f"C{i}"}
        body = demo.notice_body(self.today, f"CN-C{i}", "BANK-A", rec)
        body.update(declared_amount=rec["amount"], effective_limit=rec["amount"])
        body = body_to_json(parse_body("coverage.issued", body))
        self.receivables[body["notice_no"]] = body["receivable"]
        key = self.files.org_key("INSURER")
        if key is None:
            raise CrashLoopBroken(f"no INSURER key under {self.data}")
        signed = make_entry(key, "coverage.issued", body, datetime.now(UTC))
        return Write("/v1/entries", signed.raw, body["notice_no"])

    def drawdown(self, _i: int) -> Write | None:
        """A drawdown on the next acknowledged notice; None while there is none."""
        try:
            notice_no = self.notices.get_nowait()
        except queue.Empty:
            return None
        rec = self.receivables[notice_no]
        body = demo.drawdown_body(self.today, f"L-{notice_no}", notice_no, rec)
        body["amount"] = "500.00"
        return Write("/v1/loans", json.dumps(body).encode(), body["loan_id"])

    def fx_rate(self, i: int) -> Write:
        day = (self.today - timedelta(days=i)).isoformat()
        body = {"date": day, "base": "EUR", "quote": "USD", "rate": "1.0850"}
        return Write("/v1/fx-rates", json.dumps(body).encode(), day)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class LoadClient(threading.Thread):
    """Sends one kind of write after another, each resent unchanged on a broken connection
    or a 503 until the node answers; keeps what was acknowledged, in order."""

    def __init__(
        self,
        name: str,
        base: str,
        token: str,
        make: Any,
        pace_s: float,
    ) -> None:
        super().__init__(name=f"load-{name}", daemon=True)
        self.label = name
        self.base = base
        self.token = token
        self.make = make
        self.pace_s = pace_s
        self.stop = threading.Event()  # no new write after the current one
        self.abandon = threading.Event()  # stop resending too (teardown after a failure)
        self.acks: list[Ack] = []
        self.landed: list[str] = []  # natural keys refused on a resend: first attempt landed
        self.errors: list[str] = []
        self.resends = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        with httpx.Client(
            base_url=self.base, headers=auth(self.token), timeout=REQUEST_TIMEOUT_S
        ) as http:
            i = 0
            while not self.stop.is_set():
                write = self.make(i)
                if write is not None:
                    self.send(http, write)
                    i += 1
                time.sleep(self.pace_s)

    def send(self, http: httpx.Client, write: Write) -> None:
        attempt = 0
        while not self.abandon.is_set():
            attempt += 1
            try:
                answer = http.post(
                    write.path, content=write.content, headers={"content-type": "application/json"}
                )
            except httpx.TimeoutException:
                self.errors.append(f"{write.path} {write.key}: no answer in {REQUEST_TIMEOUT_S} s")
                return
            except httpx.TransportError:  # killed mid-request, or not listening yet
                self.resends += 1
                time.sleep(RETRY_S)
                continue
            if answer.status_code == 503:
                self.resends += 1
                time.sleep(RETRY_S)
                continue
            self.record(write, answer, attempt)
            return

    def record(self, write: Write, answer: httpx.Response, attempt: int) -> None:
        try:
            payload = answer.json()
        except ValueError:
            payload = {}
        receipt = payload.get("receipt") if answer.status_code == 409 else payload
        if (
            answer.status_code in (200, 201, 409)
            and isinstance(receipt, dict)
            and "entry_hash" in receipt
        ):
            ack = Ack(
                client=self.label,
                entry_hash=bytes.fromhex(receipt["entry_hash"]),
                index=int(receipt["index"]),
                status=str(receipt["status"]),
                duplicate=bool(receipt.get("duplicate")),
                key=write.key,
                at=time.monotonic(),
            )
            with self._lock:
                self.acks.append(ack)
            return
        if answer.status_code == 409 and attempt > 1:
            self.landed.append(write.key)
            return
        self.errors.append(f"{write.path} {write.key}: {answer.status_code} {answer.text[:300]}")

    def snapshot(self) -> list[Ack]:
        with self._lock:
            return list(self.acks)


# --------------------------------------------------------------------------- the loop


@dataclass
class CrashFigures:
    backend: str
    mode: Mode
    kills: int = 0
    kills_while_starting: int = 0
    acknowledged: int = 0  # distinct writes answered with a receipt, all checked
    ack_checks: int = 0  # (write, round) presence checks: each write is checked every round
    duplicates: int = 0  # envelopes resent after a crash, answered with the first receipt
    landed_unanswered: int = 0  # unsigned writes whose answer a crash lost (409 on resend)
    resends: int = 0
    entries: int = 0
    verifications: int = 0
    restart_s: list[float] = field(default_factory=list)  # start -> healthy leader
    first_ack_s: list[float] = field(default_factory=list)  # start -> first new receipt
    seconds: float = 0.0

    def summary(self) -> str:
        def spread(values: list[float]) -> str:
            if not values:
                return "-"
            return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"

        return (
            f"{self.backend} ({self.mode}): {self.kills} SIGKILLs survived "
            f"({self.kills_while_starting} while starting), {self.acknowledged} acknowledged "
            f"writes all present at their index ({self.ack_checks} checks), "
            f"{self.verifications} full verifications with receipts replayed, ledger "
            f"{self.entries} entries; {self.duplicates} envelopes resent after a crash got "
            f"their first receipt, {self.landed_unanswered} unsigned writes landed unanswered "
            f"(409 on resend, one entry each), {self.resends} resends; restart to leader "
            f"{spread(self.restart_s)}; restart to first acknowledged write "
            f"{spread(self.first_ack_s)}; {self.seconds:.0f} s"
        )


class CrashLoop:
    """Kill a loaded node `kills` times at random instants; check the ledger after each."""

    def __init__(
        self,
        data: Path,
        db: str | None,
        kills: int,
        *,
        seed: int = 1,
        mode: Mode = "exec",
        max_uptime_s: float = 0.8,
        pace_s: float = 0.02,
        port: int | None = None,
        exec_last: bool = True,
    ) -> None:
        self.data = data
        self.url = normalise_url(db or f"sqlite:///{(data / 'ledger.db').resolve()}")
        self.kills = kills
        self.rng = random.Random(seed)
        self.node = NodeProcess(data, db, port or demo.free_port(), mode)
        self.max_uptime_s = max_uptime_s
        self.pace_s = pace_s
        self.exec_last = exec_last
        self.figures = CrashFigures("postgresql" if db else "sqlite", mode)
        self.workload = Workload(data, datetime.now(UTC).date())
        self.clients: list[LoadClient] = []
        self.seen: list[bytes] = []  # entry hash by index, as of the last check
        self.secret = NodeFiles(data).consortium_secret()

    def run(self) -> CrashFigures:
        started = time.monotonic()
        try:
            self.node.start()
            self.node.wait_leader()
            tokens = json.loads((self.data / "demo-tokens.json").read_text())
            self.workload.setup(self.node.base, tokens)
            self.start_clients(tokens)
            for round_no in range(1, self.kills + 1):
                self.one_round(round_no)
            self.finish()
        finally:
            for client in self.clients:
                client.stop.set()
                client.abandon.set()
            self.node.kill()
        self.figures.seconds = time.monotonic() - started
        return self.figures

    def start_clients(self, tokens: dict[str, str]) -> None:
        w = self.workload
        base, pace = self.node.base, self.pace_s
        self.clients = [
            LoadClient("insurer-envelopes", base, tokens["INSURER"], w.notice, pace),
            LoadClient("bank-drawdowns", base, tokens["BANK-A"], w.drawdown, pace),
            LoadClient("regulator-rates", base, tokens["REGULATOR"], w.fx_rate, pace),
        ]
        for client in self.clients:
            client.start()
        threading.Thread(target=self.feed_notices, name="load-feed", daemon=True).start()

    def feed_notices(self) -> None:
        """Hand each acknowledged notice to the bank, once (a resent envelope's first
        receipt, ``duplicate``, included: it is that notice's only answer)."""
        insurer, handed = self.clients[0], 0
        while not insurer.abandon.is_set():
            acks = insurer.snapshot()
            for ack in acks[handed:]:
                if ack.status == "accepted":
                    self.workload.notices.put(ack.key)
            handed = len(acks)
            time.sleep(0.02)

    def one_round(self, round_no: int) -> None:
        start = time.monotonic()
        if round_no > 1:
            self.node.start()
        if self.rng.random() < 0.1 and self.figures.restart_s:
            time.sleep(self.rng.uniform(0, statistics.median(self.figures.restart_s)))
            self.figures.kills_while_starting += 1
        else:
            self.figures.restart_s.append(self.node.wait_leader())
            self.note_first_ack(start)
            time.sleep(self.rng.uniform(0.05, self.max_uptime_s))
        self.node.kill()
        self.figures.kills += 1
        self.check(round_no)

    def note_first_ack(self, start: float) -> None:
        """Wait (a little) for the first receipt answered by this process; note its delay."""
        end = time.monotonic() + 30
        while time.monotonic() < end:
            newest = max((a.at for c in self.clients for a in c.snapshot()), default=0.0)
            if newest > start:
                self.figures.first_ack_s.append(newest - start)
                return
            time.sleep(0.01)

    def finish(self) -> None:
        """Restart once more (as its own interpreter, `python -m node.cli serve`, with
        ``exec_last``), let the clients finish their writes, stop, check everything."""
        if self.exec_last:
            self.node.mode = "exec"
        self.node.start()
        self.node.wait_leader()
        for client in self.clients:
            client.stop.set()
        for client in self.clients:
            client.join(REQUEST_TIMEOUT_S * 2)
        self.node.stop()
        self.check(self.kills + 1)
        self.audit_keys()
        self.verify_with_cli()
        errors = [e for c in self.clients for e in c.errors]
        if errors:
            raise CrashLoopBroken(f"{len(errors)} unexpected answers, first: {errors[:3]}")
        f = self.figures
        f.acknowledged = sum(len(c.acks) for c in self.clients)
        f.duplicates = sum(a.duplicate for c in self.clients for a in c.acks)
        f.landed_unanswered = sum(len(c.landed) for c in self.clients)
        f.resends = sum(c.resends for c in self.clients)

    # -- checks, with the node down --------------------------------------------------

    def check(self, round_no: int) -> None:
        acks = [c.snapshot() for c in self.clients]
        with Ledger.open(self.url) as ledger:
            hashes = self.check_indexes(ledger, round_no)
            for client_acks in acks:
                self.check_acks(client_acks, hashes, round_no)
            replayer = DomainReplayer(ledger.genesis, self.secret)
            report = verify_database(ledger, replayer)
        if report.entries != len(hashes):
            raise CrashLoopBroken(
                f"round {round_no}: verified {report.entries} entries, the table holds "
                f"{len(hashes)}: a half-written block"
            )
        self.seen = hashes
        self.figures.entries = len(hashes)
        self.figures.verifications += 1
        self.figures.ack_checks += sum(len(a) for a in acks)

    def check_indexes(self, ledger: Ledger, round_no: int) -> list[bytes]:
        """Indexes 0..n-1 without a gap, and every index seen before holds the same hash."""
        hashes: list[bytes] = []
        for index, entry_hash, _raw in iter_entry_hashes(ledger):
            if index != len(hashes):
                raise CrashLoopBroken(f"round {round_no}: index {len(hashes)} missing ({index})")
            hashes.append(entry_hash)
        if len(hashes) < len(self.seen):
            raise CrashLoopBroken(
                f"round {round_no}: the ledger shrank from {len(self.seen)} to {len(hashes)}"
            )
        for index, (before, now) in enumerate(zip(self.seen, hashes, strict=False)):
            if before != now:
                raise CrashLoopBroken(
                    f"round {round_no}: index {index} was {before.hex()}, now {now.hex()}"
                )
        return hashes

    def check_acks(self, acks: list[Ack], hashes: list[bytes], round_no: int) -> None:
        last = -1
        for ack in acks:
            if ack.index >= len(hashes) or hashes[ack.index] != ack.entry_hash:
                raise CrashLoopBroken(
                    f"round {round_no}: {ack.client} was answered {ack.entry_hash.hex()} at "
                    f"index {ack.index}; the ledger holds "
                    f"{hashes[ack.index].hex() if ack.index < len(hashes) else 'nothing'} there"
                )
            if ack.index <= last:
                raise CrashLoopBroken(
                    f"round {round_no}: {ack.client} got index {ack.index} after index {last}"
                )
            last = ack.index

    def audit_keys(self) -> None:
        """Each natural key a client acknowledged or saw land is on the ledger exactly once."""
        counts: Counter[tuple[str, str]] = Counter()
        with Ledger.open(self.url) as ledger:
            for _index, _hash, raw in iter_entry_hashes(ledger):
                entry = decode_signed_entry(raw)
                body = entry.body
                if entry.type == "coverage.issued":
                    counts["notice", body["notice_no"]] += 1
                elif entry.type == "loan.drawdown":
                    counts["loan", body["loan_id"]] += 1
                elif entry.type == "fx.rate":
                    counts["rate", body["date"]] += 1
        kinds = {"insurer-envelopes": "notice", "bank-drawdowns": "loan", "regulator-rates": "rate"}
        for client in self.clients:
            kind = kinds[client.label]
            for key in {a.key for a in client.acks} | set(client.landed):
                if counts[kind, key] != 1:
                    raise CrashLoopBroken(
                        f"{kind} {key} is on the ledger {counts[kind, key]} times, not once"
                    )

    def verify_with_cli(self) -> None:
        argv = [sys.executable, "-m", "node.cli", "verify", "--data", str(self.data)]
        if self.node.db:
            argv += ["--db", self.node.db]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not done.stdout.startswith("OK"):
            raise CrashLoopBroken(f"pfnode verify: {done.returncode} {done.stdout}{done.stderr}")
        self.figures.verifications += 1


# --------------------------------------------------------------------------- pytest figures


@dataclass
class TestFile:
    path: str
    exists: bool = True
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    examples: int = 0  # hypothesis examples run (its statistics)
    seconds: float = 0.0
    properties: list[tuple[str, str, str]] = field(default_factory=list)  # test, name, value
    skip_reasons: list[str] = field(default_factory=list)


def run_pytest(files: tuple[str, ...], env: dict[str, str] | None = None) -> list[TestFile]:
    """pytest -q on `files` (those that exist) in a child process; counts from its JUnit XML."""
    results = {f: TestFile(f, exists=(ROOT / f).exists()) for f in files}
    present = [f for f in files if results[f].exists]
    if not present:
        return list(results.values())
    with tempfile.TemporaryDirectory(prefix="pfnode-reliability-") as tmp:
        junit, examples = Path(tmp) / "junit.xml", Path(tmp) / "examples.json"
        argv = [sys.executable, "-c", "from node.bench_reliability import pytest_child as c; c()"]
        argv += [str(examples), "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1"]
        argv += [f"--junitxml={junit}", *present]
        done = subprocess.run(
            argv, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True
        )
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        emit([f"  pytest -q {' '.join(present)}: {lines[-1] if lines else done.stderr[-300:]}"])
        if not junit.exists():
            for f in present:
                results[f].errors += 1
            return list(results.values())
        tally_junit(ET.parse(junit).getroot(), results)
        if examples.exists():
            for path, count in json.loads(examples.read_text()).items():
                if path in results:
                    results[path].examples += count
    return list(results.values())


def pytest_child() -> None:
    """`python -c ...pytest_child()` OUT ARGS...: pytest.main(ARGS), and the hypothesis test
    cases each test file ran written to OUT as JSON. Hypothesis hands its statistics to a
    collector that its pytest plugin sets only around @given tests; the tests here also run
    state machines and schemathesis, so this plugin sets it around every test."""
    import pytest

    out, args = Path(sys.argv[1]), sys.argv[2:]
    examples: Counter[str] = Counter()

    class ExampleCounter:
        @pytest.hookimpl(hookwrapper=True, trylast=True)  # innermost: its value is seen
        def pytest_runtest_call(self, item: pytest.Item) -> Any:
            from hypothesis.statistics import collector  # after pytest's assertion rewriting

            outer = collector.value

            def note(stats: dict[str, Any]) -> None:
                for phase in ("reuse", "generate"):
                    cases = stats.get(f"{phase}-phase", {}).get("test-cases", [])
                    examples[item.nodeid.split("::")[0]] += len(cases)
                if outer is not None:
                    outer(stats)

            with collector.with_value(note):  # type: ignore[arg-type]
                yield

    code = pytest.main(args, plugins=[ExampleCounter()])
    out.write_text(json.dumps(examples))
    sys.exit(int(code))


def tally_junit(root: ET.Element, results: dict[str, TestFile]) -> None:
    for case in root.iter("testcase"):
        path = (case.get("file") or "").replace("\\", "/")
        if path not in results:
            classname = case.get("classname", "")
            path = next((f for f in results if classname == module_of(f)), "")
        result = results.get(path)
        if result is None:
            continue
        result.seconds += float(case.get("time") or 0)
        if case.find("failure") is not None:
            result.failed += 1
        elif case.find("error") is not None:
            result.errors += 1
        elif case.find("skipped") is not None:
            result.skipped += 1
            reason = case.find("skipped")
            result.skip_reasons.append(reason.get("message", "") if reason is not None else "")
        else:
            result.passed += 1
        for prop in case.iter("property"):
            result.properties.append(
                (case.get("name", ""), prop.get("name", ""), prop.get("value", ""))
            )


def module_of(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def describe_tests(title: str, results: list[TestFile]) -> list[str]:
    lines = [title]
    for r in results:
        if not r.exists:
            lines.append(f"  {r.path}: not in this checkout (not run)")
            continue
        examples = f", {r.examples} hypothesis examples" if r.examples else ""
        lines.append(
            f"  {r.path}: {r.passed} passed, {r.failed} failed, {r.errors} errors, "
            f"{r.skipped} skipped{examples} ({r.seconds:.0f} s)"
        )
        for reason in sorted(set(r.skip_reasons)):
            lines.append(f"    skipped: {reason}")
    return lines


def failures_in(results: list[TestFile]) -> int:
    return sum(r.failed + r.errors for r in results)


# --------------------------------------------------------------------------- the command


def crash_loop_on(backend: str, kills: int, pg: str, seed: int) -> CrashFigures:
    """One crash loop in a fresh data directory (and, for PostgreSQL, a fresh database)."""
    from node.genesis import init_demo

    with tempfile.TemporaryDirectory(prefix="pfnode-crash-") as tmp:
        data = Path(tmp) / "data"
        if backend == "sqlite":
            init_demo(data, None, datetime.now(UTC))
            return CrashLoop(data, None, kills, seed=seed, mode="fork").run()
        with scratch_database(pg) as url:
            init_demo(data, url, datetime.now(UTC))
            return CrashLoop(data, url, kills, seed=seed, mode="fork").run()


class scratch_database:  # noqa: N801 - used as a context manager, like tempfile's
    """A database created beside `pg` (same server) and dropped on exit."""

    def __init__(self, pg: str) -> None:
        import sqlalchemy as sa

        self.sa = sa
        self.admin = sa.create_engine(normalise_url(pg), isolation_level="AUTOCOMMIT")
        self.name = f"pfnode_reliability_{uuid.uuid4().hex[:8]}"
        self.url = f"{pg.rsplit('/', 1)[0]}/{self.name}"

    def __enter__(self) -> str:
        with self.admin.connect() as conn:
            conn.execute(self.sa.text(f'CREATE DATABASE "{self.name}"'))
        return self.url

    def __exit__(self, *exc: object) -> None:
        with self.admin.connect() as conn:
            conn.execute(self.sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def run_reliability(args: argparse.Namespace) -> int:
    kills = int(getattr(args, "repeat", 20) or 20)
    pg = str(getattr(args, "pg", None) or "postgresql://postgres@127.0.0.1:5432/test")
    lines = [
        f"pfnode bench reliability  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {machine()}",
        "",
    ]
    emit(lines)
    failures = 0
    crashes = []
    for number, backend in enumerate(("sqlite", "postgresql"), start=1):
        try:
            figures = crash_loop_on(backend, kills, pg, seed=number)
        except Exception as exc:  # a violation, or a backend that is not there: counted
            failures += 1
            emit([f"crash loop, {backend}: FAILED: {exc}"])
            continue
        crashes.append(figures)
        emit([f"crash loop, {figures.summary()}"])
    fault_results = run_pytest(FAULT_TESTS)
    failures += failures_in(fault_results)
    with tempfile.TemporaryDirectory(prefix="pfnode-fuzz-") as tmp:
        counts_file = Path(tmp) / "fuzz-counts.json"
        hostile = run_pytest(HOSTILE_TESTS, {"PFNODE_FUZZ_COUNTS": str(counts_file)})
        fuzz_counts = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    failures += failures_in(hostile)
    report = [""]
    report += describe_faults(fault_results)
    report += [""] + describe_tests("hostile input, fuzzing and invariants (pytest -q):", hostile)
    report += describe_fuzz(fuzz_counts)
    total_kills = sum(f.kills for f in crashes)
    total_acks = sum(f.acknowledged for f in crashes)
    recovered = sum(r.passed for r in fault_results)
    report += [
        "",
        f"crashes survived: {total_kills} SIGKILLs "
        f"({', '.join(f'{f.backend} {f.kills}' for f in crashes) or 'none'})",
        f"acknowledged writes checked: {total_acks} "
        f"({sum(f.ack_checks for f in crashes)} presence checks after kills)",
        f"faults injected and recovered: {recovered}",
        f"hostile-input tests passed: {sum(r.passed for r in hostile)}, hypothesis examples "
        f"{sum(r.examples for r in hostile)}, fuzz cases {sum(fuzz_counts.values())}",
        f"failures found: {failures}",
    ]
    emit(report)
    if getattr(args, "save", None):
        out = Path(args.save) / f"reliability-{datetime.now(UTC):%Y-%m-%d}.txt"
        out.write_text("\n".join(OUTPUT) + "\n")
        print(f"wrote {out}")
    return 0 if failures == 0 else 1


OUTPUT: list[str] = []


def emit(lines: list[str]) -> None:
    for line in lines:
        OUTPUT.append(line)
        print(line, flush=True)


def describe_faults(results: list[TestFile]) -> list[str]:
    lines = describe_tests("faults injected into a running node (pytest -q):", results)
    for r in results:
        for test, name, value in r.properties:
            lines.append(f"    {test}: {name} = {value}")
    return lines


def describe_fuzz(counts: dict[str, int]) -> list[str]:
    if not counts:
        return ["  schemathesis cases per endpoint: not reported"]
    lines = [f"  schemathesis cases per endpoint ({len(counts)} operations):"]
    lines += [f"    {label}: {n}" for label, n in sorted(counts.items())]
    return lines
