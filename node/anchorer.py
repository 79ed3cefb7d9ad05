"""The sequencer's anchoring: aggregate a checkpoint's BLS signatures when due, anchor it.

    AnchorConfig      where (``embedded`` eth-tester, or an RPC URL with a contract address
                      and an account key) and how often (every N blocks or T seconds)
    Anchorer          ``offer(size, root, sigs)`` after each cosigned checkpoint: when an
                      anchor is due, aggregate (node.anchoring.Aggregator) and store it;
                      ``anchor_pending()`` sends the newest stored aggregate not yet on-chain
    verify_anchored   the offline check: every checkpoint the chain holds must be the
                      ledger's root at that size, and the ledger must reach the last one

The aggregate is stored before it is sent, and the transaction's hash after its receipt: a
sequencer killed in between sends it again at restart, and the contract's AlreadyAnchored
answer (a transaction of ours that did land) is taken as done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chain.blocks import BlockHeader
from chain.bls import BlsKey
from chain.canonical import parse
from chain.entries import format_ts
from chain.verify import LedgerSource
from node.anchoring import Aggregated, Aggregator, AnchorStore, NoQuorum, signer_bitmap

log = logging.getLogger("pfnode.anchor")


@dataclass(frozen=True)
class AnchorConfig:
    chain: str  # "embedded" or an RPC URL
    contract: str | None = None  # required with an RPC URL; embedded deploys its own
    account_key: str | None = None  # hex private key paying for transactions (RPC)
    every_blocks: int = 100
    every_seconds: float = 60.0
    receipt_timeout: float = 5.0  # then: resent if dropped, nudged on a dev chain


class Anchorer:
    """Decides when a checkpoint is anchored, aggregates it, and sends it."""

    def __init__(
        self,
        genesis: Mapping[str, Any],
        local_keys: Mapping[str, BlsKey],
        store: AnchorStore,
        config: AnchorConfig,
        chain: Any = None,  # contracts.anchor.AnchorChain (contracts/ is imported lazily)
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.aggregator = Aggregator(genesis, local_keys)
        self.store = store
        self.config = config
        self.chain = chain
        self.clock = clock
        last = store.latest()
        self._last_size = last.size if last else 0
        self._last_at = clock()
        self._last_height = -1
        self.wake = threading.Event()

    def is_due(self, size: int, height: int) -> bool:
        if size <= self._last_size:
            return False
        if self._last_height < 0 or height - self._last_height >= self.config.every_blocks:
            return True
        return self.clock() - self._last_at >= self.config.every_seconds

    def offer(
        self, size: int, root: bytes, height: int, remote: Mapping[str, bytes]
    ) -> Aggregated | None:
        """Aggregate and store checkpoint (size, root) if an anchor is due; None otherwise."""
        if not self.is_due(size, height):
            return None
        try:
            agg = self.aggregator.aggregate(size, root, remote)
        except NoQuorum as exc:
            log.warning("checkpoint %d not anchored: %s", size, exc)
            return None
        self.store.save(agg, format_ts_now())
        self._last_size, self._last_at, self._last_height = size, self.clock(), height
        self.wake.set()
        return agg

    def anchor_pending(self) -> Aggregated | None:
        """Send the newest stored aggregate if it is not anchored yet; what was anchored."""
        agg = self.store.latest()
        if agg is None or agg.tx_hash is not None or self.chain is None:
            return None
        from contracts.anchor import AnchorRefused

        bitmap = signer_bitmap(self.aggregator.validators, agg.signers)
        try:
            sent = self.chain.anchor(agg.size, agg.root, bitmap, agg.signature)
            tx_hash, block = sent.tx_hash, sent.block_number
        except AnchorRefused as exc:
            if exc.error != "AlreadyAnchored":
                raise
            tx_hash, block = "already-anchored", -1  # our earlier transaction landed
        chain_id = int(self.chain.w3.eth.chain_id)
        self.store.mark_anchored(agg.size, tx_hash, block, chain_id, self.chain.address)
        log.info("anchored checkpoint %d in block %d (%s)", agg.size, block, tx_hash)
        return agg

    def run(self, stop: threading.Event, connect: Callable[[], Any] | None = None) -> None:
        """Connect (``connect()`` gives the chain), then anchor what is pending whenever an
        aggregate is stored (or every second), until `stop`."""
        while connect is not None and self.chain is None and not stop.is_set():
            try:
                self.chain = connect()
            except Exception:
                log.exception("anchor chain not ready; will try again")
                stop.wait(5.0)
        while not stop.is_set():
            try:
                self.anchor_pending()
            except Exception:  # the chain's trouble never stops the sequencer
                log.exception("anchoring failed; will try again")
                stop.wait(2.0)
            self.wake.wait(1.0)
            self.wake.clear()


def format_ts_now() -> str:
    from datetime import UTC, datetime

    return format_ts(datetime.now(UTC))


def make_chain(config: AnchorConfig, genesis: Mapping[str, Any]) -> Any:
    """The AnchorChain `config` names; the embedded chain gets a contract deployed and the
    genesis validators registered (its chain starts empty with the process)."""
    from contracts.anchor import AnchorChain
    from node.anchoring import log_id_of, min_roles_of, validators_of

    if config.chain == "embedded":
        chain = AnchorChain.embedded(receipt_timeout=config.receipt_timeout)
        chain.deploy(log_id_of(genesis), min_roles_of(genesis))
        for v in validators_of(genesis):
            chain.register(v.name, v.role, v.public, v.pop)
        return chain
    if not config.contract or not config.account_key:
        raise ValueError("anchoring on an RPC chain needs --anchor-contract and --anchor-key")
    chain = AnchorChain.connect(
        config.chain, config.account_key, config.contract, receipt_timeout=config.receipt_timeout
    )
    if chain.log_id() != log_id_of(genesis):
        raise ValueError(f"contract {config.contract} anchors another log than this genesis")
    return chain


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class AnchorReport:
    checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def block_roots(source: LedgerSource) -> dict[int, bytes]:
    """{log size: log root} at the end of every block of `source` (whose headers the
    verifier has checked: signature, prev_hash, entries and RFC 9162 root)."""
    roots: dict[int, bytes] = {}
    for raw in source.raw_blocks():
        header = BlockHeader.from_json(parse(raw.header))
        roots[header.log_size] = header.log_root
    return roots


def verify_anchored(roots: Mapping[int, bytes], anchored: Mapping[int, bytes]) -> AnchorReport:
    """Every checkpoint the chain anchors must be a block boundary of the ledger with the same
    root, and the ledger must reach the last one (else it was truncated or rolled back)."""
    problems = []
    log_size = max(roots, default=0)
    for size in sorted(anchored):
        if size > log_size:
            problems.append(
                f"the chain anchors size {size} but the ledger holds {log_size} entries "
                "(truncated or rolled back)"
            )
        elif size not in roots:
            problems.append(f"the chain anchors size {size}, at which no block of the ledger ends")
        elif roots[size] != anchored[size]:
            problems.append(
                f"checkpoint {size}: the chain anchors root {anchored[size].hex()}, "
                f"the ledger's root is {roots[size].hex()}"
            )
    return AnchorReport(len(anchored), problems)
