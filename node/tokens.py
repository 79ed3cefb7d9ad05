"""Bearer tokens per organisation, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

TOKEN_PREFIX = "pfn_"


class TokenRow(SQLModel, table=True):
    __tablename__ = "node_tokens"
    token_hash: str = Field(primary_key=True, max_length=64)
    org: str = Field(max_length=64, index=True)
    label: str = Field(default="", max_length=128)
    created: str = Field(max_length=32)


T_TOKEN = TokenRow.__table__  # type: ignore[attr-defined]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Creates tokens and resolves a presented token to its organisation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, str] = {}
        SQLModel.metadata.create_all(engine, tables=[T_TOKEN])

    def create(self, org: str, label: str = "") -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(T_TOKEN),
                [
                    {
                        "token_hash": hash_token(token),
                        "org": org,
                        "label": label,
                        "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    }
                ],
            )
        return token

    def org_for(self, token: str) -> str | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        digest = hash_token(token)
        org = self._cache.get(digest)
        if org is None:
            with self.engine.connect() as conn:
                org = conn.execute(
                    sa.select(T_TOKEN.c.org).where(T_TOKEN.c.token_hash == digest)
                ).scalar()
            if org is not None:
                self._cache[digest] = org
        return org
