"""The node as the API sees it: one object, every audience's operations.

``Node`` wires the ledger (chain/), the sequencer, the domain state and its
projections. The API layer calls only what is here; it never opens a database
session or touches a rule. Every read takes the ``Caller`` and applies DESIGN's
visibility (``node.visibility``); every write returns a ``Receipt``.

Errors (``node.errors``) map to HTTP in api/problems.py:
Forbidden 403, NotFound 404, Conflict 409, Unprocessable/InvalidBody 422,
Overloaded 503; chain.errors.EntryError/SignatureError are 422 naming the field.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from chain.checkpoint import Verifier, parse_verifier_key
from chain.entries import SignedEntry, decode_signed_entry, make_entry, verify_timestamp
from chain.merkle import consistency_proof, inclusion_proof, root_at
from chain.storage import Ledger, StoredEntry
from node import cluster, projection, visibility
from node.alerts import Alerts
from node.anchorer import AnchorConfig, Anchorer
from node.bodies import Body, body_to_json, parse_body
from node.clock import Clock, SystemClock
from node.credit import indicators_empty
from node.domain import Params, Verdict
from node.errors import Forbidden, InvalidBody, NotFound, Overloaded, Unprocessable
from node.fingerprints import compute_k1, compute_k2, compute_k3
from node.genesis import NodeFiles
from node.identifiers import normalise_id
from node.migrations import check_schema
from node.sequencer import Receipt, Sequencer
from node.tokens import TokenStore

Role = Literal["bank", "insurer", "regulator"]
log = logging.getLogger("pfnode.node")


@dataclass(frozen=True)
class Caller:
    """The authenticated organisation behind a request."""

    org: str
    role: Role


@dataclass
class NodeConfig:
    data_dir: Path
    db_url: str | None = None
    max_block_entries: int = 512
    max_block_ms: float = 5.0
    max_queue: int = 20_000
    internal_host: str = "127.0.0.1"
    witnesses: dict[str, str] = field(default_factory=dict)  # org -> follower URL
    anchor: AnchorConfig | None = None

    @property
    def url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'ledger.db').resolve()}"


@dataclass
class FlagHub:
    """Fan-out of committed flags to server-sent-event subscribers."""

    subscribers: set[tuple[Caller, asyncio.Queue[dict[str, Any]]]] = field(default_factory=set)
    loop: asyncio.AbstractEventLoop | None = None

    def publish(self, flags: list[dict[str, Any]]) -> None:
        """Called from the sequencer thread after a block commits."""
        loop = self.loop
        if loop is None or not flags:
            return
        loop.call_soon_threadsafe(self._fan_out, flags)

    def _fan_out(self, flags: list[dict[str, Any]]) -> None:
        for caller, queue in list(self.subscribers):
            for flag in flags:
                shown = visibility.flag_for(caller.org, caller.role, flag)
                if shown is not None:
                    queue.put_nowait(shown)


def fingerprint_of_key(secret: bytes, key: str) -> str:
    """A receivable key as the regulator names it: K1:<exporter_id>:<invoice_no>,
    K2:<transport_doc_no>, K3:<notice_no>, or a 64-hex fingerprint itself."""
    kind, _, rest = key.partition(":")
    if kind == "K1" and ":" in rest:
        exporter, _, invoice = rest.partition(":")
        return compute_k1(secret, exporter, invoice)
    if kind == "K2" and rest:
        return compute_k2(secret, rest)
    if kind == "K3" and rest:
        return compute_k3(secret, rest)
    if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
        return key
    raise Unprocessable.single(
        "key",
        "a receivable key is K1:<exporter_id>:<invoice_no>, K2:<transport doc no>, "
        "K3:<notice no> or a 64-hex fingerprint",
    )


def witnesses_from_genesis(
    genesis: dict[str, Any], urls: dict[str, str]
) -> list[tuple[str, str, Verifier]]:
    """(cosigner name, URL, verifier) of each witness genesis names and we have a URL for."""
    return [
        (w["name"], urls[w["org"]], parse_verifier_key(w["vkey"]))
        for w in genesis.get("witnesses", [])
        if w["org"] in urls
    ]


def stream_flag(row: dict[str, Any]) -> dict[str, Any]:
    """A flag row of the projection in the shape the leader streams."""
    return {
        "id": row["flag_id"],
        "code": row["code"],
        "severity": row["severity"],
        "detail": row["detail"],
        "related": row["related"],
        "data": row["data"],
        "entry_hash": row["entry_hash"],
        "height": None,
        "index": row["index"],
        "type": row["entry_type"],
        "ts": row["ts"],
        "bank": row["bank"],
        "insurer": row["insurer"],
    }


class Node:
    """One pfnode process: leader (sequencer) or standby (forwards writes), same API."""

    def __init__(self, config: NodeConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.files = NodeFiles(config.data_dir)
        check_schema(config.url)  # refuses an old, new or missing schema, naming the fix
        self.ledger = Ledger.open(config.url)
        self.genesis = self.ledger.genesis
        self.roles: dict[str, Role] = {o["id"]: o["role"] for o in self.genesis["orgs"]}
        self.tokens = TokenStore(self.ledger.engine)
        self.hub = FlagHub()
        self.alerts = Alerts(self.ledger.engine, self.clock, self.roles.get)
        self.secret = self.files.consortium_secret()
        self.params = Params.from_json(self.genesis.get("params", {}))
        self.window = timedelta(seconds=self.params.clock_window_seconds)
        self.forwarder = cluster.Forwarder(self.ledger.engine, cluster.internal_token(self.secret))
        self.sequencer: Sequencer | None = None
        self._internal: cluster.InternalServer | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._poller: asyncio.Task[None] | None = None
        self.anchorer: Anchorer | None = None
        if self.ledger.try_become_writer():
            self.sequencer = self._new_sequencer()

    def _new_sequencer(self) -> Sequencer:
        return Sequencer(
            self.ledger,
            producer=self.files.sequencer_key(),
            secret=self.secret,
            clock=self.clock,
            max_entries=self.config.max_block_entries,
            max_ms=self.config.max_block_ms,
            max_queue=self.config.max_queue,
            on_commit=self._on_commit,
        )

    @property
    def is_leader(self) -> bool:
        return self.sequencer is not None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Lead if this process holds the lock; else stand by and watch for the lock."""
        loop = asyncio.get_running_loop()
        self.hub.loop = loop
        self.alerts.start(loop, leading=self.sequencer is not None)
        if self.sequencer is not None:
            self.sequencer.start()
            self._start_cosigning()
            await self._announce()
            return
        self._poller = loop.create_task(self._poll_flags())
        self._watcher = threading.Thread(
            target=self._watch_lock, args=(loop,), name="pfnode-standby", daemon=True
        )
        self._watcher.start()

    def _cosign_loop(self, anchorer: Anchorer | None) -> None:
        """Leader: push each new checkpoint to the witnesses; publish it with their lines;
        offer it, with the witnesses' BLS signatures, for anchoring."""
        from node.anchoring import validators_of
        from node.witnessing import CosignCollector, verify_log_note

        log_verifier = parse_verifier_key(self.genesis["sequencer"]["note_key"])
        collector = None
        if self.config.witnesses:
            collector = CosignCollector(
                self.ledger,
                witnesses_from_genesis(self.genesis, self.config.witnesses),
                log_verifier,
                self.genesis["origin"],
                validators=validators_of(self.genesis),
            )
        pushed = 0
        while not self._stop.wait(0.5):
            latest = self.ledger.latest_checkpoint()
            if latest is None or latest[0] <= pushed:
                continue
            try:
                note, sigs = collector.collect(latest[1]) if collector else (latest[1], {})
                if collector is not None:
                    collector.publish(self.ledger, note)
                pushed = latest[0]
                if anchorer is not None:
                    checkpoint = verify_log_note(latest[1], log_verifier, self.genesis["origin"])
                    head = self.ledger.head()
                    height = head.height if head is not None else 0
                    anchorer.offer(checkpoint.size, checkpoint.root, height, sigs)
            except Exception:  # a witness's trouble never stops the sequencer
                log.exception("cosigning checkpoint %s failed", latest[0])

    async def _announce(self) -> None:
        """Listen for the standbys' forwarded requests and say where, in the database."""
        self._internal = cluster.InternalServer(
            cluster.internal_token(self.secret), self._serve_internal, self.config.internal_host
        )
        address = await self._internal.start()
        await asyncio.to_thread(cluster.record_leader, self.ledger.engine, address)

    def _watch_lock(self, loop: asyncio.AbstractEventLoop) -> None:
        """Standby: try the writer lock twice a second; on success, take over."""
        while not self._stop.wait(0.5):
            if not self.ledger.try_become_writer():
                continue
            log.warning("took the writer lock: replaying the ledger and taking over")
            sequencer = self._new_sequencer()  # replays every block into the state
            sequencer.start()
            self.sequencer = sequencer
            asyncio.run_coroutine_threadsafe(self._take_over(), loop)
            return

    def _start_cosigning(self) -> None:
        anchorer = self._new_anchorer()
        if self.config.witnesses or anchorer is not None:
            threading.Thread(
                target=self._cosign_loop, args=(anchorer,), name="pfnode-cosign", daemon=True
            ).start()

    def _new_anchorer(self) -> Anchorer | None:
        """With --anchor: the anchorer, its sending thread started (it connects first)."""
        config = self.config.anchor
        if config is None:
            return None
        from node.anchorer import Anchorer, make_chain
        from node.anchoring import AnchorStore

        anchorer = Anchorer(
            self.genesis, self.files.bls_keys(), AnchorStore(self.ledger.engine), config
        )
        self.anchorer = anchorer
        threading.Thread(
            target=anchorer.run,
            args=(self._stop, lambda: make_chain(config, self.genesis)),
            name="pfnode-anchor",
            daemon=True,
        ).start()
        return anchorer

    async def _take_over(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if not self._stop.is_set():
            self.alerts.lead()
            self._start_cosigning()
            await self._announce()

    async def _poll_flags(self) -> None:
        """Standby: stream the flags the leader commits, read from the flags table."""
        since = await asyncio.to_thread(self._last_flag_index)
        while True:
            await asyncio.sleep(0.05)
            try:
                rows = await asyncio.to_thread(self._flags_since, since)
            except Exception:  # the database may be restarting; try again
                log.exception("flag poll failed")
                continue
            if rows:
                since = max(r["index"] for r in rows)
                self.hub._fan_out([stream_flag(r) for r in rows])

    def _last_flag_index(self) -> int:
        with self._read() as conn:
            rows = projection.list_flags(conn, None, None, None, None)
        return max((r["index"] for r in rows), default=-1)

    def _flags_since(self, since: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            return [
                r
                for r in projection.list_flags(conn, None, None, since, None)
                if r["index"] > since
            ]

    def close(self) -> None:
        self._stop.set()
        self.alerts.close()
        if self._poller is not None:
            self._poller.cancel()
        if self._internal is not None:
            self._internal.close()
        if self.sequencer is not None:
            self.sequencer.stop()
        self.ledger.close()

    async def _serve_internal(self, request: dict[str, Any]) -> dict[str, Any]:
        """The leader's answer to a standby's forwarded request."""
        sequencer = self.sequencer
        if sequencer is None:
            raise Overloaded(0, retry_after=1)
        if request.get("op") == "check":
            parsed = parse_body(request["type"], request["body"])
            verdict = sequencer.dry_run(request["org"], request["role"], request["type"], parsed)
            return {"verdict": cluster.verdict_to_wire(verdict)}
        signed = decode_signed_entry(request["entry"])
        parsed = parse_body(signed.type, signed.body)
        receipt = await self._sequence_here(sequencer, signed, parsed, bool(request["verified"]))
        return {"receipt": receipt.to_wire()}

    def _on_commit(self, receipts: list[Receipt]) -> None:
        if self.sequencer is not None:
            self.roles.update(self.sequencer.roles())  # type: ignore[arg-type]
        self.alerts.wake()
        self.hub.publish(
            [
                {
                    **f,
                    "entry_hash": r.entry_hash.hex(),
                    "height": r.height,
                    "index": r.index,
                    "type": r.entry_type,
                    "ts": r.ts,
                    "bank": r.org,
                    "insurer": r.insurer,
                }
                for r in receipts
                for f in r.flags
            ]
        )

    # -- authentication ----------------------------------------------------------

    def authenticate(self, token: str) -> Caller | None:
        org = self.tokens.org_for(token)
        if org is None or org not in self.roles:
            return None
        return Caller(org, self.roles[org])

    # -- writes ------------------------------------------------------------------

    async def submit(self, caller: Caller, entry_type: str, body: dict[str, Any]) -> Receipt:
        """Validate, sign with the caller's institution key, sequence; durable on return."""
        parsed = parse_body(entry_type, body)
        visibility.require_may_sign(caller.role, entry_type)
        key = self.files.org_key(caller.org)
        if key is None:
            raise Forbidden(caller.org, caller.role, entry_type)
        signed = make_entry(key, entry_type, body_to_json(parsed), self.clock.now())
        receipt = await self._sequence(signed, parsed, verified=True)  # signed here, just now
        return self.shown(caller, receipt)

    async def submit_signed(self, caller: Caller, envelope: Any) -> Receipt:
        """An envelope signed elsewhere (an HSM): the caller must be the signing org."""
        signed = decode_signed_entry(envelope)
        if signed.org != caller.org:
            raise Forbidden(caller.org, caller.role, signed.type)
        visibility.require_may_sign(caller.role, signed.type)
        parsed = parse_body(signed.type, signed.body)
        if body_to_json(parsed) != signed.body:
            raise InvalidBody.single("body", "body is not in canonical form for its type")
        verify_timestamp(signed, self.clock.now(), self.window)
        return self.shown(caller, await self._sequence(signed, parsed))

    def shown(self, caller: Caller, receipt: Receipt) -> Receipt:
        """The receipt as the caller may see it: a bank never sees others' entry hashes."""
        if caller.role == "regulator":
            return receipt
        flags = []
        for flag in receipt.flags:
            view = visibility.flag_for(
                caller.org, caller.role, {**flag, "bank": receipt.org, "insurer": receipt.insurer}
            )
            if view is not None:
                flags.append({k: v for k, v in view.items() if k not in ("bank", "insurer")})
        return replace(receipt, flags=tuple(flags))

    async def _sequence(self, signed: SignedEntry, parsed: Body, verified: bool = False) -> Receipt:
        sequencer = self.sequencer
        if sequencer is not None:
            return await self._sequence_here(sequencer, signed, parsed, verified)
        answer = await self.forwarder.call(
            {"op": "submit", "entry": signed.to_json(), "verified": verified}
        )
        return Receipt.from_wire(answer["receipt"])

    async def _sequence_here(
        self, sequencer: Sequencer, signed: SignedEntry, parsed: Body, verified: bool
    ) -> Receipt:
        receipt = await asyncio.wrap_future(sequencer.submit(signed, parsed, verified))
        if receipt.duplicate:  # a resubmission: prove it against the current head
            return await asyncio.to_thread(self.with_proof, receipt)
        return receipt

    def with_proof(self, receipt: Receipt) -> Receipt:
        proof = inclusion_proof(receipt.index, receipt.log_size, self.ledger)
        return receipt.with_proof(proof)

    async def check_financing(self, caller: Caller, body: dict[str, Any]) -> Verdict:
        """Every drawdown rule against the leader's current state, no write."""
        parsed = parse_body("loan.drawdown", body)
        visibility.require_may_sign(caller.role, "loan.drawdown")
        sequencer = self.sequencer
        if sequencer is not None:
            return sequencer.dry_run(caller.org, caller.role, "loan.drawdown", parsed)
        answer = await self.forwarder.call(
            {
                "op": "check",
                "org": caller.org,
                "role": caller.role,
                "type": "loan.drawdown",
                "body": body_to_json(parsed),
            }
        )
        return cluster.verdict_from_wire(answer["verdict"])

    # -- reads -------------------------------------------------------------------

    def _read(self) -> sa.Connection:
        return self.ledger.engine.connect()

    def loans(self, caller: Caller) -> list[dict[str, Any]]:
        with self._read() as conn:
            return visibility.loans_for(conn, caller.org, caller.role)

    def loan(self, caller: Caller, loan_id: str, bank: str | None = None) -> dict[str, Any]:
        """One loan; loan ids are unique per bank and match after normalisation."""
        if caller.role == "bank":
            bank = caller.org
        wanted = normalise_id(loan_id)
        found = [
            loan
            for loan in self.loans(caller)
            if normalise_id(loan["loan_id"]) == wanted and bank in (None, loan["bank"])
        ]
        if not found:
            raise NotFound("loan", loan_id)
        if len(found) > 1:
            raise Unprocessable.single(
                "bank", f"loan id {loan_id} is used by several banks; name the bank"
            )
        return found[0]

    def flags(
        self, caller: Caller, since: int | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        with self._read() as conn:
            return visibility.flags_for(conn, caller.org, caller.role, since, status)

    async def flag_stream(self, caller: Caller) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        item = (caller, queue)
        self.hub.subscribers.add(item)
        try:
            while True:
                yield await queue.get()
        finally:
            self.hub.subscribers.discard(item)

    def receivable_history(self, caller: Caller, key: str) -> list[dict[str, Any]]:
        visibility.require_regulator(caller.role)
        fingerprints = [fingerprint_of_key(self.secret, key)]
        with self._read() as conn:
            rows: list[dict[str, Any]] = []
            for fp in fingerprints:
                rows += projection.receivable_history(conn, fp)
        unique = {r["entry_hash"]: r for r in rows}
        return sorted(unique.values(), key=lambda r: r["index"])

    def exposures(self, caller: Caller, by: str) -> list[dict[str, Any]]:
        visibility.require_regulator(caller.role)
        if by not in ("bank", "buyer", "country"):
            raise Unprocessable.single("by", "by must be bank, buyer or country")
        with self._read() as conn:
            return projection.exposures(conn, by)  # type: ignore[arg-type]

    def audit_report(self, caller: Caller, start: date, end: date) -> dict[str, Any]:
        visibility.require_regulator(caller.role)
        if end < start:
            raise Unprocessable.single("to", "to is before from")
        lo = start.isoformat() + "T00:00:00.000Z"
        hi = (end + timedelta(days=1)).isoformat() + "T00:00:00.000Z"
        with self._read() as conn:
            rows = projection.audit_rows(conn, lo, hi)
        return {
            "from": start.isoformat(),
            "to": end.isoformat(),
            **rows,
            "proofs": self._proofs(rows),
        }

    def _proofs(self, rows: dict[str, Any]) -> dict[str, Any]:
        """Every entry the report's records cite, with its inclusion proof in the latest
        signed checkpoint: `pfnode verify --audit` checks them offline (node.audit)."""
        latest = self.ledger.latest_checkpoint()
        if latest is None:
            return {"checkpoint": None, "entries": []}
        size, note = latest
        hashes = sorted({r["entry_hash"] for recs in rows.values() for r in recs})
        entries = []
        for entry_hash in hashes:
            stored = self.ledger.get_entry(bytes.fromhex(entry_hash))
            if stored is None or stored.index >= size:
                continue  # after the checkpoint: proved by the next report
            proof = inclusion_proof(stored.index, size, self.ledger)
            entries.append(
                {
                    "entry_hash": entry_hash,
                    "index": stored.index,
                    "entry": stored.entry.to_json(),
                    "proof": [h.hex() for h in proof],
                }
            )
        return {"checkpoint": note, "size": size, "entries": entries}

    # -- ledger ------------------------------------------------------------------

    def checkpoint(self) -> str:
        note = self.ledger.latest_checkpoint()
        if note is None:
            raise NotFound("checkpoint", "latest")
        return note[1]

    def block(self, caller: Caller, height: int) -> dict[str, Any]:
        block = self.ledger.get_block(height)
        if block is None:
            raise NotFound("block", str(height))
        with self._read() as conn:
            return visibility.block_for(conn, caller.org, caller.role, block)

    def blocks(self, caller: Caller, start: int, limit: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            return [
                visibility.block_for(conn, caller.org, caller.role, b)
                for b in self.ledger.iter_blocks(start, start + limit)
            ]

    def entry(self, caller: Caller, entry_hash: str) -> dict[str, Any]:
        try:
            raw = bytes.fromhex(entry_hash)
        except ValueError:
            raise Unprocessable.single("hash", "an entry hash is 64 hex digits") from None
        stored: StoredEntry | None = self.ledger.get_entry(raw) if len(raw) == 32 else None
        with self._read() as conn:
            readable = stored is not None and visibility.may_read_entry(
                conn, caller.org, caller.role, stored.entry
            )
        if stored is None or not readable:
            raise NotFound("entry", entry_hash)
        size = self.ledger.size
        return {
            "entry": stored.entry.to_json(),
            "entry_hash": entry_hash,
            "index": stored.index,
            "height": stored.height,
            "receipt": visibility.receipt_for(
                caller.org, caller.role, stored.receipt, stored.entry.org
            ),
            "proof": {
                "tree_size": size,
                "log_root": root_at(size, self.ledger).hex(),
                "hashes": [h.hex() for h in inclusion_proof(stored.index, size, self.ledger)],
            },
        }

    def consistency(self, size1: int, size2: int) -> dict[str, Any]:
        size = self.ledger.size
        if not 0 < size1 <= size2 <= size:
            raise Unprocessable.single("to", f"need 0 < from <= to <= {size}")
        return {
            "from": size1,
            "to": size2,
            "root1": root_at(size1, self.ledger).hex(),
            "root2": root_at(size2, self.ledger).hex(),
            "hashes": [h.hex() for h in consistency_proof(size1, size2, self.ledger)],
        }

    def health(self) -> dict[str, Any]:
        head = self.ledger.head(fresh=True)
        sequencer = self.sequencer
        if sequencer is not None:
            ok = sequencer.is_alive() and self.ledger.is_writer_alive()
            role, queue = "leader", sequencer.queue_depth()
        else:
            ok = self._watcher is not None and self._watcher.is_alive()
            role, queue = "standby", 0
        return {
            "status": "ok" if ok else "degraded",
            "role": role,
            "height": head.height if head else None,
            "log_size": head.log_size if head else 0,
            "queue": queue,
        }

    def latest_anchor(self) -> dict[str, Any]:
        """The latest checkpoint aggregated for the EVM anchor (``tx_hash`` is None until
        its transaction is mined); NotFound when none was (anchoring off)."""
        from node.anchoring import AnchorStore

        latest = AnchorStore(self.ledger.engine).latest()
        if latest is None:
            raise NotFound("anchor", "latest")
        return {
            "size": latest.size,
            "root": latest.root.hex(),
            "signers": list(latest.signers),
            "tx_hash": latest.tx_hash,
            "block_number": latest.block_number,
        }

    # -- credit information (node.credit) -----------------------------------------

    def buyer_light(self, buyer_code: str) -> dict[str, Any]:
        """A buyer's light, since when and why: every member may ask (buyer.rated is public)."""
        with self._read() as conn:
            row = projection.get_light(conn, buyer_code)
        if row is None:
            return {"buyer_code": buyer_code, "country": None, "light": "green", "since": None,
                    "why": []}  # fmt: skip
        return {k: row[k] for k in ("buyer_code", "country", "light", "since", "why")}

    async def exporter_indicators(
        self, caller: Caller, exporter_id: str, access: str | None = None
    ) -> dict[str, Any]:
        """The exporter's indicators for a bank holding its live consent; the read is itself
        recorded on the ledger (indicators.read, signed with the bank's key) first.

        ``access``: the hash of an indicators.read the bank's own node signed and recorded
        (consortium mode: this node holds no follower's key); it must be the caller's read
        of this exporter, and is answered without recording another.
        """
        exporter_id = exporter_id.upper()
        if access is not None:
            return self._indicators_under(caller, exporter_id, access)
        today = self.clock.now().date().isoformat()
        with self._read() as conn:
            consent = projection.get_live_consent(conn, caller.org, exporter_id, today)
        if consent is None:
            raise Forbidden(
                caller.org, caller.role, "indicators.read",
                detail=f"consent missing: exporter {exporter_id} has not authorised {caller.org} "
                "(its insurer records consent.granted), or the consent expired or was revoked",
            )  # fmt: skip
        body = {"exporter_id": exporter_id, "consent_id": consent["consent_id"]}
        receipt = await self.submit(caller, "indicators.read", body)
        with self._read() as conn:
            indicators = projection.get_indicators(conn, exporter_id)
        return {
            "exporter_id": exporter_id,
            "consent": {"consent_id": consent["consent_id"], "valid_until": consent["valid_until"]},
            "indicators": indicators or indicators_empty(),
            "access": {"entry_hash": receipt.entry_hash.hex(), "index": receipt.index},
        }

    def _indicators_under(self, caller: Caller, exporter_id: str, access: str) -> dict[str, Any]:
        with self._read() as conn:
            reads = projection.list_indicator_reads(conn, exporter_id)
            read = next((r for r in reads if r["entry_hash"] == access), None)
            if read is None or read["bank"] != caller.org:
                raise NotFound("indicators.read", access)
            consents = {c["consent_id"]: c for c in projection.list_consents(conn, exporter_id)}
            indicators = projection.get_indicators(conn, exporter_id)
        consent = consents[read["consent_id"]]
        return {
            "exporter_id": exporter_id,
            "consent": {"consent_id": consent["consent_id"], "valid_until": consent["valid_until"]},
            "indicators": indicators or indicators_empty(),
            "access": {"entry_hash": access, "index": read["index"]},
        }

    def access_log(self, caller: Caller, exporter_id: str) -> dict[str, Any]:
        """Consents and indicator reads of an exporter: the regulator sees all; an insurer
        those under consents it recorded; a bank its own."""
        exporter_id = exporter_id.upper()
        with self._read() as conn:
            consents = projection.list_consents(conn, exporter_id)
            reads = projection.list_indicator_reads(conn, exporter_id)
        if caller.role == "insurer":
            mine = {c["consent_id"] for c in consents if c["insurer"] == caller.org}
            consents = [c for c in consents if c["consent_id"] in mine]
            reads = [r for r in reads if r["consent_id"] in mine]
        elif caller.role == "bank":
            consents = [c for c in consents if c["bank"] == caller.org]
            reads = [r for r in reads if r["bank"] == caller.org]
        return {"exporter_id": exporter_id, "consents": consents, "reads": reads}
