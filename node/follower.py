"""A follower: one institution's own node in consortium mode.

The regulator's node sequences. Each other institution runs a follower that

- holds its institution's key: its internal users call it with their own tokens;
  it validates and signs their entries and forwards them to the sequencer
  (POST /v1/entries with the institution's token there), returning the
  sequencer's receipt (a 409 rejected drawdown stays a 409 with its receipt);
- replicates: pulls blocks in bounded batches from its last height (resuming
  after a restart, backing off on errors), verifies every header signature,
  prev_hash link, entries/receipts root and log root (chain.replica), and stores
  its copy: the full entries its institution may see, leaf hashes of the others;
- serves ledger reads (blocks, entries with proofs, consistency proofs) and its
  flag stream from that replica; domain reads (loans, flags) are the
  sequencer's, asked with the institution's token so its visibility applies;
- is a C2SP witness (node.witnessing): it cosigns checkpoints only after a
  consistency proof from the last one it cosigned; a split view (two roots for
  one size, or a rollback) is kept as evidence and raised as an alarm on its
  flag stream and /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from chain.blocks import genesis_hash
from chain.checkpoint import parse_verifier_key
from chain.entries import decode_signed_entry, make_entry, verify_timestamp
from chain.errors import ChainError, CheckpointError, VerificationError
from chain.keys import PublicKey
from chain.merkle import CompactRange, consistency_proof, inclusion_proof, root_at
from chain.replica import ReplicaStore, verify_partial_block
from node import cluster
from node.bodies import body_to_json, parse_body
from node.clock import Clock, SystemClock
from node.domain import Params, Verdict
from node.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    NodeError,
    NotFound,
    Overloaded,
    Unprocessable,
)
from node.genesis import NodeFiles
from node.migrations import check_schema
from node.sequencer import Receipt
from node.service import Caller, FlagHub, Role
from node.tokens import TokenStore
from node.visibility import require_may_sign

if TYPE_CHECKING:
    from node.witnessing import BlsSigner

log = logging.getLogger("pfnode.follower")
BATCH = 100


@dataclass
class FollowerConfig:
    data_dir: Path
    upstream: str
    org: str
    db_url: str | None = None
    poll_s: float = 0.2

    @property
    def url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'replica.db').resolve()}"


@dataclass
class SyncStatus:
    height: int | None = None
    log_size: int = 0
    last_error: str | None = None
    alarms: list[dict[str, Any]] = field(default_factory=list)


def upstream_error(response: httpx.Response) -> Exception:
    """The sequencer's refusal, as the same error here."""
    try:
        problem = response.json()
    except ValueError:
        problem = {"detail": response.text}
    detail = str(problem.get("detail") or problem.get("title") or response.status_code)
    status = response.status_code
    if status == 403:
        return Forbidden("?", "?", detail)
    if status == 404:
        return NotFound("upstream", detail)
    if status == 409:
        return Conflict(detail)
    if status in (400, 422):
        errors = problem.get("errors") or [{"field": "", "message": detail}]
        return Unprocessable(
            [FieldProblem(e.get("field", ""), e.get("message", "")) for e in errors]
        )
    return Overloaded(0, retry_after=int(response.headers.get("retry-after", "1") or 1))


class FollowerNode:
    """The node API over a replica and an upstream sequencer (see module docstring)."""

    def __init__(self, config: FollowerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.files = NodeFiles(config.data_dir)
        check_schema(config.url)
        self.replica = ReplicaStore.open(config.url)
        self.tokens = TokenStore(self.replica.engine)
        self.genesis: dict[str, Any] = json.loads(self.files.genesis_path.read_text())
        self.roles: dict[str, Role] = {o["id"]: o["role"] for o in self.genesis["orgs"]}
        if config.org not in self.roles:
            raise NotFound("org", config.org)
        self.params = Params.from_json(self.genesis.get("params", {}))
        self.window = timedelta(seconds=self.params.clock_window_seconds)
        seq = self.genesis["sequencer"]
        self.producer = PublicKey.from_b64(seq["key_id"], seq["public_key"])
        self.log_verifier = parse_verifier_key(seq["note_key"])
        self.origin: str = self.genesis["origin"]
        upstream = json.loads((config.data_dir / "upstream.json").read_text())
        self.upstream_token: str = upstream["token"]
        self.hub = FlagHub()
        self.status = SyncStatus()
        self.sequencer = None  # a follower never sequences
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.hub.loop = loop
        self._client = httpx.AsyncClient(
            base_url=self.config.upstream,
            timeout=30,
            headers={"Authorization": f"Bearer {self.upstream_token}"},
        )
        self._tasks.append(loop.create_task(self._replicate()))

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._client is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_event_loop().create_task(self._client.aclose())
        self.replica.close()

    def attach(self, app: Any) -> None:
        """Make the app this node's witness endpoint (POST /v1/witness/add-checkpoint)."""
        from node.witnessing import WitnessContext, WitnessStore, load_witness_signer

        signer = load_witness_signer(self.config.data_dir)
        if signer is None:
            return
        store = WitnessStore(self.replica.engine)
        for evidence in store.split_views():  # evidence outlives restarts; so does the alarm
            self.raise_alarm(
                "SPLIT_VIEW",
                f"the sequencer showed a split view ({evidence['kind']}, {evidence['detected']})",
                {},
            )
        app.state.witness = WitnessContext(
            store=store,
            signer=signer,
            bls=self._bls_signer(),
            log_verifier=self.log_verifier,
            origin=self.origin,
            on_alarm=lambda sv: self.raise_alarm(
                "SPLIT_VIEW",
                f"the sequencer showed a split view ({sv.kind})",
                {"evidence": list(sv.evidence)},
            ),
        )

    def _bls_signer(self) -> BlsSigner | None:
        """This institution's anchoring key, when genesis names it and this node holds it."""
        from node.anchoring import log_id_of, validators_of
        from node.witnessing import BlsSigner

        key = self.files.bls_keys().get(self.config.org)
        genesis = self.genesis
        mine = [v for v in validators_of(genesis) if v.org == self.config.org]
        if key is None or not mine:
            return None
        if key.public() != mine[0].public:
            raise CheckpointError(f"keys/bls-{self.config.org}.json is not the key genesis names")
        return BlsSigner(mine[0], key, log_id_of(genesis))

    # -- replication -------------------------------------------------------------

    async def _replicate(self) -> None:
        backoff = self.config.poll_s
        while True:
            try:
                got = await self.sync_once()
                backoff = self.config.poll_s
                self.status.last_error = None
                if got == 0:
                    await asyncio.sleep(self.config.poll_s)
            except VerificationError as exc:  # a forged or broken block: stop and say so
                self.raise_alarm("REPLICA_VERIFICATION_FAILED", str(exc), {})
                log.error("replication stopped: %s", exc)
                return
            except (httpx.HTTPError, ChainError, NodeError) as exc:
                self.status.last_error = str(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def sync_once(self) -> int:
        """Pull, verify and store the next batch of blocks; returns how many."""
        assert self._client is not None  # noqa: S101 - started
        head = await asyncio.to_thread(self.replica.head)
        start = head[0] + 1 if head else 0
        r = await self._client.get("/v1/ledger/blocks", params={"from": start, "limit": BATCH})
        if r.status_code != 200:
            raise upstream_error(r)
        blocks = r.json()
        if not blocks:
            return 0
        return await asyncio.to_thread(self._store, blocks, head)

    def _store(self, blocks: list[dict[str, Any]], head: tuple[int, bytes, int] | None) -> int:
        edge: CompactRange = self.replica.edge()
        height = head[0] + 1 if head else 0
        prev = head[1] if head else genesis_hash(self.genesis)
        for data in blocks:
            block = verify_partial_block(data, height, prev, self.producer, edge)
            self.replica.append(block)
            edge.advance(len(block.hashes), block.nodes)
            prev = block.header.hash
            self.status.height = height
            self.status.log_size = block.header.log_size
            self._publish(block.header.height, block.hashes, block.receipts)
            height += 1
        return len(blocks)

    def _publish(
        self, height: int, hashes: tuple[bytes, ...], receipts: tuple[dict[str, Any] | None, ...]
    ) -> None:
        flags = []
        for entry_hash, receipt in zip(hashes, receipts, strict=True):
            for flag in (receipt or {}).get("flags", []):
                flags.append(
                    {
                        **flag,
                        "entry_hash": entry_hash.hex(),
                        "height": height,
                        "bank": self.config.org,
                        "insurer": self.config.org,
                    }
                )
        if flags and self.hub.loop is not None:
            self.hub.publish(flags)

    def raise_alarm(self, code: str, detail: str, data: dict[str, Any]) -> None:
        alarm = {
            "id": f"alarm-{len(self.status.alarms)}",
            "code": code,
            "severity": "critical",
            "detail": detail,
            "related": [],
            "data": data,
            "bank": self.config.org,
            "insurer": self.config.org,
        }
        self.status.alarms.append(alarm)
        if self.hub.loop is not None:
            self.hub.publish([alarm])

    # -- authentication ----------------------------------------------------------

    def authenticate(self, token: str) -> Caller | None:
        org = self.tokens.org_for(token)
        if org != self.config.org:
            return None
        return Caller(org, self.roles[org])

    # -- writes ------------------------------------------------------------------

    async def submit(self, caller: Caller, entry_type: str, body: dict[str, Any]) -> Receipt:
        parsed = parse_body(entry_type, body)
        require_may_sign(caller.role, entry_type, caller.org)
        key = self.files.org_key(caller.org)
        if key is None:
            raise Forbidden(caller.org, caller.role, entry_type)
        signed = make_entry(key, entry_type, body_to_json(parsed), self.clock.now())
        return await self._forward(signed.to_json())

    async def submit_signed(self, caller: Caller, envelope: Any) -> Receipt:
        signed = decode_signed_entry(envelope)
        if signed.org != caller.org:
            raise Forbidden(caller.org, caller.role, signed.type)
        require_may_sign(caller.role, signed.type, caller.org)
        parse_body(signed.type, signed.body)
        verify_timestamp(signed, self.clock.now(), self.window)
        return await self._forward(signed.to_json())

    async def _forward(self, envelope: dict[str, Any]) -> Receipt:
        assert self._client is not None  # noqa: S101 - started
        try:
            r = await self._client.post("/v1/entries", json=envelope)
        except httpx.HTTPError as exc:
            raise Overloaded(0, retry_after=1) from exc
        if r.status_code in (200, 201):
            return receipt_from_json(r.json())
        if r.status_code == 409 and "receipt" in r.json():
            return receipt_from_json(r.json()["receipt"])
        raise upstream_error(r)

    async def check_financing(self, caller: Caller, body: dict[str, Any]) -> Verdict:
        parsed = parse_body("loan.drawdown", body)
        require_may_sign(caller.role, "loan.drawdown", caller.org)
        answer = await self._get_or_post("POST", "/v1/financing-checks", body_to_json(parsed))
        return cluster.verdict_from_wire({"status": answer["status"], "flags": answer["flags"]})

    # -- reads: the sequencer's domain views, with this institution's token -------

    async def _get_or_post(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        assert self._client is not None  # noqa: S101 - started
        r = await self._client.request(method, path, json=body, params=params)
        if r.status_code != 200:
            raise upstream_error(r)
        return r.json()

    def _sync_get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        with httpx.Client(
            base_url=self.config.upstream,
            timeout=30,
            headers={"Authorization": f"Bearer {self.upstream_token}"},
        ) as c:
            r = c.get(path, params=params)
        if r.status_code != 200:
            raise upstream_error(r)
        return r.json()

    def loans(self, caller: Caller) -> list[dict[str, Any]]:
        loans: list[dict[str, Any]] = self._sync_get("/v1/loans")
        return loans

    def loan(self, caller: Caller, loan_id: str, bank: str | None = None) -> dict[str, Any]:
        loan: dict[str, Any] = self._sync_get(f"/v1/loans/{loan_id}")
        return loan

    def flags(
        self, caller: Caller, since: int | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("since", since), ("status", status)) if v is not None}
        flags: list[dict[str, Any]] = self._sync_get("/v1/flags", params)
        return flags

    def latest_anchor(self) -> dict[str, Any]:
        anchor: dict[str, Any] = self._sync_get("/v1/ledger/anchor")
        return anchor

    def buyer_light(self, buyer_code: str) -> dict[str, Any]:
        light: dict[str, Any] = self._sync_get(f"/v1/buyers/{buyer_code}/light")
        return light

    async def exporter_indicators(
        self, caller: Caller, exporter_id: str, access: str | None = None
    ) -> dict[str, Any]:
        """This node signs the read (indicators.read, with its institution's key) and forwards
        it, then asks the sequencer for the indicators under that recorded read."""
        if access is not None:
            raise NotFound("indicators.read", access)  # only the sequencer answers by access
        today = self.clock.now().date().isoformat()
        log_ = await self._get_or_post("GET", f"/v1/exporters/{exporter_id}/access-log")
        live = [
            c for c in log_["consents"]
            if c["status"] == "granted" and c["valid_until"] >= today
        ]  # fmt: skip
        if not live:
            raise Forbidden(
                caller.org, caller.role, "indicators.read",
                detail=f"consent missing: exporter {exporter_id} has not authorised {caller.org}",
            )  # fmt: skip
        body = {"exporter_id": exporter_id.upper(), "consent_id": live[-1]["consent_id"]}
        receipt = await self.submit(caller, "indicators.read", body)
        answer: dict[str, Any] = await self._get_or_post(
            "GET",
            f"/v1/exporters/{exporter_id}/indicators",
            params={"access": receipt.entry_hash.hex()},
        )
        return answer

    def access_log(self, caller: Caller, exporter_id: str) -> dict[str, Any]:
        log_: dict[str, Any] = self._sync_get(f"/v1/exporters/{exporter_id}/access-log")
        return log_

    def receivable_history(self, caller: Caller, key: str) -> list[dict[str, Any]]:
        raise Forbidden(caller.org, caller.role, "regulator reads")

    def exposures(self, caller: Caller, by: str) -> list[dict[str, Any]]:
        raise Forbidden(caller.org, caller.role, "regulator reads")

    def audit_report(self, caller: Caller, start: date, end: date) -> dict[str, Any]:
        raise Forbidden(caller.org, caller.role, "regulator reads")

    async def flag_stream(self, caller: Caller) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        item = (caller, queue)
        self.hub.subscribers.add(item)  # type: ignore[arg-type]
        try:
            while True:
                yield await queue.get()
        finally:
            self.hub.subscribers.discard(item)  # type: ignore[arg-type]

    # -- reads: the replica --------------------------------------------------------

    def checkpoint(self) -> str:
        note: str = str(self._sync_get_text("/v1/ledger/checkpoint"))
        return note

    def _sync_get_text(self, path: str) -> str:
        with httpx.Client(
            base_url=self.config.upstream,
            timeout=30,
            headers={"Authorization": f"Bearer {self.upstream_token}"},
        ) as c:
            r = c.get(path)
        if r.status_code != 200:
            raise upstream_error(r)
        return r.text

    def block(self, caller: Caller, height: int) -> dict[str, Any]:
        block = self.replica.block(height)
        if block is None:
            raise NotFound("block", str(height))
        return block

    def blocks(self, caller: Caller, start: int, limit: int) -> list[dict[str, Any]]:
        out = []
        for height in range(start, start + limit):
            block = self.replica.block(height)
            if block is None:
                break
            out.append(block)
        return out

    def entry(self, caller: Caller, entry_hash: str) -> dict[str, Any]:
        try:
            raw = bytes.fromhex(entry_hash)
        except ValueError:
            raise Unprocessable.single("hash", "an entry hash is 64 hex digits") from None
        found = self.replica.entry(raw) if len(raw) == 32 else None
        if found is None or found["receipt"] is None:
            raise NotFound("entry", entry_hash)
        size = self.status.log_size or (self.replica.head() or (0, b"", 0))[2]
        return {
            "entry": found["entry"],
            "entry_hash": entry_hash,
            "index": found["index"],
            "height": found["height"],
            "receipt": found["receipt"],
            "proof": {
                "tree_size": size,
                "log_root": root_at(size, self.replica).hex(),
                "hashes": [h.hex() for h in inclusion_proof(found["index"], size, self.replica)],
            },
        }

    def consistency(self, size1: int, size2: int) -> dict[str, Any]:
        head = self.replica.head()
        size = head[2] if head else 0
        if not 0 < size1 <= size2 <= size:
            raise Unprocessable.single("to", f"need 0 < from <= to <= {size}")
        return {
            "from": size1,
            "to": size2,
            "root1": root_at(size1, self.replica).hex(),
            "root2": root_at(size2, self.replica).hex(),
            "hashes": [h.hex() for h in consistency_proof(size1, size2, self.replica)],
        }

    def health(self) -> dict[str, Any]:
        head = self.replica.head()
        ok = not self.status.alarms and all(not t.done() for t in self._tasks)
        return {
            "status": "ok" if ok else "degraded",
            "role": "follower",
            "height": head[0] if head else None,
            "log_size": head[2] if head else 0,
            "queue": 0,
            "alarms": [a["detail"] for a in self.status.alarms],
            "upstream_error": self.status.last_error,
        }


def receipt_from_json(data: dict[str, Any]) -> Receipt:
    proof = data["inclusion_proof"]
    return Receipt(
        entry_hash=bytes.fromhex(data["entry_hash"]),
        entry_type=data["type"],
        org="",
        index=data["index"],
        height=data["height"],
        status=data["status"],
        flags=tuple(data["flags"]),
        log_size=proof["tree_size"],
        log_root=bytes.fromhex(proof["log_root"]),
        proof=tuple(bytes.fromhex(h) for h in proof["hashes"]),
        duplicate=bool(data.get("duplicate", False)),
    )
