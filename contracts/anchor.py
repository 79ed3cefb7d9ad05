"""The web3 client of CheckpointAnchor (contracts/CheckpointAnchor.sol).

    AnchorChain.embedded()          eth-tester (py-evm, Prague) in this process: the default,
                                    no service to run; its chain lives as long as the process
    AnchorChain.connect(url, key)   a JSON-RPC node (Anvil, Besu, Geth); the PoA middleware is
                                    on, so QBFT/Clique chains' long extraData is accepted
    .deploy(log_id, min_roles)      deploy the contract (the sender is its regulator)
    .register(name, role, pk, pop)  register a validator's BLS key (PoP checked on-chain)
    .anchor(size, root, signers, aggregate)
                                    send anchor(); the receipt, or AnchorRefused naming the
                                    contract's error and its arguments
    .anchored()                     {size: root} of every Anchored event
    .latest()                       (size, root) the contract holds last

Sending. Every transaction is first run as an eth_call: a refusal (Fork, Rollback,
BadSignature...) is reported with its arguments and costs no gas. It is then signed here with
the next nonce and sent raw; its receipt is awaited (``receipt_timeout``). While waiting:
a chain node that does not answer (restarting, say) is asked again with backoff until
``deadline`` seconds have passed; a transaction the node no longer knows (dropped from its
pool, or lost with a restart) is sent again, same bytes and nonce; if that nonce was meanwhile
used by a transaction of ours that anchored the same checkpoint, AlreadyAnchored is the
answer. A receipt with status 0 raises AnchorReverted.
"""

from __future__ import annotations

import ast
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import requests
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_typing import HexStr
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
)
from web3.middleware import ExtraDataToPOAMiddleware

from contracts.build import get_artifact
from contracts.eip2537 import encode_g1, encode_g2
from contracts.errors import ContractsError

log = logging.getLogger("pfnode.anchor.chain")

CONTRACT_NAME: Final = "CheckpointAnchor"
ROLE_CODES: Final = {"regulator": 0, "bank": 1, "insurer": 2}
# Gas limits, about 1.5x what was measured (contracts/CheckpointAnchor.sol's header):
# deploy 1.64M, register 358k, anchor 288k for 2 signers + 11k per further signer.
NUDGE_AFTER_S: Final = 3.0  # a transaction pending this long on a dev chain gets a block
GAS_DEPLOY: Final = 2_500_000
GAS_REGISTER: Final = 550_000
GAS_ANCHOR: Final = 420_000
GAS_PER_SIGNER: Final = 17_000
T = TypeVar("T")


class AnchorError(ContractsError):
    """The chain could not be reached in time, or a transaction got no receipt."""


class AnchorRefused(AnchorError):
    """The contract refused the call: ``error`` is its custom error's name, ``args`` its values."""

    def __init__(self, error: str, args: tuple[Any, ...]) -> None:
        shown = ", ".join(a.hex() if isinstance(a, bytes) else str(a) for a in args)
        super().__init__(f"the anchor contract refused: {error}({shown})")
        self.error = error
        self.args_ = args


class AnchorReverted(AnchorError):
    """A mined transaction reverted (receipt status 0)."""


@dataclass(frozen=True)
class Sent:
    tx_hash: str
    block_number: int
    gas_used: int


def _error_table(abi: list[dict[str, Any]]) -> dict[bytes, tuple[str, list[str]]]:
    table = {}
    for item in abi:
        if item.get("type") == "error":
            types = [i["type"] for i in item["inputs"]]
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            table[selector] = (item["name"], types)
    return table


def _revert_data(exc: Exception) -> bytes | None:
    """The revert data of a refused call: web3's error carries hex; eth-tester's
    TransactionFailed the repr of the bytes ("execution reverted: b'...'")."""
    if isinstance(exc, TransactionFailed):
        text = str(exc).removeprefix("execution reverted: ")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, bytes):
        return data
    return None


class AnchorChain:
    """One account on one chain, and (once deployed or given) the anchor contract."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        address: str | None = None,
        *,
        receipt_timeout: float = 30.0,
        deadline: float = 120.0,
        name: str = "rpc",
    ) -> None:
        self.w3 = w3
        self.account = account
        self.name = name
        self.receipt_timeout = receipt_timeout
        self.deadline = deadline
        artifact = get_artifact(CONTRACT_NAME)
        self.abi: list[dict[str, Any]] = artifact["abi"]
        self.bytecode: str = artifact["bytecode"]
        self._errors = _error_table(self.abi)
        self.contract: Contract | None = None
        self.preflight = name != "embedded"  # eth-tester runs (and refuses) on send
        if address is not None:
            self.use(address)

    # -- construction --------------------------------------------------------------

    @classmethod
    def embedded(cls, **kwargs: Any) -> AnchorChain:
        """eth-tester's py-evm chain in this process, its first funded account sending."""
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider

        backend = PyEVMBackend()
        w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
        account = Account.from_key(backend.account_keys[0].to_bytes())
        return cls(w3, account, name="embedded", **kwargs)

    @classmethod
    def connect(
        cls, url: str, private_key: str, address: str | None = None, **kwargs: Any
    ) -> AnchorChain:
        """A JSON-RPC node at `url`; `private_key` (hex) pays for the transactions."""
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        return cls(w3, Account.from_key(private_key), address, name=url, **kwargs)

    def use(self, address: str) -> None:
        self.contract = self.w3.eth.contract(address=to_checksum_address(address), abi=self.abi)

    @property
    def address(self) -> str:
        return self._contract.address

    @property
    def _contract(self) -> Contract:
        if self.contract is None:
            raise AnchorError("no anchor contract: deploy one or give its address")
        return self.contract

    # -- transactions --------------------------------------------------------------

    def deploy(self, log_id: bytes, min_roles: int) -> str:
        """Deploy CheckpointAnchor for log `log_id`; this account is its regulator."""
        factory = self.w3.eth.contract(abi=self.abi, bytecode=self.bytecode)
        sent = self._send(factory.constructor(log_id, min_roles), "deploy", GAS_DEPLOY)
        receipt = self._retry(lambda: self.w3.eth.get_transaction_receipt(HexStr(sent.tx_hash)))
        self.use(str(receipt["contractAddress"]))
        return self.address

    def register(self, name: str, role: str, public_key: bytes, pop: bytes) -> Sent:
        """Register a validator: its 48-byte BLS public key and 96-byte proof of possession."""
        call = self._contract.functions.registerValidator(
            name, ROLE_CODES[role], encode_g1(public_key), public_key, encode_g2(pop)
        )
        return self._send(call, f"register {name}", GAS_REGISTER)

    def anchor(self, size: int, root: bytes, signers: int, aggregate: bytes) -> Sent:
        """anchor(size, root, signers, aggregate signature (96-byte compressed G2))."""
        call = self._contract.functions.anchor(size, root, signers, encode_g2(aggregate))
        gas = GAS_ANCHOR + GAS_PER_SIGNER * bin(signers).count("1")
        return self._send(call, f"anchor {size}", gas)

    # -- reads ---------------------------------------------------------------------

    def latest(self) -> tuple[int, bytes]:
        size, root = self._retry(lambda: self._contract.functions.latest().call())
        return int(size), bytes(root)

    def anchored(self) -> dict[int, bytes]:
        """{size: root} of every Anchored event the contract emitted."""
        events = self._retry(lambda: self._contract.events.Anchored.get_logs(from_block=0))
        return {int(e["args"]["size"]): bytes(e["args"]["root"]) for e in events}

    def validator_count(self) -> int:
        return int(self._retry(lambda: self._contract.functions.validatorCount().call()))

    def log_id(self) -> bytes:
        return bytes(self._retry(lambda: self._contract.functions.logId().call()))

    # -- machinery -----------------------------------------------------------------

    def _send(self, call: Any, what: str, gas: int) -> Sent:
        """Send `call` with gas limit `gas` (a fixed bound: estimating runs the pairing again,
        which costs seconds on eth-tester; unused gas is not paid for)."""
        sender = self.account.address
        with self._refusals():
            if self.preflight and hasattr(call, "call"):  # a constructor has nothing to call
                self._retry(lambda: call.call({"from": sender}))  # a refusal costs no gas
            nonce = self._retry(lambda: self.w3.eth.get_transaction_count(sender, "pending"))
            tx = self._retry(
                lambda: call.build_transaction({"from": sender, "nonce": nonce, "gas": gas})
            )
            raw = self.account.sign_transaction(tx).raw_transaction
            # eth-tester runs the transaction here, and raises its revert
            tx_hash = self._retry(lambda: self.w3.eth.send_raw_transaction(raw)).to_0x_hex()
        receipt = self._await_receipt(tx_hash, raw, nonce, what)
        if receipt["status"] != 1:
            if hasattr(call, "call"):  # why: the call again, on the state it ran on
                before = int(receipt["blockNumber"]) - 1
                with self._refusals():
                    call.call({"from": sender}, block_identifier=before)
            raise AnchorReverted(f"{what}: transaction {tx_hash} reverted")
        return Sent(tx_hash, int(receipt["blockNumber"]), int(receipt["gasUsed"]))

    def _await_receipt(self, tx_hash: str, raw: bytes, nonce: int, what: str) -> Any:
        start = time.monotonic()
        end = start + self.deadline
        while True:
            try:
                return self.w3.eth.wait_for_transaction_receipt(
                    HexStr(tx_hash), timeout=self.receipt_timeout, poll_latency=0.05
                )
            except TimeExhausted:
                pass
            except (requests.ConnectionError, requests.Timeout, OSError) as exc:
                log.warning("%s: chain %s does not answer (%s); waiting", what, self.name, exc)
                time.sleep(0.5)
            if time.monotonic() > end:
                raise AnchorError(f"{what}: no receipt for {tx_hash} in {self.deadline:.0f} s")
            self._resend_if_dropped(tx_hash, raw, nonce, what, time.monotonic() - start)

    def _resend_if_dropped(
        self, tx_hash: str, raw: bytes, nonce: int, what: str, waited: float
    ) -> None:
        try:
            self.w3.eth.get_transaction(HexStr(tx_hash))
            if waited > NUDGE_AFTER_S:
                self._nudge_dev_chain(what)
            return  # still pending: wait on
        except TransactionNotFound:
            pass
        except (requests.ConnectionError, requests.Timeout, OSError):
            return
        used = self.w3.eth.get_transaction_count(self.account.address, "latest")
        if used > nonce:
            raise AnchorError(f"{what}: nonce {nonce} was used by another transaction")
        log.warning(
            "%s: transaction %s was dropped; sending it again (nonce %d)", what, tx_hash, nonce
        )
        try:
            self.w3.eth.send_raw_transaction(raw)
        except (requests.ConnectionError, requests.Timeout, OSError, ValueError) as exc:
            log.warning("%s: resend failed (%s); will try again", what, exc)

    def _nudge_dev_chain(self, what: str) -> None:
        """Anvil's automine now and then leaves a transaction pending until another arrives
        (see contracts/registry_bench.py): on a dev chain, mine a block. A real chain has no
        evm_mine and answers an error, which is ignored."""
        try:
            answer = self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        except (requests.ConnectionError, requests.Timeout, OSError, ValueError):
            return
        if "error" not in answer:
            log.warning("%s: transaction still pending on a dev chain; mined a block", what)

    @contextmanager
    def _refusals(self) -> Iterator[None]:
        """Turn a contract revert into AnchorRefused with the custom error's name and args."""
        try:
            yield
        except (ContractCustomError, ContractLogicError, TransactionFailed) as exc:
            data = _revert_data(exc)
            if data is not None and data[:4] in self._errors:
                name, types = self._errors[data[:4]]
                raise AnchorRefused(name, tuple(abi_decode(types, data[4:]))) from exc
            raise AnchorRefused(str(exc), ()) from exc

    def _retry(self, fn: Callable[[], T]) -> T:
        """`fn`, asked again with backoff while the chain node does not answer."""
        end, pause = time.monotonic() + self.deadline, 0.1
        while True:
            try:
                return fn()
            except (requests.ConnectionError, requests.Timeout, ConnectionError) as exc:
                if time.monotonic() > end:
                    raise AnchorError(f"chain {self.name} unreachable: {exc}") from exc
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
