"""Which key may sign for which organisation, at which log index.

Genesis names the organisations and their first keys. Membership changes are
ledger entries (``org.added``, ``key.added``, ``key.revoked``) signed by an
organisation whose role governs membership (the regulator); once such an entry
is accepted at log index i, the change holds for every entry after i. An entry
signed with a key revoked before it is refused; entries signed before the
revocation still verify, because validity is judged at each entry's own index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chain.errors import SignatureError
from chain.keys import PublicKey, org_of

MEMBERSHIP_TYPES = frozenset({"org.added", "key.added", "key.revoked"})
GOVERNOR_ROLE = "regulator"
ROLES = frozenset({"bank", "insurer", "regulator"})


@dataclass
class KeyState:
    key: PublicKey
    added_index: int  # -1 for genesis keys
    revoked_index: int | None = None

    def is_valid_at(self, index: int) -> bool:
        return self.added_index < index and (
            self.revoked_index is None or index < self.revoked_index
        )


@dataclass
class KeyRing:
    """Organisations (id -> role) and their keys, with the index each change took effect."""

    roles: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    keys: dict[str, KeyState] = field(default_factory=dict)

    @classmethod
    def from_genesis(cls, genesis: dict[str, Any]) -> KeyRing:
        ring = cls()
        for org in genesis["orgs"]:
            ring.add_org(org, -1)
        return ring

    def add_org(self, org: dict[str, Any], index: int) -> None:
        org_id = org["id"] if "id" in org else org["org_id"]
        if org_id in self.roles:
            raise SignatureError(f"org {org_id} already exists")
        if org["role"] not in ROLES:
            raise SignatureError(f"org {org_id}: unknown role {org['role']!r}")
        if not org["keys"]:
            raise SignatureError(f"org {org_id} has no key")
        self.roles[org_id] = org["role"]
        self.names[org_id] = org.get("name", org_id)
        for key in org["keys"]:
            self.add_key(org_id, key["key_id"], key["public_key"], index)

    def add_key(self, org_id: str, key_id: str, public_b64: str, index: int) -> None:
        if org_of(key_id) != org_id:
            raise SignatureError(f"key {key_id} does not belong to org {org_id}")
        if key_id in self.keys:
            raise SignatureError(f"key {key_id} already exists")
        self.keys[key_id] = KeyState(PublicKey.from_b64(key_id, public_b64), index)

    def revoke_key(self, org_id: str, key_id: str, index: int) -> None:
        state = self.keys.get(key_id)
        if state is None or org_of(key_id) != org_id:
            raise SignatureError(f"key {key_id} of {org_id} is unknown")
        if state.revoked_index is not None:
            raise SignatureError(f"key {key_id} was already revoked at index {state.revoked_index}")
        state.revoked_index = index

    def role_of(self, org_id: str) -> str | None:
        return self.roles.get(org_id)

    def key_for(self, key_id: str, index: int) -> PublicKey:
        """The key `key_id` if it may sign the entry at log `index`; else SignatureError."""
        state = self.keys.get(key_id)
        if state is None:
            raise SignatureError(f"key {key_id} is unknown")
        if not state.is_valid_at(index):
            if state.revoked_index is not None and index >= state.revoked_index:
                raise SignatureError(f"key {key_id} was revoked at log index {state.revoked_index}")
            raise SignatureError(f"key {key_id} is not yet valid at log index {index}")
        return state.key

    def is_governor(self, org_id: str) -> bool:
        return self.roles.get(org_id) == GOVERNOR_ROLE

    def apply_membership(self, entry_type: str, org: str, body: dict[str, Any], index: int) -> None:
        """Apply an accepted membership entry signed by `org` at log `index`."""
        if not self.is_governor(org):
            raise SignatureError(f"{entry_type} must be signed by the regulator, not {org}")
        if entry_type == "org.added":
            self.add_org(body, index)
        elif entry_type == "key.added":
            if body["org_id"] not in self.roles:
                raise SignatureError(f"org {body['org_id']} is unknown")
            self.add_key(body["org_id"], body["key_id"], body["public_key"], index)
        elif entry_type == "key.revoked":
            self.revoke_key(body["org_id"], body["key_id"], index)
