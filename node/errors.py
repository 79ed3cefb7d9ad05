"""Errors of the domain.

Every error raised by node/ derives from ``NodeError``. Each maps to one HTTP
status in the API's single handler table; leaf errors carry the evidence::

    NodeError
    ├── Forbidden        403  the organisation's role may not sign this entry type
    ├── NotFound         404  an entity named by the entry (loan, notice, org, key) is unknown
    ├── Conflict         409  the entry collides with the ledger's state (e.g. rejected flags)
    ├── Unprocessable    422  the entry cannot be processed; ``problems`` says where and why
    │   └── InvalidBody  422  the entry's body does not validate against its type's schema
    └── Overloaded       503  writes arrive faster than blocks commit; retry after ``retry_after``

``FieldProblem`` is one entry of ``problems``: a dotted field path into the body
(``"receivable.amount"``, ``"keys.0.public_key"``; ``""`` for the body as a whole)
and a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with one field: where (dotted path) and why."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class NodeError(Exception):
    """Root of every error raised by node/."""


class Forbidden(NodeError):
    """403: the signing organisation's role may not sign this entry type."""

    def __init__(self, org: str, role: str, entry_type: str, *, detail: str | None = None) -> None:
        super().__init__(org, role, entry_type)
        self.org = org
        self.role = role
        self.entry_type = entry_type
        self.detail = detail  # why, when it is not the role (e.g. a missing consent)

    def __str__(self) -> str:
        return self.detail or f"{self.org} ({self.role}) may not sign {self.entry_type}"


class NotFound(NodeError):
    """404: the entity an entry or a request names does not exist (or is not visible)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(kind, key)
        self.kind = kind
        self.key = key

    def __str__(self) -> str:
        return f"{self.kind} {self.key!r} not found"


class Conflict(NodeError):
    """409: the entry conflicts with the ledger's state; ``reason`` says how."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field  # the body field the conflict is about, when there is one

    def __str__(self) -> str:
        return self.reason


class Unprocessable(NodeError):
    """422: the entry is well-formed JSON but cannot be processed; ``problems`` lists why.

    Fails closed: an ``Unprocessable`` always carries at least one problem.
    """

    def __init__(self, problems: Iterable[FieldProblem]) -> None:
        problems = tuple(problems)
        if not problems:
            raise ValueError(f"{type(self).__name__} needs at least one problem")
        super().__init__(problems)
        self.problems: tuple[FieldProblem, ...] = problems

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)

    @classmethod
    def single(cls, field: str, message: str) -> Unprocessable:
        """One problem on one field."""
        return cls([FieldProblem(field, message)])


class InvalidBody(Unprocessable):
    """422: an entry body fails its type's schema; one ``FieldProblem`` per bad field."""

    def __str__(self) -> str:
        return "invalid body: " + super().__str__()


class Overloaded(NodeError):
    """503: the sequencer's queue is full; the client should retry after ``retry_after`` s."""

    def __init__(self, queued: int, retry_after: int = 1) -> None:
        super().__init__(queued, retry_after)
        self.queued = queued
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"the sequencer has {self.queued} writes queued; retry after {self.retry_after}s"
