"""CheckpointAnchor verifies BLS12-381 aggregate signatures on-chain (EIP-2537 precompiles).

Every contract test runs on two chains: eth-tester (py-evm's PragueVM, in process, whose
precompiles are py-ecc in Python: a pairing check costs ~4 s there) and a real Anvil node
(`anvil` mark). One deployment per chain (module scope) registers four validators and anchors
a first checkpoint; every test then runs inside an EVM snapshot that is reverted afterwards,
so tests are independent of each other's order. Refusals are asserted by the custom error
an eth_call reverts with (selector and arguments) and, where cheap, by a mined transaction
that fails. On eth-tester the refusals that need a pairing are only called, not also mined,
to keep the suite's pairing checks few.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_abi import decode
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from py_ecc.bls.g2_primitives import G1_to_pubkey
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.optimized_bls12_381 import FQ as OptFQ
from py_ecc.optimized_bls12_381 import (
    G1,
    G2,
    curve_order,
    field_modulus,
    is_inf,
    multiply,
    neg,
    normalize,
)
from web3 import EthereumTesterProvider, Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError
from web3.types import TxReceipt

from chain.bls import Backend, BlsKey, KeyGen, anchor_message, get_backend
from contracts.anvil import AnvilProcess
from contracts.build import CONTRACTS_DIR, get_artifact
from contracts.eip2537 import (
    NEG_G1_GENERATOR,
    decode_g1_point,
    decode_g2,
    decode_g2_point,
    encode_g1,
    encode_g1_point,
    encode_g2,
    encode_g2_point,
)
from contracts.errors import ToolchainError
from contracts.registry_bench import open_web3

SIGNATURE_DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
LOG_ID = hashlib.sha256(b"pfnode test log genesis").digest()
MIN_ROLES = 2
GAS = 3_000_000  # explicit: eth-tester's gas estimate is a binary search over full executions
REGULATOR, BANK, INSURER = 0, 1, 2
FIRST_SIZE = 10

BLS: Backend = get_backend()  # blspy when installed: signing costs nothing next to the EVM


def root_of(size: int, branch: bytes = b"") -> bytes:
    return hashlib.sha256(b"root" + branch + size.to_bytes(8, "big")).digest()


def make_key(name: str) -> BlsKey:
    return BlsKey(name, KeyGen(hashlib.sha256(name.encode()).digest()))


# name, role: the deployment registers these in this order (index = position)
VALIDATORS = [("regulator", REGULATOR), ("bank-a", BANK), ("insurer", INSURER), ("bank-b", BANK)]
KEYS = [make_key(name) for name, _ in VALIDATORS]


def sign_anchor(keys: Sequence[BlsKey], size: int, root: bytes) -> bytes:
    """The EIP-2537 encoding of the aggregate of `keys`' signatures over (size, root)."""
    message = anchor_message(LOG_ID, size, root)
    return encode_g2(BLS.Aggregate([key.sign(message, BLS) for key in keys]))


def bitmap(*indices: int) -> int:
    return sum(1 << index for index in indices)


def registration_args(key: BlsKey, name: str, role: int) -> tuple[str, int, bytes, bytes, bytes]:
    public = key.public(BLS)
    return (name, role, encode_g1(public), public, encode_g2(key.pop(BLS)))


# ------------------------------------------------------------------------ chains and fixtures


@dataclass
class Chain:
    name: str
    w3: Web3
    regulator: str  # the deployer's account
    outsider: str  # another funded account


@dataclass
class Deployment:
    chain: Chain
    contract: Contract
    receipts: dict[str, TxReceipt] = field(default_factory=dict)


ERRORS = {
    keccak(text=f"{item['name']}({','.join(i['type'] for i in item['inputs'])})")[:4]: item
    for item in get_artifact("CheckpointAnchor")["abi"]
    if item["type"] == "error"
}


@pytest.fixture(
    scope="module", params=["eth-tester", pytest.param("anvil", marks=pytest.mark.anvil)]
)
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    if request.param == "eth-tester":
        w3 = Web3(EthereumTesterProvider())
        yield Chain("eth-tester", w3, w3.eth.accounts[0], w3.eth.accounts[1])
        return
    with ExitStack() as stack:
        try:
            node = stack.enter_context(AnvilProcess(accounts=2))
        except ToolchainError as exc:
            pytest.skip(f"anvil cannot be installed here (needs node and npm): {exc}")
        w3 = stack.enter_context(open_web3(node.url))
        yield Chain("anvil", w3, node.accounts[0].address, node.accounts[1].address)


def transact(chain: Chain, call: Any, sender: str | None = None) -> TxReceipt:
    """Mine `call` as a transaction from `sender` (the regulator by default); its receipt."""
    tx_hash = call.transact({"from": sender or chain.regulator, "gas": GAS})
    return chain.w3.eth.wait_for_transaction_receipt(tx_hash)


@pytest.fixture(scope="module")
def deployment(chain: Chain) -> Deployment:
    """CheckpointAnchor(LOG_ID, minRoles 2), the four VALIDATORS registered, and checkpoint
    FIRST_SIZE anchored by the regulator and bank-a."""
    artifact = get_artifact("CheckpointAnchor")
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = factory.constructor(LOG_ID, MIN_ROLES).transact({"from": chain.regulator, "gas": GAS})
    deployed = chain.w3.eth.wait_for_transaction_receipt(tx_hash)
    assert deployed["status"] == 1
    contract = chain.w3.eth.contract(address=deployed["contractAddress"], abi=artifact["abi"])
    result = Deployment(chain, contract, {"deploy": deployed})
    for key, (name, role) in zip(KEYS, VALIDATORS, strict=True):
        receipt = transact(
            chain, contract.functions.registerValidator(*registration_args(key, name, role))
        )
        assert receipt["status"] == 1, name
        result.receipts[f"register {name}"] = receipt
    signature = sign_anchor(KEYS[:2], FIRST_SIZE, root_of(FIRST_SIZE))
    receipt = transact(
        chain,
        contract.functions.anchor(FIRST_SIZE, root_of(FIRST_SIZE), bitmap(0, 1), signature),
        chain.outsider,  # anyone may submit: the signature is the authority
    )
    assert receipt["status"] == 1
    result.receipts["anchor 2 signers"] = receipt
    # eth-tester reverts to a snapshot by re-executing the snapshot's block: let that block
    # be an empty one, not the anchor (a pairing check, seconds in py-evm) mined just now
    if chain.name == "eth-tester":
        chain.w3.testing.mine()  # (Anvil's evm_mine would read web3's block count as a timestamp)
    return result


@pytest.fixture
def anchor(deployment: Deployment) -> Iterator[Deployment]:
    """The module's deployment, its state restored (EVM snapshot) when the test ends."""
    snapshot = deployment.chain.w3.testing.snapshot()
    try:
        yield deployment
    finally:
        deployment.chain.w3.testing.revert(snapshot)


def get_revert(call: Callable[[], Any]) -> tuple[str, tuple[Any, ...]]:
    """Run an eth_call that must revert with one of CheckpointAnchor's custom errors; return
    the error's name and decoded arguments.

    Anvil's revert data reaches web3 as ContractCustomError.data (hex); eth-tester's provider
    raises TransactionFailed("execution reverted: b'...'") carrying the bytes' repr instead.
    """
    try:
        call()
    except ContractCustomError as exc:
        data = bytes.fromhex(str(exc.data).removeprefix("0x"))
    except TransactionFailed as exc:
        data = ast.literal_eval(str(exc).removeprefix("execution reverted: "))
    else:
        raise AssertionError("the call did not revert")
    error = ERRORS[data[:4]]
    return error["name"], decode([i["type"] for i in error["inputs"]], data[4:])


def assert_refused(
    anchor: Deployment,
    call: Any,
    expected: tuple[str, tuple[Any, ...]],
    sender: str | None = None,
    mine: bool = True,
) -> None:
    """`call` reverts with custom error `expected` (name, args), both as an eth_call and,
    when `mine`, as a mined transaction that fails and leaves the log's state alone."""
    chain = anchor.chain
    assert get_revert(lambda: call.call({"from": sender or chain.regulator})) == expected
    if mine:
        functions = anchor.contract.functions
        before = (functions.latest().call(), functions.anchorCount().call())
        before_validators = functions.validatorCount().call()
        assert transact(chain, call, sender)["status"] == 0
        assert (functions.latest().call(), functions.anchorCount().call()) == before
        assert functions.validatorCount().call() == before_validators


def pairing_refusals_mined(anchor: Deployment) -> bool:
    """Mine refusals that run a pairing check only where that is cheap (not in py-evm)."""
    return anchor.chain.name != "eth-tester"


# ------------------------------------------------------------------------ eip2537 helpers


def test_neg_g1_generator_matches_py_ecc_and_the_contract_source() -> None:
    assert encode_g1(G1_to_pubkey(neg(G1))) == NEG_G1_GENERATOR
    gx, gy = normalize(G1)
    assert NEG_G1_GENERATOR[:64] == int(gx).to_bytes(64, "big")
    assert NEG_G1_GENERATOR[64:] == (field_modulus - int(gy)).to_bytes(64, "big")
    source = (CONTRACTS_DIR / "CheckpointAnchor.sol").read_text("utf-8")
    (literal,) = re.findall(r'NEG_G1_GENERATOR =\s*hex"([0-9a-f]+)"', source)
    assert bytes.fromhex(literal) == NEG_G1_GENERATOR


def test_encodings_round_trip_through_compression() -> None:
    key = make_key("round-trip")
    public, signature = key.public(BLS), key.sign(b"message", BLS)
    encoded_key, encoded_signature = encode_g1(public), encode_g2(signature)
    assert len(encoded_key) == 128 and encoded_key[:16] == encoded_key[64:80] == bytes(16)
    assert len(encoded_signature) == 256
    assert G1_to_pubkey(decode_g1_point(encoded_key)) == public
    assert encode_g1_point(decode_g1_point(encoded_key)) == encoded_key
    assert decode_g2(encoded_signature) == signature
    assert encode_g2_point(decode_g2_point(encoded_signature)) == encoded_signature
    assert encode_g2(bytes([0xC0]) + bytes(95)) == bytes(256)  # infinity: all zeros


def point_outside_g1_subgroup() -> tuple[int, int]:
    """A point on y^2 = x^3 + 4 of order other than r (the cofactor is large: most x give one)."""
    for x in range(1, 100):
        rhs = (x**3 + 4) % field_modulus
        y = pow(rhs, (field_modulus + 1) // 4, field_modulus)  # p = 3 mod 4
        if y * y % field_modulus == rhs and not is_inf(
            multiply((OptFQ(x), OptFQ(y), OptFQ(1)), curve_order)
        ):
            return x, y
    raise AssertionError("no point outside the subgroup among small x")


def test_encoders_refuse_invalid_points() -> None:
    public = make_key("refused").public(BLS)
    with pytest.raises(ValueError):
        encode_g1(public[:47])
    with pytest.raises(ValueError):
        encode_g1(bytes([0xC0]) + bytes(47))  # the point at infinity is no public key
    with pytest.raises(ValueError):
        encode_g1(bytes([public[0] & 0x7F]) + public[1:])  # compression flag cleared
    x, _ = point_outside_g1_subgroup()
    with pytest.raises(ValueError, match="subgroup"):
        encode_g1((x | (1 << 383)).to_bytes(48, "big"))
    with pytest.raises(ValueError):
        encode_g2(bytes(96))
    with pytest.raises(ValueError):
        decode_g1_point(bytes(16) + b"\xff" * 48 + bytes(64))  # x >= p
    with pytest.raises(ValueError):
        decode_g2_point(encode_g2_point(G2)[:-1] + b"\x00")  # off the curve


# ------------------------------------------------------------------------ views


@pytest.mark.parametrize(
    "message",
    [b"", anchor_message(LOG_ID, 2**64 - 1, b"\xee" * 32)],
    ids=["empty", "anchor-message"],
)
def test_hash_to_g2_matches_py_ecc(anchor: Deployment, message: bytes) -> None:
    expected = encode_g2_point(hash_to_G2(message, SIGNATURE_DST, hashlib.sha256))
    assert anchor.contract.functions.hashToG2(message).call() == expected


def test_anchor_message_matches_chain_bls(anchor: Deployment) -> None:
    functions = anchor.contract.functions
    assert functions.logId().call() == LOG_ID
    for size, root in [(1, b"\x00" * 32), (258, root_of(258)), (2**64 - 1, b"\xff" * 32)]:
        assert functions.anchorMessage(size, root).call() == anchor_message(LOG_ID, size, root)


def test_deployment_records_regulator_and_quorum(anchor: Deployment) -> None:
    functions = anchor.contract.functions
    w3, regulator = anchor.chain.w3, anchor.chain.regulator
    assert functions.regulator().call() == regulator
    assert functions.minRoles().call() == MIN_ROLES
    artifact = get_artifact("CheckpointAnchor")
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    for min_roles in (0, 4):
        deploy = factory.constructor(LOG_ID, min_roles).build_transaction(
            {"from": regulator, "gas": GAS}
        )
        call = functools.partial(w3.eth.call, {"from": regulator, "data": deploy["data"]})
        assert get_revert(call) == ("InvalidMinRoles", (min_roles,))


# ------------------------------------------------------------------------ registration


def test_registered_validators_are_listed_with_their_keys(anchor: Deployment) -> None:
    functions = anchor.contract.functions
    assert functions.validatorCount().call() == len(VALIDATORS)
    for index, (key, (name, role)) in enumerate(zip(KEYS, VALIDATORS, strict=True)):
        pubkey = encode_g1(key.public(BLS))
        assert functions.validator(index).call() == [name, role, pubkey, False]
        (event,) = anchor.contract.events.ValidatorRegistered().process_receipt(
            anchor.receipts[f"register {name}"]
        )
        assert dict(event["args"]) == {"index": index, "name": name, "role": role, "pubkey": pubkey}
    assert get_revert(functions.validator(len(VALIDATORS)).call) == ("UnknownValidator", (4,))


def test_registration_refuses_a_proof_of_possession_of_another_key(anchor: Deployment) -> None:
    key = make_key("newcomer")
    name, role, pubkey, compressed, _ = registration_args(key, "newcomer", BANK)
    forgeries = [
        encode_g2(make_key("someone-else").pop(BLS)),  # another key's proof
        encode_g2(key.sign(compressed, BLS)),  # the key's own signature, but not with the PoP DST
    ]
    if not pairing_refusals_mined(anchor):
        forgeries = forgeries[:1]  # each costs a pairing check in py-evm
    for pop in forgeries:
        call = anchor.contract.functions.registerValidator(name, role, pubkey, compressed, pop)
        mine = pairing_refusals_mined(anchor)
        assert_refused(anchor, call, ("InvalidProofOfPossession", ()), mine=mine)


def test_registration_refuses_compressed_bytes_of_another_point(anchor: Deployment) -> None:
    name, role, pubkey, compressed, pop = registration_args(make_key("newcomer"), "n", BANK)
    other = make_key("someone-else").public(BLS)
    flipped_sign = bytes([compressed[0] ^ 0x20]) + compressed[1:]  # the compression of -pk
    infinity_flag = bytes([compressed[0] | 0x40]) + compressed[1:]
    for bad in (other, flipped_sign, infinity_flag, compressed[:47]):
        call = anchor.contract.functions.registerValidator(name, role, pubkey, bad, pop)
        assert_refused(anchor, call, ("CompressedKeyMismatch", ()))


def test_registration_refuses_invalid_points(anchor: Deployment) -> None:
    key = make_key("newcomer")
    _, _, _, compressed, pop = registration_args(key, "n", BANK)
    x, y = point_outside_g1_subgroup()
    outside = x.to_bytes(64, "big") + y.to_bytes(64, "big")
    off_curve = x.to_bytes(64, "big") + (y + 1).to_bytes(64, "big")
    for bad in (bytes(128), outside, off_curve, encode_g1(key.public(BLS))[:127]):
        call = anchor.contract.functions.registerValidator("n", BANK, bad, compressed, pop)
        assert_refused(anchor, call, ("InvalidPublicKey", ()))


def test_registration_is_for_the_regulator_account_only(anchor: Deployment) -> None:
    args = registration_args(make_key("newcomer"), "newcomer", BANK)
    call = anchor.contract.functions.registerValidator(*args)
    outsider = anchor.chain.outsider
    assert_refused(anchor, call, ("NotRegulator", (outsider.lower(),)), sender=outsider)
    call = anchor.contract.functions.registerValidator("x", 3, *args[2:])
    assert_refused(anchor, call, ("InvalidRole", (3,)))


def test_registration_refuses_a_key_twice(anchor: Deployment) -> None:
    call = anchor.contract.functions.registerValidator(
        *registration_args(KEYS[1], "bank-a again", INSURER)
    )
    assert_refused(anchor, call, ("DuplicateValidator", (1,)))


def test_a_revoked_key_no_longer_counts(anchor: Deployment) -> None:
    functions, events = anchor.contract.functions, anchor.contract.events
    outsider = anchor.chain.outsider
    assert_refused(
        anchor, functions.revokeValidator(3), ("NotRegulator", (outsider.lower(),)), outsider
    )
    receipt = transact(anchor.chain, functions.revokeValidator(3))
    (event,) = events.ValidatorRevoked().process_receipt(receipt)
    assert event["args"]["index"] == 3
    assert functions.validator(3).call()[3] is True
    assert_refused(anchor, functions.revokeValidator(3), ("AlreadyRevoked", (3,)))
    assert_refused(anchor, functions.revokeValidator(9), ("UnknownValidator", (9,)))

    size, root = FIRST_SIZE + 1, root_of(FIRST_SIZE + 1)
    signature = sign_anchor([KEYS[0], KEYS[1], KEYS[3]], size, root)
    call = functions.anchor(size, root, bitmap(0, 1, 3), signature)
    assert_refused(anchor, call, ("UnknownSigner", (3,)))
    call = functions.registerValidator(*registration_args(KEYS[3], "bank-b again", BANK))
    assert_refused(anchor, call, ("DuplicateValidator", (3,)))


# ------------------------------------------------------------------------ anchoring


def test_first_anchor_is_recorded(anchor: Deployment) -> None:
    functions = anchor.contract.functions
    receipt = anchor.receipts["anchor 2 signers"]
    (event,) = anchor.contract.events.Anchored().process_receipt(receipt)
    assert dict(event["args"]) == {
        "size": FIRST_SIZE,
        "root": root_of(FIRST_SIZE),
        "signers": bitmap(0, 1),
        "index": 0,
    }
    assert functions.latest().call() == [FIRST_SIZE, root_of(FIRST_SIZE)]
    assert functions.rootAt(FIRST_SIZE).call() == root_of(FIRST_SIZE)
    assert functions.rootAt(FIRST_SIZE - 1).call() == bytes(32)
    assert functions.anchorCount().call() == 1


def test_all_four_validators_anchor_the_next_checkpoint(anchor: Deployment) -> None:
    functions = anchor.contract.functions
    size, root = 25, root_of(25)
    signers = bitmap(0, 1, 2, 3)
    receipt = transact(
        anchor.chain, functions.anchor(size, root, signers, sign_anchor(KEYS, size, root))
    )
    assert receipt["status"] == 1
    (event,) = anchor.contract.events.Anchored().process_receipt(receipt)
    assert dict(event["args"]) == {"size": size, "root": root, "signers": signers, "index": 1}
    assert functions.latest().call() == [size, root]
    assert functions.rootAt(size).call() == root
    assert functions.rootAt(FIRST_SIZE).call() == root_of(FIRST_SIZE)
    assert functions.anchorCount().call() == 2
    assert receipt["gasUsed"] < 300_000


def test_registration_and_anchoring_gas_stays_in_budget(anchor: Deployment) -> None:
    registrations = [anchor.receipts[f"register {name}"]["gasUsed"] for name, _ in VALIDATORS]
    assert all(300_000 < gas < 450_000 for gas in registrations), registrations
    assert 150_000 < anchor.receipts["anchor 2 signers"]["gasUsed"] < 300_000


def test_refuses_forged_aggregate_signatures(anchor: Deployment) -> None:
    functions = anchor.contract.functions
    size, root = 20, root_of(20)
    mine = pairing_refusals_mined(anchor)
    # a valid G2 point that is nobody's signature over this message
    stranger = encode_g2(make_key("stranger").sign(anchor_message(LOG_ID, size, root), BLS))
    call = functions.anchor(size, root, bitmap(0, 1), stranger)
    assert_refused(anchor, call, ("BadSignature", ()), mine=mine)
    # the right signers, over another root
    other_root = sign_anchor(KEYS[:2], size, root_of(20, b"other"))
    call = functions.anchor(size, root, bitmap(0, 1), other_root)
    assert_refused(anchor, call, ("BadSignature", ()), mine=mine)


def test_refuses_signatures_that_are_no_g2_points(anchor: Deployment) -> None:
    functions = anchor.contract.functions
    size, root = 20, root_of(20)
    valid = sign_anchor(KEYS[:2], size, root)
    off_curve = valid[:-1] + bytes([valid[-1] ^ 1])
    above_p = valid[:16] + b"\xff" * 48 + valid[64:]
    # refused before any precompile runs
    for bad in (valid[:255], valid + b"\x00", b""):
        assert_refused(
            anchor, functions.anchor(size, root, bitmap(0, 1), bad), ("BadSignature", ())
        )
    # refused by the pairing precompile (which py-evm reaches after a first pairing)
    mine = pairing_refusals_mined(anchor)
    for bad in (off_curve, above_p) if mine else (off_curve,):
        call = functions.anchor(size, root, bitmap(0, 1), bad)
        assert_refused(anchor, call, ("BadSignature", ()), mine=mine)


def test_refuses_a_bitmap_claiming_a_signer_who_did_not_sign(anchor: Deployment) -> None:
    size, root = 20, root_of(20)
    signature = sign_anchor(KEYS[:2], size, root)  # regulator and bank-a signed
    call = anchor.contract.functions.anchor(size, root, bitmap(0, 1, 2), signature)
    assert_refused(anchor, call, ("BadSignature", ()), mine=pairing_refusals_mined(anchor))


def test_refuses_signers_outside_the_validator_set(anchor: Deployment) -> None:
    functions = anchor.contract.functions
    size, root = 20, root_of(20)
    signature = sign_anchor(KEYS[:2], size, root)
    for outside in (4, 255):
        call = functions.anchor(size, root, bitmap(0, 1, outside), signature)
        assert_refused(anchor, call, ("UnknownSigner", (outside,)))
    assert_refused(anchor, functions.anchor(size, root, 0, signature), ("NoSigners", ()))


def test_refuses_a_quorum_without_the_regulator_or_enough_roles(anchor: Deployment) -> None:
    functions = anchor.contract.functions
    size, root = 20, root_of(20)
    banks_and_insurer = sign_anchor([KEYS[1], KEYS[2], KEYS[3]], size, root)
    call = functions.anchor(size, root, bitmap(1, 2, 3), banks_and_insurer)
    assert_refused(anchor, call, ("NoQuorum", (0b110,)))
    regulator_alone = sign_anchor(KEYS[:1], size, root)
    call = functions.anchor(size, root, bitmap(0), regulator_alone)
    assert_refused(anchor, call, ("NoQuorum", (0b001,)))


def test_refuses_rollback_fork_and_re_anchoring(anchor: Deployment) -> None:
    functions = anchor.contract.functions
    first_root = root_of(FIRST_SIZE)
    earlier = FIRST_SIZE - 3
    call = functions.anchor(
        earlier, root_of(earlier), bitmap(0, 1), sign_anchor(KEYS[:2], earlier, root_of(earlier))
    )
    assert_refused(anchor, call, ("Rollback", (earlier, FIRST_SIZE)))
    forked = root_of(FIRST_SIZE, b"fork")
    call = functions.anchor(
        FIRST_SIZE, forked, bitmap(0, 1), sign_anchor(KEYS[:2], FIRST_SIZE, forked)
    )
    assert_refused(anchor, call, ("Fork", (FIRST_SIZE, first_root, forked)))
    again = sign_anchor(KEYS[:2], FIRST_SIZE, first_root)
    call = functions.anchor(FIRST_SIZE, first_root, bitmap(0, 1), again)
    assert_refused(anchor, call, ("AlreadyAnchored", (FIRST_SIZE, first_root)))
    call = functions.anchor(0, bytes(32), bitmap(0, 1), sign_anchor(KEYS[:2], 0, bytes(32)))
    assert_refused(anchor, call, ("ZeroSize", ()))
