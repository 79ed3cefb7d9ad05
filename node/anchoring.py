"""Anchoring: every institution BLS-signs the checkpoints it cosigns; the sequencer aggregates.

    genesis ``validators``     one BLS key per institution, with its proof of possession
                               (checked when genesis is read: the rogue-key defence) and
                               its role; ``anchor.min_roles`` is the quorum
    format_bls_line            a witness's BLS signature, as one more signed-note line in
                               its add-checkpoint answer (beside its C2SP cosignature)
    parse_bls_lines            the sequencer's side of that
    Aggregator                 sign with the keys this node holds, add the witnesses',
                               check each and the quorum, aggregate, store
    AnchorStore                ``node_anchor_checkpoints``: size, root, signer set,
                               aggregate signature, and the transaction that anchored it

What is signed is :func:`chain.bls.anchor_message` of (genesis hash, size, root): the
bytes contracts/CheckpointAnchor.sol rebuilds on-chain. A witness signs only after its
C2SP cosignature committed, i.e. after it verified the checkpoint is consistent with the
last it cosigned; the sequencer (the regulator's node) signs its own checkpoints.

Quorum (the contract applies the same rule): the regulator's key and at least
``min_roles`` distinct roles among regulator, bank and insurer (default 2: the regulator
and one bank or the insurer).

A BLS line reads ``— <name> <base64(keyhash[4] || signature[96])>`` with ``keyhash =
SHA-256(name || "\\n" || 0xB1 || public key)[:4]``: a well-formed signed-note line that a
C2SP client ignores as an unknown key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, SQLModel

from chain import bls
from chain.blocks import genesis_hash
from chain.errors import CheckpointError, SignatureError, StorageError

log = logging.getLogger("pfnode.anchor")

ROLE_CODES: Final = {"regulator": 0, "bank": 1, "insurer": 2}
DEFAULT_MIN_ROLES: Final = 2
BLS_KEY_ALG: Final = b"\xb1"
MAX_VALIDATORS: Final = 256


class NoQuorum(CheckpointError):
    """The signers do not make the quorum (``orgs`` signed)."""

    def __init__(self, orgs: Sequence[str], why: str) -> None:
        super().__init__(f"signers {sorted(orgs)} are no quorum: {why}")
        self.orgs = tuple(orgs)


@dataclass(frozen=True)
class Validator:
    """One institution's BLS key as genesis registers it (``index``: its bit on-chain)."""

    index: int
    org: str
    role: str
    name: str
    public: bytes
    pop: bytes

    @property
    def keyhash(self) -> bytes:
        return hashlib.sha256(self.name.encode() + b"\n" + BLS_KEY_ALG + self.public).digest()[:4]


def validator_entry(org: str, role: str, key: bls.BlsKey, origin: str) -> dict[str, Any]:
    """The genesis ``validators[]`` item for `org`'s key: public key and proof of possession."""
    if role not in ROLE_CODES:
        raise ValueError(f"role {role!r} is not one of {sorted(ROLE_CODES)}")
    return {
        "org": org,
        "role": role,
        "name": f"{origin.split('/')[0]}/bls/{org}",
        "public_key": base64.b64encode(key.public()).decode(),
        "pop": base64.b64encode(key.pop()).decode(),
    }


_checked: dict[tuple[bytes, bytes], bool] = {}


def validators_of(
    genesis: Mapping[str, Any], backend: bls.Backend | None = None
) -> list[Validator]:
    """Genesis's validators, each proof of possession verified; [] when it names none."""
    out: list[Validator] = []
    seen: set[bytes] = set()
    for i, item in enumerate(genesis.get("validators") or []):
        try:
            public = base64.b64decode(item["public_key"], validate=True)
            pop = base64.b64decode(item["pop"], validate=True)
            org, role, name = str(item["org"]), str(item["role"]), str(item["name"])
        except (KeyError, TypeError, binascii.Error) as exc:
            raise CheckpointError(f"genesis validators[{i}] is malformed: {exc}") from exc
        if role not in ROLE_CODES:
            raise CheckpointError(f"genesis validators[{i}] has role {role!r}")
        if public in seen:
            raise CheckpointError(f"genesis validators[{i}] repeats a public key")
        if not _checked.get((public, pop)):
            try:
                bls.require_pop(public, pop, f"validators[{i}] ({org})", backend)
            except SignatureError as exc:
                raise CheckpointError(str(exc)) from exc
            _checked[(public, pop)] = True
        seen.add(public)
        out.append(Validator(i, org, role, name, public, pop))
    if len(out) > MAX_VALIDATORS:
        raise CheckpointError(f"genesis names {len(out)} validators, at most {MAX_VALIDATORS}")
    return out


def min_roles_of(genesis: Mapping[str, Any]) -> int:
    value = (genesis.get("anchor") or {}).get("min_roles", DEFAULT_MIN_ROLES)
    if not isinstance(value, int) or not 1 <= value <= len(ROLE_CODES):
        raise CheckpointError(f"genesis anchor.min_roles must be 1..3, not {value!r}")
    return value


def log_id_of(genesis: Mapping[str, Any]) -> bytes:
    """The log's identity on-chain: its genesis hash."""
    return genesis_hash(dict(genesis))


def check_quorum(validators: Sequence[Validator], orgs: Sequence[str], min_roles: int) -> None:
    """Raise NoQuorum unless `orgs` include the regulator and cover `min_roles` roles."""
    roles = {v.role for v in validators if v.org in orgs}
    if "regulator" not in roles:
        raise NoQuorum(orgs, "the regulator has not signed")
    if len(roles) < min_roles:
        raise NoQuorum(orgs, f"{len(roles)} roles signed, {min_roles} needed")


def signer_bitmap(validators: Sequence[Validator], orgs: Sequence[str]) -> int:
    return sum(1 << v.index for v in validators if v.org in orgs)


def format_bls_line(validator: Validator, signature: bytes) -> str:
    payload = base64.b64encode(validator.keyhash + signature).decode()
    return f"\u2014 {validator.name} {payload}\n"


def parse_bls_lines(body: str, validators: Sequence[Validator]) -> dict[str, bytes]:
    """{org: signature} of the BLS lines in `body` (unverified); other lines ignored."""
    by_name = {v.name: v for v in validators}
    out: dict[str, bytes] = {}
    for line in body.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014" or parts[1] not in by_name:
            continue
        v = by_name[parts[1]]
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            continue
        if len(raw) == 4 + bls.SIGNATURE_SIZE and raw[:4] == v.keyhash:
            out[v.org] = raw[4:]
    return out


# --------------------------------------------------------------------------- the store


class AnchorCheckpointRow(SQLModel, table=True):
    """A checkpoint with its aggregate BLS signature, and where it was anchored."""

    __tablename__ = "node_anchor_checkpoints"
    size: int = Field(primary_key=True, sa_type=sa.BigInteger)
    root: bytes = Field(sa_type=sa.LargeBinary)
    signers: str  # JSON list of orgs, in validator order
    signature: bytes = Field(sa_type=sa.LargeBinary)  # 96-byte aggregate (compressed G2)
    created: str = Field(max_length=32)
    tx_hash: str | None = Field(default=None, max_length=66)
    block_number: int | None = Field(default=None, sa_type=sa.BigInteger)
    chain_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    contract: str | None = Field(default=None, max_length=42)


T_ANCHOR: sa.Table = AnchorCheckpointRow.__table__  # type: ignore[attr-defined]
ANCHOR_TABLES: Final = (T_ANCHOR,)


@dataclass(frozen=True)
class Aggregated:
    """A checkpoint the quorum signed: what ``anchor(size, root, signers, signature)`` takes."""

    size: int
    root: bytes
    signers: tuple[str, ...]
    signature: bytes
    tx_hash: str | None = None
    block_number: int | None = None


class AnchorStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, agg: Aggregated, created: str) -> None:
        """Store `agg` unless its size is stored (a restarted sequencer may sign again)."""
        row = {
            "size": agg.size,
            "root": agg.root,
            "signers": json.dumps(list(agg.signers)),
            "signature": agg.signature,
            "created": created,
        }
        try:
            with self.engine.begin() as conn:
                found = conn.execute(
                    sa.select(T_ANCHOR.c.root).where(T_ANCHOR.c.size == agg.size)
                ).scalar()
                if found is None:
                    conn.execute(sa.insert(T_ANCHOR).values(**row))
                elif bytes(found) != agg.root:
                    raise CheckpointError(
                        f"checkpoint {agg.size} was aggregated with root {bytes(found).hex()}, "
                        f"now {agg.root.hex()}: the log forked"
                    )
        except SQLAlchemyError as exc:
            raise StorageError(f"aggregate of checkpoint {agg.size} not stored: {exc}") from exc

    def mark_anchored(
        self, size: int, tx_hash: str, block_number: int, chain_id: int, contract: str
    ) -> None:
        values = {
            "tx_hash": tx_hash,
            "block_number": block_number,
            "chain_id": chain_id,
            "contract": contract,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.update(T_ANCHOR).where(T_ANCHOR.c.size == size).values(**values))
        except SQLAlchemyError as exc:
            raise StorageError(f"anchor of checkpoint {size} not recorded: {exc}") from exc

    def latest(self, *, anchored: bool | None = None) -> Aggregated | None:
        query = sa.select(T_ANCHOR).order_by(T_ANCHOR.c.size.desc()).limit(1)
        if anchored is True:
            query = query.where(T_ANCHOR.c.tx_hash.is_not(None))
        try:
            with self.engine.connect() as conn:
                row = conn.execute(query).mappings().first()
        except SQLAlchemyError as exc:
            raise StorageError(f"anchor checkpoints not readable: {exc}") from exc
        return _aggregated(row) if row is not None else None

    def all(self) -> list[Aggregated]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T_ANCHOR).order_by(T_ANCHOR.c.size)).mappings().all()
        return [_aggregated(r) for r in rows]


def _aggregated(row: Any) -> Aggregated:
    return Aggregated(
        size=int(row["size"]),
        root=bytes(row["root"]),
        signers=tuple(json.loads(row["signers"])),
        signature=bytes(row["signature"]),
        tx_hash=row["tx_hash"],
        block_number=row["block_number"],
    )


# --------------------------------------------------------------------------- the aggregator


class Aggregator:
    """The sequencer's side: its own signatures plus the witnesses', checked, aggregated."""

    def __init__(
        self,
        genesis: Mapping[str, Any],
        local_keys: Mapping[str, bls.BlsKey],
        backend: bls.Backend | None = None,
    ) -> None:
        self.backend = backend or bls.get_backend()
        self.validators = validators_of(genesis, self.backend)
        if not self.validators:
            raise CheckpointError("genesis names no BLS validators: this ledger cannot anchor")
        self.min_roles = min_roles_of(genesis)
        self.log_id = log_id_of(genesis)
        by_org = {v.org: v for v in self.validators}
        self.local: dict[str, bls.BlsKey] = {}
        for org, key in local_keys.items():
            if org not in by_org or key.public(self.backend) != by_org[org].public:
                raise CheckpointError(f"the BLS key held for {org} is not the one genesis names")
            self.local[org] = key

    def message(self, size: int, root: bytes) -> bytes:
        return bls.anchor_message(self.log_id, size, root)

    def aggregate(self, size: int, root: bytes, remote: Mapping[str, bytes]) -> Aggregated:
        """Sign (size, root) with the local keys, add the valid remote signatures, aggregate.

        A remote signature that does not verify is dropped (and logged); NoQuorum when
        what is left is no quorum.
        """
        message = self.message(size, root)
        by_org = {v.org: v for v in self.validators}
        sigs = {org: key.sign(message, self.backend) for org, key in self.local.items()}
        for org, sig in remote.items():
            v = by_org.get(org)
            if v is None or org in sigs:
                continue
            if self.backend.Verify(v.public, message, sig):
                sigs[org] = sig
            else:
                log.warning(
                    "BLS signature of %s on checkpoint %d does not verify: dropped", org, size
                )
        check_quorum(self.validators, list(sigs), self.min_roles)
        signers = tuple(v.org for v in self.validators if v.org in sigs)
        signature = self.backend.Aggregate([sigs[o] for o in signers])
        return Aggregated(size, root, signers, signature)

    def verify(self, agg: Aggregated) -> bool:
        """The check the contract makes: quorum and FastAggregateVerify over the signer set."""
        try:
            check_quorum(self.validators, agg.signers, self.min_roles)
        except NoQuorum:
            return False
        keys = [v.public for v in self.validators if v.org in agg.signers]
        return self.backend.FastAggregateVerify(
            keys, self.message(agg.size, agg.root), agg.signature
        )
