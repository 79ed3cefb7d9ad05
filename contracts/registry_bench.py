"""The comparator: duplicate financing caught by a minimal Solidity registry on Anvil.

This is what a bank's engineer might build instead of pfnode: DuplicateRegistry
(contracts/DuplicateRegistry.sol) deployed on an EVM node, one `register(fingerprint)`
transaction per loan drawdown, and a duplicate known by its reverted transaction.

`run_registry_bench` drives it the way a bank's back office would:

- `clients` concurrent clients (threads), each with its own funded account, its own keep-alive
  HTTP connection and its own nonce counter, taking the next drawdown from one shared queue;
- per drawdown: the complete `register(fingerprint)` transaction (EIP-1559, gas limit 100,000
  and fees fixed, so no estimation round trip), signed locally with the client's key
  (eth-account; eth-keys on coincurve), sent with eth_sendRawTransaction; then
  eth_getTransactionReceipt is polled (at once, then backing off from 1 ms to every 10 ms)
  until it is mined, and only then does that client take its next drawdown;
- a duplicate's transaction reverts (receipt status 0): counted as "duplicate detected".

The registry is deployed with web3.py; the hot loop speaks JSON-RPC over http.client, because
web3.py's per-call middleware and `requests` cost several times more Python CPU per drawdown
than Anvil spends mining it, and the benchmark is meant to measure the registry approach, not
our client. Anvil's automine includes a transaction the moment it arrives, so these figures
are the registry's best case: a real consortium chain adds its block time to every latency.
Two Anvil (1.7.1) traits show in long runs: its CPU per mined block grows with the chain's
height (about 1.4 ms on a fresh chain, 9 ms after 3,000 blocks, empty or not), so throughput
falls as a run goes on; and automine now and then leaves a transaction pending until the next
one arrives, which `wait_for_receipt` unsticks with `evm_mine` after a second (counted in
"mining_nudges", and visible in p99).

Latency is per drawdown, from building the transaction to holding its receipt; throughput is
drawdowns / (start .. last receipt). `run_registry_batched` is the ceiling, for reference: every
transaction pre-signed (not timed), sent in JSON-RPC batches of 500, throughput only.

Each run starts its own Anvil unless it is handed one, and deploys a fresh registry.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import statistics
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.types import TxParams

from contracts.anvil import AnvilProcess
from contracts.build import get_artifact
from contracts.errors import BenchError

__all__ = [
    "REGISTRY_NAME",
    "RpcSession",
    "compute_register_transaction",
    "deploy_registry",
    "get_nonce",
    "get_registry",
    "get_registry_factory",
    "is_reverted",
    "open_web3",
    "process_registration",
    "run_registry_batched",
    "run_registry_bench",
    "wait_for_receipt",
]

REGISTRY_NAME = "DuplicateRegistry"
REGISTER_SELECTOR = keccak(text="register(bytes32)")[:4]
REGISTER_GAS = 100_000  # a first registration uses ~46k, a reverted duplicate ~24k
DEPLOY_GAS = 1_000_000
MAX_FEE_PER_GAS = 10 * 10**9  # 10 gwei: above Anvil's 1 gwei base fee, which only falls here
MAX_PRIORITY_FEE_PER_GAS = 10**9
RECEIPT_FIRST_POLL_S = 0.001
RECEIPT_POLL_S = 0.010
STALL_S = 1.0
RECEIPT_TIMEOUT_S = 120.0
BATCH_SIZE = 500
FINGERPRINT_BYTES = 32


@dataclass(frozen=True)
class Drawdown:
    """One registration as a client saw it: its latency and whether it reverted."""

    latency_s: float
    reverted: bool


class RpcSession:
    """Ethereum JSON-RPC over one keep-alive HTTP/1.1 connection (http.client, no middleware).

    `nudges` counts the `evm_mine` calls `wait_for_receipt` made on this session.
    """

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only plain http:// JSON-RPC URLs are supported, not {url!r}")
        self.url = url
        self.nudges = 0
        self._path = parts.path or "/"
        self._connection = http.client.HTTPConnection(
            parts.hostname, parts.port or 80, timeout=RECEIPT_TIMEOUT_S
        )

    def __enter__(self) -> RpcSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._connection.close()

    def call(self, method: str, params: list[Any]) -> Any:
        """One call; its result, or BenchError carrying the node's error."""
        (result,) = self.batch([(method, params)])
        return result

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one JSON-RPC batch; their results in order, BenchError on any error."""
        payload: list[dict[str, Any]] = [
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            for request_id, (method, params) in enumerate(calls)
        ]
        answers = self._post(payload if len(payload) > 1 else payload[0])
        by_id = {item.get("id"): item for item in answers}
        results = []
        for request in payload:
            item = by_id.get(request["id"])
            if item is None or "error" in item:
                error = None if item is None else item["error"]
                raise BenchError(f"{request['method']} failed: {error}")
            results.append(item["result"])
        return results

    def _post(self, body: Any) -> list[dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        try:
            self._connection.request("POST", self._path, json.dumps(body), headers)
            response = self._connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._connection.close()
            raise BenchError(f"JSON-RPC to {self.url} failed: {exc!r}") from exc
        if response.status != 200:
            raise BenchError(f"JSON-RPC to {self.url} answered HTTP {response.status}")
        answer = json.loads(data)
        return answer if isinstance(answer, list) else [answer]


class _WorkQueue:
    """Hands out fingerprint indexes 0..n-1, each exactly once, to any number of threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._next >= self._size:
                return None
            index, self._next = self._next, self._next + 1
            return index


@contextmanager
def open_web3(url: str) -> Iterator[Web3]:
    """A Web3 on `url` with its own HTTP session, closed on exit (no leaked sockets)."""
    session = requests.Session()
    try:
        yield Web3(Web3.HTTPProvider(url, session=session))
    finally:
        session.close()


def compute_duplicates_sent(fingerprints: Sequence[bytes]) -> int:
    """How many entries of `fingerprints` repeat an earlier one."""
    return len(fingerprints) - len(set(fingerprints))


def compute_percentile_ms(latencies_s: Sequence[float], percent: int) -> float:
    """The `percent`-th percentile of `latencies_s` in milliseconds (inclusive method)."""
    if len(latencies_s) == 1:
        return latencies_s[0] * 1000.0
    cut_points = statistics.quantiles(latencies_s, n=100, method="inclusive")
    return cut_points[percent - 1] * 1000.0


def verify_fingerprints(fingerprints: Sequence[bytes]) -> None:
    """Raise ValueError unless there is at least one fingerprint and each is 32 bytes."""
    if not fingerprints:
        raise ValueError("the benchmark needs at least one fingerprint")
    wrong = [fp for fp in fingerprints if not isinstance(fp, bytes) or len(fp) != 32]
    if wrong:
        raise ValueError(f"{len(wrong)} fingerprints are not {FINGERPRINT_BYTES} bytes")


def get_registry_factory(w3: Web3) -> type[Contract]:
    """The DuplicateRegistry contract class, with its bytecode, ready to deploy."""
    artifact = get_artifact(REGISTRY_NAME)
    return w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])


def get_registry(w3: Web3, address: str) -> Contract:
    """The DuplicateRegistry deployed at `address`."""
    artifact = get_artifact(REGISTRY_NAME)
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact["abi"])


def deploy_registry(w3: Web3, deployer: LocalAccount) -> str:
    """Deploy a fresh DuplicateRegistry from `deployer` with web3.py; return its address."""
    fields = {
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(deployer.address, "pending"),
        "gas": DEPLOY_GAS,
        "maxFeePerGas": MAX_FEE_PER_GAS,
        "maxPriorityFeePerGas": MAX_PRIORITY_FEE_PER_GAS,
    }
    transaction = get_registry_factory(w3).constructor().build_transaction(cast(TxParams, fields))
    signed = deployer.sign_transaction(dict(transaction))
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(
        tx_hash, timeout=RECEIPT_TIMEOUT_S, poll_latency=RECEIPT_POLL_S
    )
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise BenchError(f"DuplicateRegistry deployment reverted: {dict(receipt)}")
    return str(receipt["contractAddress"])


def compute_register_transaction(
    registry_address: str, fingerprint: bytes, chain_id: int, nonce: int
) -> dict[str, Any]:
    """The complete, unsigned EIP-1559 `register(fingerprint)` transaction."""
    return {
        "type": 2,
        "chainId": chain_id,
        "nonce": nonce,
        "to": Web3.to_checksum_address(registry_address),
        "value": 0,
        "data": "0x" + (REGISTER_SELECTOR + fingerprint).hex(),
        "gas": REGISTER_GAS,
        "maxFeePerGas": MAX_FEE_PER_GAS,
        "maxPriorityFeePerGas": MAX_PRIORITY_FEE_PER_GAS,
    }


def wait_for_receipt(rpc: RpcSession, tx_hash: str) -> dict[str, Any]:
    """Poll eth_getTransactionReceipt: at once, then after 1, 2, 4, 8 ms, then every 10 ms.

    Anvil's automine can leave transactions pending when a burst arrives while it is mining
    (seen with 1.7.1 once the chain is a few thousand blocks long): after STALL_S with no
    receipt, this asks for a block with `evm_mine` and counts it in `rpc.nudges`.
    """
    deadline = time.monotonic() + RECEIPT_TIMEOUT_S
    next_nudge = time.monotonic() + STALL_S
    pause = RECEIPT_FIRST_POLL_S
    while (receipt := rpc.call("eth_getTransactionReceipt", [tx_hash])) is None:
        now = time.monotonic()
        if now > deadline:
            raise BenchError(f"no receipt for {tx_hash} in {RECEIPT_TIMEOUT_S}s")
        if now > next_nudge:
            rpc.call("evm_mine", [])
            rpc.nudges += 1
            next_nudge = now + STALL_S
        time.sleep(pause)
        pause = min(pause * 2, RECEIPT_POLL_S)
    return cast(dict[str, Any], receipt)


def process_registration(
    rpc: RpcSession,
    account: LocalAccount,
    registry_address: str,
    fingerprint: bytes,
    chain_id: int,
    nonce: int,
) -> dict[str, Any]:
    """One drawdown: sign `register(fingerprint)`, send it, and return its mined receipt."""
    transaction = compute_register_transaction(registry_address, fingerprint, chain_id, nonce)
    signed = account.sign_transaction(transaction)
    tx_hash = rpc.call("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
    return wait_for_receipt(rpc, tx_hash)


def is_reverted(receipt: dict[str, Any]) -> bool:
    """True when a mined transaction reverted (status 0)."""
    return int(receipt["status"], 16) == 0


def get_nonce(rpc: RpcSession, address: str) -> int:
    """The next nonce of `address`, counting its pending transactions."""
    return int(rpc.call("eth_getTransactionCount", [address, "pending"]), 16)


def process_client(
    url: str,
    account: LocalAccount,
    registry_address: str,
    chain_id: int,
    fingerprints: Sequence[bytes],
    queue: _WorkQueue,
    start: threading.Barrier,
) -> tuple[list[Drawdown], float, int]:
    """One bank client: register drawdowns one at a time until the queue is empty.

    Returns what it saw, the perf_counter time of its last receipt, and its mining nudges.
    """
    drawdowns: list[Drawdown] = []
    with RpcSession(url) as rpc:
        try:
            nonce = get_nonce(rpc, account.address)
        except BaseException:
            start.abort()  # release the others; the caller re-raises this from the future
            raise
        start.wait()
        last_receipt_at = time.perf_counter()
        while (index := queue.take()) is not None:
            began = time.perf_counter()
            receipt = process_registration(
                rpc, account, registry_address, fingerprints[index], chain_id, nonce
            )
            last_receipt_at = time.perf_counter()
            nonce += 1
            drawdowns.append(Drawdown(last_receipt_at - began, is_reverted(receipt)))
    return drawdowns, last_receipt_at, rpc.nudges


@contextmanager
def _node_for(clients: int, node: AnvilProcess | None) -> Iterator[AnvilProcess]:
    """`node` if given (it must fund clients + 1 accounts), else a fresh Anvil for one run."""
    with ExitStack() as stack:
        if node is None:
            node = stack.enter_context(AnvilProcess(accounts=clients + 1))
        if len(node.accounts) < clients + 1:
            raise ValueError(f"{clients} clients and a deployer need {clients + 1} accounts")
        yield node


def _deploy(node: AnvilProcess) -> str:
    with open_web3(node.url) as w3:
        return deploy_registry(w3, node.accounts[0])


def run_registry_bench(
    fingerprints: list[bytes], clients: int = 32, *, node: AnvilProcess | None = None
) -> dict[str, Any]:
    """Register every fingerprint, one awaited transaction per drawdown, from `clients` clients.

    Returns {"throughput" (drawdowns/s), "p50_ms", "p99_ms", "count", "duplicates_detected"
    (reverted registrations), "duplicates_sent" (fingerprints repeating an earlier one),
    "mining_nudges" (evm_mine calls that unstuck Anvil's automine; 0 in a clean run)}.
    """
    verify_fingerprints(fingerprints)
    if clients < 1:
        raise ValueError("the benchmark needs at least one client")
    with _node_for(clients, node) as anvil:
        registry_address = _deploy(anvil)
        queue = _WorkQueue(len(fingerprints))
        start = threading.Barrier(clients + 1)
        with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="bank") as pool:
            futures = [
                pool.submit(
                    process_client,
                    anvil.url,
                    anvil.accounts[1 + client],
                    registry_address,
                    anvil.chain_id,
                    fingerprints,
                    queue,
                    start,
                )
                for client in range(clients)
            ]
            with contextlib.suppress(threading.BrokenBarrierError):
                start.wait()  # broken when a client failed to start: its future raises below
            began = time.perf_counter()
            results = [future.result() for future in futures]
    drawdowns = [drawdown for seen, _, _ in results for drawdown in seen]
    elapsed = max(finished for _, finished, _ in results) - began
    latencies = [drawdown.latency_s for drawdown in drawdowns]
    return {
        "throughput": len(drawdowns) / elapsed,
        "p50_ms": compute_percentile_ms(latencies, 50),
        "p99_ms": compute_percentile_ms(latencies, 99),
        "count": len(drawdowns),
        "duplicates_detected": sum(drawdown.reverted for drawdown in drawdowns),
        "duplicates_sent": compute_duplicates_sent(fingerprints),
        "mining_nudges": sum(nudges for _, _, nudges in results),
    }


def compute_signed_batch(
    rpc: RpcSession,
    registry_address: str,
    accounts: Sequence[LocalAccount],
    fingerprints: Sequence[bytes],
    chain_id: int,
) -> tuple[list[str], list[str]]:
    """Pre-sign one registration per fingerprint, round-robin over `accounts`.

    Returns the raw transactions ("0x..." hex, in sending order) and each sender's last
    transaction hash: once that is mined, all of that sender's are (nonces are consecutive).
    """
    nonces = {account.address: get_nonce(rpc, account.address) for account in accounts}
    raws: list[str] = []
    last_hash: dict[str, str] = {}
    for index, fingerprint in enumerate(fingerprints):
        account = accounts[index % len(accounts)]
        transaction = compute_register_transaction(
            registry_address, fingerprint, chain_id, nonces[account.address]
        )
        nonces[account.address] += 1
        signed = account.sign_transaction(transaction)
        raws.append("0x" + signed.raw_transaction.hex())
        last_hash[account.address] = "0x" + signed.hash.hex()
    return raws, list(last_hash.values())


def run_registry_batched(
    fingerprints: list[bytes],
    clients: int = 32,
    *,
    batch_size: int = BATCH_SIZE,
    node: AnvilProcess | None = None,
) -> dict[str, Any]:
    """The best JSON-RPC figure, for reference: all registrations pre-signed (not timed), sent
    in batches of `batch_size`, timed until every sender's last receipt is in.

    Returns {"throughput" (registrations/s), "count", "mining_nudges"}.
    """
    verify_fingerprints(fingerprints)
    if clients < 1 or batch_size < 1:
        raise ValueError("the batched run needs at least one sender and a positive batch size")
    with _node_for(clients, node) as anvil, RpcSession(anvil.url) as rpc:
        registry_address = _deploy(anvil)
        senders = anvil.accounts[1 : clients + 1]
        raws, last_hashes = compute_signed_batch(
            rpc, registry_address, senders, fingerprints, anvil.chain_id
        )
        began = time.perf_counter()
        for offset in range(0, len(raws), batch_size):
            chunk = raws[offset : offset + batch_size]
            rpc.batch([("eth_sendRawTransaction", [raw]) for raw in chunk])
        for tx_hash in last_hashes:
            wait_for_receipt(rpc, tx_hash)
        elapsed = time.perf_counter() - began
    return {"throughput": len(raws) / elapsed, "count": len(raws), "mining_nudges": rpc.nudges}
