"""A node's files and the demo consortium.

    <data>/genesis.json          the consortium's genesis (public)
    <data>/keys/<ORG>.json       institution signing keys this node holds (0600)
    <data>/keys/sequencer.json   the sequencer's block and checkpoint key (0600)
    <data>/keys/bls-<ORG>.json   BLS keys for anchoring checkpoints on-chain (0600)
    <data>/keys/consortium.secret  HMAC key for receivable fingerprints (0600)
    <data>/demo-tokens.json      demo bearer tokens {"BANK-A": "pfn_...", ...} (0600)
    <data>/ledger.db             SQLite ledger and state (unless --db names a URL)

The demo consortium: BANK-A and BANK-B (banks), INSURER (the export-credit
insurer), REGULATOR (the forex regulator, who runs the sequencer).
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from chain.bls import BlsKey
from chain.keys import SigningKey
from chain.log import make_genesis
from chain.storage import Ledger
from node.anchoring import DEFAULT_MIN_ROLES, validator_entry
from node.domain import Params

DEMO_ORGS = (
    ("BANK-A", "Bank A (demo)", "bank"),
    ("BANK-B", "Bank B (demo)", "bank"),
    ("INSURER", "Export Credit Insurer (demo)", "insurer"),
    ("REGULATOR", "Forex Regulator (demo)", "regulator"),
)
RULE_VERSION = "1"


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


class NodeFiles:
    """Paths and loaders for what a node keeps on disk."""

    def __init__(self, data_dir: Path) -> None:
        self.data = Path(data_dir)
        self.keys = self.data / "keys"
        self._org_keys: dict[str, SigningKey | None] = {}

    @property
    def genesis_path(self) -> Path:
        return self.data / "genesis.json"

    def org_key(self, org: str) -> SigningKey | None:
        """The institution key this node holds for `org`, if any."""
        if org not in self._org_keys:
            path = self.keys / f"{org}.json"
            self._org_keys[org] = SigningKey.load(path) if path.exists() else None
        return self._org_keys[org]

    def bls_keys(self) -> dict[str, BlsKey]:
        """The BLS (anchoring) keys this node holds: ``keys/bls-<ORG>.json``, by org."""
        return {
            p.name[len("bls-") : -len(".json")]: BlsKey.load(p)
            for p in sorted(self.keys.glob("bls-*.json"))
        }

    def sequencer_key(self) -> SigningKey:
        return SigningKey.load(self.keys / "sequencer.json")

    def consortium_secret(self) -> bytes:
        return bytes.fromhex((self.keys / "consortium.secret").read_text().strip())


def init_demo(data_dir: Path, db_url: str | None, now: datetime) -> tuple[dict[str, Any], bool]:
    """Create the demo consortium under data_dir; returns (genesis, created?).

    Idempotent: an initialised data directory is left as it is.
    """
    files = NodeFiles(data_dir)
    url = db_url or f"sqlite:///{(files.data / 'ledger.db').resolve()}"
    if files.genesis_path.exists():
        return json.loads(files.genesis_path.read_text()), False
    files.data.mkdir(parents=True, exist_ok=True)
    orgs = []
    for org_id, name, role in DEMO_ORGS:
        key = SigningKey.generate(f"{org_id}/1")
        key.save(files.keys / f"{org_id}.json")
        orgs.append(
            {
                "id": org_id,
                "name": name,
                "role": role,
                "keys": [{"key_id": key.key_id, "public_key": key.public.b64}],
            }
        )
    sequencer = SigningKey.generate("REGULATOR/seq-1")
    sequencer.save(files.keys / "sequencer.json")
    write_private(files.keys / "consortium.secret", secrets.token_hex(32) + "\n")
    validators = [
        make_bls_key(files.data, org_id, role, "pfnode.demo/ledger")
        for org_id, _n, role in DEMO_ORGS
    ]
    genesis = make_genesis(
        origin="pfnode.demo/ledger",
        orgs=orgs,
        sequencer=sequencer,
        created=now,
        extra={
            "consortium": "pfnode demo consortium",
            "rule_version": RULE_VERSION,
            "params": Params().to_json(),
            "validators": validators,
            "anchor": {"min_roles": DEFAULT_MIN_ROLES},
        },
    )
    from node.migrations import upgrade
    from node.tokens import TokenStore

    upgrade(url)
    with Ledger.open(url, writer=True) as ledger:
        ledger.init(genesis)
        tokens = TokenStore(ledger.engine)
        demo = {org_id: tokens.create(org_id, "demo") for org_id, _n, _r in DEMO_ORGS}
    write_private(files.data / "demo-tokens.json", json.dumps(demo, indent=2) + "\n")
    files.genesis_path.write_text(json.dumps(genesis, indent=2) + "\n")
    return genesis, True


CONSORTIUM_DIRS = {
    "REGULATOR": "regulator",
    "BANK-A": "bank-a",
    "BANK-B": "bank-b",
    "INSURER": "insurer",
}


def make_bls_key(data_dir: Path, org: str, role: str, origin: str) -> dict[str, Any]:
    """A new BLS (anchoring) key for `org` in ``keys/bls-<ORG>.json``; its genesis entry."""
    key = BlsKey.generate(org)
    key.save(Path(data_dir) / "keys" / f"bls-{org}.json")
    return validator_entry(org, role, key, origin)


def write_witness_key(data_dir: Path, name: str) -> str:
    """A cosigner (C2SP tlog-cosignature) key for this institution's witness; its vkey."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from chain.checkpoint import format_cosigner_key
    from chain.keys import b64encode

    seed = secrets.token_bytes(32)
    write_private(
        data_dir / "keys" / "witness.json",
        json.dumps({"name": name, "seed": b64encode(seed)}) + "\n",
    )
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return format_cosigner_key(name, public)


def init_consortium(
    root: Path, now: datetime, db_urls: dict[str, str] | None = None
) -> dict[str, Path]:
    """One data directory per institution: the regulator's sequencer and three followers.

    Each holds the shared genesis (public keys only) and its own institution's key; the
    regulator's also the sequencer key and the fingerprint secret. Each follower gets a
    token for the sequencer (upstream.json) and a token for its own users
    (demo-tokens.json), and a witness key whose vkey genesis names.
    """
    from node.migrations import upgrade
    from node.tokens import TokenStore

    db_urls = db_urls or {}
    dirs = {org: root / name for org, name in CONSORTIUM_DIRS.items()}
    orgs, witnesses, validators = [], [], []
    for org_id, name, role in DEMO_ORGS:
        data = dirs[org_id]
        key = SigningKey.generate(f"{org_id}/1")
        key.save(data / "keys" / f"{org_id}.json")
        orgs.append(
            {
                "id": org_id,
                "name": name,
                "role": role,
                "keys": [{"key_id": key.key_id, "public_key": key.public.b64}],
            }
        )
        validators.append(make_bls_key(data, org_id, role, "pfnode.consortium/ledger"))
        if org_id != "REGULATOR":
            wname = f"pfnode.consortium/witness/{org_id}"
            witnesses.append({"org": org_id, "name": wname, "vkey": write_witness_key(data, wname)})
    regulator = dirs["REGULATOR"]
    sequencer = SigningKey.generate("REGULATOR/seq-1")
    sequencer.save(regulator / "keys" / "sequencer.json")
    write_private(regulator / "keys" / "consortium.secret", secrets.token_hex(32) + "\n")
    genesis = make_genesis(
        origin="pfnode.consortium/ledger",
        orgs=orgs,
        sequencer=sequencer,
        created=now,
        extra={
            "consortium": "pfnode consortium",
            "rule_version": RULE_VERSION,
            "params": Params().to_json(),
            "witnesses": witnesses,
            "validators": validators,
            "anchor": {"min_roles": DEFAULT_MIN_ROLES},
        },
    )
    seq_url = db_urls.get("REGULATOR") or f"sqlite:///{(regulator / 'ledger.db').resolve()}"
    upgrade(seq_url)
    with Ledger.open(seq_url, writer=True) as ledger:
        ledger.init(genesis)
        store = TokenStore(ledger.engine)
        upstream = {org: store.create(org, "follower node") for org in CONSORTIUM_DIRS}
    write_private(
        regulator / "demo-tokens.json",
        json.dumps({"REGULATOR": upstream["REGULATOR"]}, indent=2) + "\n",
    )
    for org_id, data in dirs.items():
        (data / "genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
        if org_id == "REGULATOR":
            continue
        url = db_urls.get(org_id) or f"sqlite:///{(data / 'replica.db').resolve()}"
        upgrade(url)
        with Ledger.open(url) as replica_db:
            local = TokenStore(replica_db.engine).create(org_id, "demo")
        write_private(data / "upstream.json", json.dumps({"token": upstream[org_id]}) + "\n")
        write_private(data / "demo-tokens.json", json.dumps({org_id: local}, indent=2) + "\n")
    return dirs
