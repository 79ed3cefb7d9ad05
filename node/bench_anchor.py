"""`pfnode bench anchor`: what anchoring one checkpoint costs, py-ecc beside the native backend.

Per checkpoint, as the consortium does it (four validators: the regulator signs on the
sequencer, three witnesses sign on their nodes, in parallel there, timed here one after the
other and also as the slowest of the three):

    cosign      one witness BLS-signs anchor_message (its C2SP cosignature is Ed25519: not timed)
    aggregate   the sequencer signs, verifies the three witnesses' signatures, aggregates
    anchor      anchor() on the chain: one transaction, its receipt awaited (the contract
                verifies the aggregate with the EIP-2537 pairing) — on Anvil and on eth-tester

Each figure is the median of `--repeat` checkpoints (py-ecc: at most 3, it takes seconds);
gas is the receipt's gasUsed. The chain's cost does not depend on the BLS backend: it is
measured once per chain. Ratios are against py-ecc in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

from chain import bls
from node.anchoring import Aggregator, signer_bitmap, validator_entry, validators_of
from node.bench import machine

ORGS = (("REGULATOR", "regulator"), ("BANK-A", "bank"), ("BANK-B", "bank"), ("INSURER", "insurer"))
ORIGIN = "pfnode.bench/ledger"


def _genesis(keys: dict[str, bls.BlsKey]) -> dict[str, Any]:
    return {
        "v": 1,
        "origin": ORIGIN,
        "validators": [validator_entry(o, r, keys[o], ORIGIN) for o, r in ORGS],
        "anchor": {"min_roles": 2},
    }


def _median_s(fn: Callable[[int], object], repeat: int) -> float:
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bls_costs(
    backend: bls.Backend, genesis: dict[str, Any], keys: dict[str, bls.BlsKey], repeat: int
) -> dict[str, float]:
    """Median seconds of one witness's sign and of the sequencer's aggregate, for `backend`."""
    agg = Aggregator(genesis, {"REGULATOR": keys["REGULATOR"]}, backend)
    witnesses = [o for o, _r in ORGS if o != "REGULATOR"]

    def root(i: int) -> bytes:
        return hashlib.sha256(f"{backend.name}-{i}".encode()).digest()

    def sign_one(i: int) -> object:
        return keys["BANK-A"].sign(agg.message(i + 1, root(i)), backend)

    remote = [
        {o: keys[o].sign(agg.message(i + 1, root(i)), backend) for o in witnesses}
        for i in range(repeat)
    ]
    return {
        "cosign": _median_s(sign_one, repeat),
        "aggregate": _median_s(lambda i: agg.aggregate(i + 1, root(i), remote[i]), repeat),
    }


def chain_costs(
    chain: Any, genesis: dict[str, Any], keys: dict[str, bls.BlsKey], repeat: int
) -> dict[str, float]:
    """Deploy, register, then anchor `repeat` checkpoints signed by all four: median s, gas."""
    from node.anchoring import log_id_of

    chain.deploy(log_id_of(genesis), 2)
    validators = validators_of(genesis)
    register_gas = [chain.register(v.name, v.role, v.public, v.pop).gas_used for v in validators]
    agg = Aggregator(genesis, {o: keys[o] for o, _r in ORGS})
    seconds, gas = [], []
    for i in range(repeat):
        root = hashlib.sha256(f"chain-{i}".encode()).digest()
        made = agg.aggregate(i + 1, root, {})
        bitmap = signer_bitmap(validators, made.signers)
        start = time.perf_counter()
        sent = chain.anchor(i + 1, root, bitmap, made.signature)
        seconds.append(time.perf_counter() - start)
        gas.append(sent.gas_used)
    two_signers = Aggregator(genesis, {"REGULATOR": keys["REGULATOR"], "INSURER": keys["INSURER"]})
    pair = two_signers.aggregate(repeat + 1, b"\x02" * 32, {})
    sent2 = chain.anchor(
        repeat + 1, b"\x02" * 32, signer_bitmap(validators, pair.signers), pair.signature
    )
    return {
        "anchor_s": statistics.median(seconds),
        "gas_anchor_4": statistics.median(gas),
        "gas_anchor_2": sent2.gas_used,
        "gas_register": statistics.median(register_gas),
    }


def run_anchor(args: argparse.Namespace) -> int:
    from contracts.anchor import AnchorChain
    from contracts.anvil import AnvilProcess

    repeat = max(3, args.repeat)
    print(f"pfnode bench anchor  ({machine()})")
    print(f"checkpoints per figure: native {repeat}, py-ecc {min(3, repeat)}; medians\n")
    keys = {o: bls.BlsKey(o, bls.KeyGen(o.encode().ljust(32, b"#"))) for o, _r in ORGS}
    genesis = _genesis(keys)
    backends = [bls.PY_ECC]
    native = bls.native_backend()
    if native is not None:
        backends.append(native)
    costs = {
        b.name: bls_costs(b, genesis, keys, repeat if b is native else min(3, repeat))
        for b in backends
    }

    with AnvilProcess(accounts=2) as anvil:
        anvil_costs = chain_costs(
            AnchorChain.connect(anvil.url, anvil.private_keys[0]), genesis, keys, repeat
        )
    tester_costs = chain_costs(AnchorChain.embedded(), genesis, keys, min(3, repeat))

    a = anvil_costs
    print(
        f"gas (receipts, Anvil): register a validator {a['gas_register']:.0f}; "
        f"anchor, 4 signers {a['gas_anchor_4']:.0f}, 2 signers {a['gas_anchor_2']:.0f}"
    )
    print(f"  (eth-tester: anchor, 4 signers {tester_costs['gas_anchor_4']:.0f})\n")
    header = f"{'seconds per checkpoint':44}" + "".join(f"{b.name:>12}" for b in backends)
    print(header)
    rows = [
        ("cosign: one witness BLS-signs", "cosign"),
        ("aggregate: sign, verify 3, aggregate", "aggregate"),
    ]
    for label, key in rows:
        print(f"{label:44}" + "".join(f"{costs[b.name][key]:12.4f}" for b in backends))
    for chain_name, chain in (("Anvil", anvil_costs), ("eth-tester", tester_costs)):
        label = f"anchor: tx + receipt on {chain_name}"
        print(f"{label:44}" + "".join(f"{chain['anchor_s']:12.4f}" for _ in backends))
        total = [
            costs[b.name]["cosign"] + costs[b.name]["aggregate"] + chain["anchor_s"]
            for b in backends
        ]
        label = f"total (witnesses in parallel), {chain_name}"
        print(f"{label:44}" + "".join(f"{t:12.4f}" for t in total))
        if len(total) == 2:
            print(f"{'  ratio py-ecc / native':44}{total[0] / total[1]:24.1f}x")
    return 0
