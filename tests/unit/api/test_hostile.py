"""Hostile input over HTTP: each is refused as problem+json and changes nothing.

"Nothing" is checked on the node itself (``tests.unit.api.refusals``): the log size
and the whole domain state are the same after the refusal as before it.

Already covered elsewhere (not repeated here): a float amount on a policy and on a
drawdown, a negative amount as a string on a limit, an unknown top-level field,
duplicate keys, malformed JSON, a form-encoded body (test_problems.py); an envelope
posted by another org's token, a zero signature, a past timestamp, an identical
envelope resubmitted (test_entries.py).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from api.deps import MAX_BODY_BYTES, MAX_JSON_DEPTH
from api.schemas import MAX_SIZE
from chain.canonical import ENTRY_PREFIX, canonical
from chain.entries import SignedEntry, make_entry
from chain.keys import SigningKey
from node.genesis import NodeFiles
from tests.unit.api.refusals import fields, node_state, problem, refused
from tests.unit.api.story import (
    NOW,
    POLICY_NO,
    Story,
    drawdown_body,
    notice_body,
    policy_body,
    receivable,
    repayment_body,
    running_story,
)

# --------------------------------------------------------------------------- helpers


def raw_drawdown(rec: dict[str, Any], amount_json: str) -> bytes:
    """A drawdown body whose amount is the literal JSON text ``amount_json``."""
    text = json.dumps(drawdown_body("A-2", "CN-1", rec, amount="@AMOUNT@"))
    return text.replace('"@AMOUNT@"', amount_json).encode()


@pytest.fixture
async def story(tmp_path: Path) -> AsyncIterator[Story]:
    """SQLite only: these refusals happen before storage (the 2^63 bounds run on both)."""
    async with running_story(tmp_path) as s:
        yield s


@pytest.fixture
async def any_story(tmp_path: Path, backend: str | None) -> AsyncIterator[Story]:
    async with running_story(tmp_path, backend) as s:
        yield s


@pytest.fixture
async def insured(story: Story) -> tuple[Story, dict[str, Any]]:
    """A notice CN-1 for BANK-A on receivable INV-1 / BL-1; nothing drawn yet."""
    rec = await story.insure()
    return story, rec


# --------------------------------------------------------------------------- amounts


BAD_AMOUNTS = [
    "1e5",  # JSON number with an exponent (a float)
    "1E+5",
    "2.5e-1",
    "100000",  # JSON integer: amounts are strings
    "-5",
    "1e400",  # overflows to infinity in a float parser
    '"1e5"',  # exponent inside the string
    '"1E5"',
    '"-200000.00"',
    '"-0.00"',
    '"0.00"',
    '"+5.00"',
    '" 5.00"',
    '".5"',
    '"5."',
    '"1_000.00"',  # Python's Decimal would read it
    '"\\uff11\\uff10\\uff10.00"',  # fullwidth digits, which Decimal reads too
    '"Infinity"',
    '"NaN"',
    '"0x10"',
    '"5,00"',
    '"200000.001"',  # more places than USD has
    '"1000000000000000000.00"',  # 19 integer digits
]


async def test_refuses_drawdown_amounts_that_are_not_plain_positive_decimals(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    for amount_json in BAD_AMOUNTS:
        body = raw_drawdown(rec, amount_json)
        answer = await refused(story, lambda b=body: story.post_raw("BANK-A", "/v1/loans", b), 422)
        assert fields(answer) == ["amount"], amount_json
        assert "amount" in answer["detail"]
    ok = await story.post_raw("BANK-A", "/v1/loans", raw_drawdown(rec, '"200000.00"'))
    assert ok.status_code == 201, ok.text  # the same body with a good amount is taken


async def test_refuses_json_constants_as_malformed(insured: tuple[Story, dict[str, Any]]) -> None:
    story, rec = insured
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = raw_drawdown(rec, constant)
        answer = await refused(story, lambda b=body: story.post_raw("BANK-A", "/v1/loans", b), 400)
        assert constant in answer["detail"]


async def test_refuses_an_integer_too_long_to_read_as_malformed(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    body = raw_drawdown(rec, "1" + "0" * 5000)  # beyond Python's int-from-text limit
    answer = await refused(story, lambda: story.post_raw("BANK-A", "/v1/loans", body), 400)
    assert answer["type"] == "https://pfnode.dev/problems/malformed-json"


async def test_refuses_duplicate_keys_nested_and_in_an_envelope(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    """The second spelling of a key must not win silently (a smaller amount shown to one
    reader, a larger one booked)."""
    story, rec = insured
    text = json.dumps(drawdown_body("A-2", "CN-1", rec))
    nested = text.replace('"invoice_no": "INV-1"', '"invoice_no": "INV-1", "invoice_no": "INV-X"')
    answer = await refused(
        story, lambda: story.post_raw("BANK-A", "/v1/loans", nested.encode()), 400
    )
    assert "'invoice_no'" in answer["detail"]
    signed = sign(story, "BANK-A", drawdown_body("A-2", "CN-1", rec)).raw
    twice = signed.replace(b'"amount":"200000.00"', b'"amount":"200000.00","amount":"1.00"', 1)
    assert twice != signed
    answer = await refused(story, lambda: story.post_raw("BANK-A", "/v1/entries", twice), 422)
    assert "duplicate" in answer["detail"]


# --------------------------------------------------------------------------- NFC and NFD


NFC_INVOICE = "FACTURE-\u00c9T\u00c9-7"  # FACTURE-ÉTÉ-7, precomposed
NFD_INVOICE = "FACTURE-E\u0301TE\u0301-7"  # the same text, decomposed


def test_the_two_spellings_differ_as_strings() -> None:
    assert NFC_INVOICE != NFD_INVOICE
    assert len(NFC_INVOICE.encode()) != len(NFD_INVOICE.encode())


async def test_nfd_spelling_of_a_financed_invoice_is_the_same_receivable(story: Story) -> None:
    """BANK-A finances invoice NFC; BANK-B, under its own notice, with another bill of
    lading and another vessel, draws on the NFD spelling: K1 (exporter + invoice) matches."""
    await story.insure("CN-9", "BANK-A", invoice="INV-9", bl="BL-9")  # the policy, once
    rec_a = receivable(NFC_INVOICE, "BL-A")
    other_cargo = {**rec_a["shipment"], "vessel": "EVER GIVEN", "voyage": "001W"}
    rec_b = receivable(NFD_INVOICE, "BL-B", shipment=other_cargo)
    await story.ok("INSURER", "/v1/coverage-notices", notice_body("CN-A", "BANK-A", rec_a))
    await story.ok("INSURER", "/v1/coverage-notices", notice_body("CN-B", "BANK-B", rec_b))
    first = await story.draw("BANK-A", "A-1", "CN-A", rec_a)
    assert first.status_code == 201, first.text
    exposures = (await story.get("REGULATOR", "/v1/exposures", by="bank")).json()

    second = await story.draw("BANK-B", "B-1", "CN-B", rec_b)
    assert second.status_code == 409, second.text
    flags = second.json()["receipt"]["flags"]
    duplicate = next(f for f in flags if f["code"] == "DUPLICATE_FINANCING")
    assert duplicate["data"]["keys"] == ["K1"]
    assert (await story.get("REGULATOR", "/v1/exposures", by="bank")).json() == exposures
    assert (await story.get("BANK-B", "/v1/loans")).json() == []


async def test_nfd_spelling_of_a_bill_of_lading_and_loan_id_match(story: Story) -> None:
    rec = await story.insure("CN-1", "BANK-A", invoice="INV-1", bl=NFC_INVOICE)
    first = await story.draw("BANK-A", "L\u00c9-1", "CN-1", rec)
    assert first.status_code == 201, first.text
    # the same loan id, decomposed: a reused loan id, refused and nothing recorded
    again = receivable("INV-1", NFD_INVOICE)
    answer = await refused(story, lambda: story.draw("BANK-A", "LE\u0301-1", "CN-1", again), 409)
    assert "already used" in answer["detail"]
    # a repayment naming the decomposed loan id reaches the loan
    receipt = await story.ok("BANK-A", "/v1/loans/LE\u0301-1/repayments", repayment_body())
    assert receipt["type"] == "loan.repayment"
    loan = (await story.get("BANK-A", "/v1/loans/L\u00c9-1")).json()
    assert loan["outstanding"] == "150000.00"


async def test_refuses_a_notice_number_issued_again_in_nfd(story: Story) -> None:
    await story.insure("AVIS-\u00c9-1", "BANK-A")
    body = notice_body("AVIS-E\u0301-1", "BANK-A", receivable("INV-2", "BL-2"))
    answer = await refused(story, lambda: story.post("INSURER", "/v1/coverage-notices", body), 409)
    assert answer["type"] == "https://pfnode.dev/problems/conflict"


# --------------------------------------------------------------------------- size and shape


async def test_refuses_an_oversized_body_with_413(story: Story) -> None:
    body = json.dumps(policy_body(exporter_name="x" * MAX_BODY_BYTES)).encode()
    answer = await refused(story, lambda: story.post_raw("INSURER", "/v1/policies", body), 413)
    assert str(MAX_BODY_BYTES) in answer["detail"]


async def test_refuses_an_oversized_streamed_body_with_413(story: Story) -> None:
    """No Content-Length (chunked): the node stops reading past the limit."""

    async def chunks() -> Any:
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    headers = {**story.auth("INSURER"), "Content-Type": "application/json"}
    await refused(
        story, lambda: story.client.post("/v1/policies", content=chunks(), headers=headers), 413
    )


async def test_refuses_an_oversized_envelope_with_413(story: Story) -> None:
    body = b'{"entry": {}, "sig": "' + b"A" * MAX_BODY_BYTES + b'"}'
    await refused(story, lambda: story.post_raw("BANK-A", "/v1/entries", body), 413)


async def test_refuses_deeply_nested_json(story: Story) -> None:
    """100,000 levels crashed the process: py_ecc raises the recursion limit to 100,000
    at import, and the C JSON parser then overflowed the stack (SIGSEGV, no answer)."""
    deep = MAX_JSON_DEPTH + 1
    bodies = (
        b"[" * deep + b"]" * deep,
        b'{"a":' * deep + b"1" + b"}" * deep,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 40_000 + b"1" + b"}" * 40_000,
    )
    for path, org in (("/v1/policies", "INSURER"), ("/v1/entries", "BANK-A")):
        for body in bodies:
            answer = await refused(
                story, lambda p=path, o=org, b=body: story.post_raw(o, p, b), 400
            )
            assert f"over {MAX_JSON_DEPTH} deep" in answer["detail"], (path, body[:10])


async def test_deep_brackets_inside_strings_are_only_text(story: Story) -> None:
    body = policy_body(exporter_name="[" * (MAX_JSON_DEPTH + 5) + "Export Co" + "{" * 40)
    receipt = await story.ok("INSURER", "/v1/policies", body)
    assert receipt["type"] == "policy.registered"


async def test_refuses_nesting_in_a_field_naming_it(story: Story) -> None:
    nested: Any = "x"
    for _ in range(MAX_JSON_DEPTH - 2):
        nested = [nested]
    answer = await refused(
        story, lambda: story.post("INSURER", "/v1/policies", policy_body(exporter_name=nested)), 422
    )
    assert fields(answer) == ["exporter_name"]


async def test_refuses_lone_surrogates_naming_the_field(story: Story) -> None:
    # a lone high surrogate, a lone low one, a reversed pair (all escaped: JSON allows it)
    for spelling in ("\\ud800", "\\udfff", "\\udc00\\ud800"):
        text = json.dumps(policy_body(policy_no="P-@S@")).replace("@S@", spelling)
        answer = await refused(
            story, lambda t=text: story.post_raw("INSURER", "/v1/policies", t.encode()), 422
        )
        assert fields(answer) == ["policy_no"]
        assert "surrogate" in answer["errors"][0]["message"]


async def test_refuses_a_lone_surrogate_in_an_envelope(story: Story) -> None:
    key = NodeFiles(story.data).org_key("BANK-A")
    assert key is not None
    entry = make_entry(key, "loan.repayment", {"loan_id": "X", **repayment_body()}, NOW)
    text = json.dumps(entry.to_json()).replace('"loan_id": "X"', '"loan_id": "X\\ud800"')
    answer = await refused(
        story, lambda: story.post_raw("BANK-A", "/v1/entries", text.encode()), 422
    )
    assert "surrogate" in answer["detail"]


async def test_refuses_bytes_that_are_not_utf8_as_malformed(story: Story) -> None:
    # a surrogate encoded as UTF-8 bytes (CESU-8), an invalid continuation byte, 0xff
    for raw in (b"\xed\xa0\x80", b"\xc3\x28", b"\xff"):
        body = json.dumps(policy_body(policy_no="P-@")).encode().replace(b"@", raw)
        answer = await refused(
            story, lambda b=body: story.post_raw("INSURER", "/v1/policies", b), 400
        )
        assert "utf-8" in answer["detail"].lower()


async def test_refuses_json_not_in_plain_utf8(story: Story) -> None:
    """RFC 8259: UTF-8 without a byte order mark (json.loads would guess the others)."""
    for encoding in ("utf-16", "utf-32", "utf-8-sig"):
        body = json.dumps(policy_body()).encode(encoding)
        await refused(story, lambda b=body: story.post_raw("INSURER", "/v1/policies", b), 400)


async def test_refuses_unknown_fields_nested_and_in_the_envelope(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    nested = drawdown_body("A-2", "CN-1", {**rec, "discount": "0.1"})
    answer = await refused(story, lambda: story.post("BANK-A", "/v1/loans", nested), 422)
    assert fields(answer) == ["receivable.discount"]
    shipment = {**rec["shipment"], "owner": "someone"}
    deeper = drawdown_body("A-2", "CN-1", {**rec, "shipment": shipment})
    answer = await refused(story, lambda: story.post("BANK-A", "/v1/loans", deeper), 422)
    assert fields(answer) == ["receivable.shipment.owner"]
    signed = sign(story, "BANK-A", drawdown_body("A-2", "CN-1", rec))
    envelope = {**signed.to_json(), "note": "extra"}
    answer = await refused(story, lambda: story.post("BANK-A", "/v1/entries", envelope), 422)
    assert fields(answer) == [""]


WRONG_CONTENT_TYPES = (
    "text/plain",
    "application/xml",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "text/json",
)


async def test_refuses_wrong_content_types_with_415(story: Story) -> None:
    body = json.dumps(policy_body()).encode()
    for path in ("/v1/policies", "/v1/entries"):
        for content_type in WRONG_CONTENT_TYPES:
            answer = await refused(
                story,
                lambda p=path, c=content_type: story.post_raw("INSURER", p, body, c),
                415,
            )
            assert content_type.split(";")[0] in answer["detail"]


async def test_a_json_body_without_content_type_is_read(story: Story) -> None:
    """No Content-Type at all is taken as JSON (curl -d sends form; clients omit it)."""
    r = await story.client.post(
        "/v1/policies", content=json.dumps(policy_body()).encode(), headers=story.auth("INSURER")
    )
    assert r.status_code == 201, r.text


# --------------------------------------------------------------------------- ledger reads


BEYOND_2_63 = (
    (f"/v1/ledger/blocks/{2**63}", {}, "height"),
    (f"/v1/ledger/blocks/{2**64 + 1}", {}, "height"),
    ("/v1/ledger/blocks", {"from": 2**63}, "from"),
    ("/v1/ledger/blocks", {"from": 10**30}, "from"),
    ("/v1/ledger/consistency", {"from": 1, "to": 2**63}, "to"),
    ("/v1/ledger/consistency", {"from": 2**63, "to": 2**63}, "from"),
    ("/v1/flags", {"since": 2**63}, "since"),
)


async def test_refuses_an_index_or_size_beyond_2_63(any_story: Story) -> None:
    """These were 500s: the number reached the database, whose column cannot hold it."""
    for path, params, field in BEYOND_2_63:
        answer = problem(await any_story.get("REGULATOR", path, **params), 422)
        assert field in fields(answer), (path, params)


async def test_the_largest_height_asked_for_is_not_found(any_story: Story) -> None:
    story = any_story
    r = await story.get("REGULATOR", f"/v1/ledger/blocks/{MAX_SIZE - 100}")
    assert problem(r, 404)["resource"] == "block"
    r = await story.get("REGULATOR", "/v1/ledger/blocks", **{"from": MAX_SIZE - 100})
    assert r.status_code == 200 and r.json() == []


# --------------------------------------------------------------------------- signatures


def sign(story: Story, org: str, body: dict[str, Any], **kw: Any) -> SignedEntry:
    key = NodeFiles(story.data).org_key(org)
    assert key is not None
    entry_type = kw.pop("entry_type", "loan.drawdown")
    return make_entry(key, entry_type, body, kw.pop("ts", NOW), **kw)


def envelope(entry: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """``entry`` as given, signed by ``key`` whatever the entry says."""
    sig = key.sign(ENTRY_PREFIX, canonical(entry))
    return {"entry": entry, "sig": base64.b64encode(sig).decode()}


def org_key(story: Story, org: str) -> SigningKey:
    key = NodeFiles(story.data).org_key(org)
    assert key is not None
    return key


async def test_refuses_an_entry_signed_with_another_orgs_key(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    entry = sign(story, "BANK-A", drawdown_body("A-1", "CN-1", rec)).entry
    forged = envelope(entry, org_key(story, "BANK-B"))  # says BANK-A/1, signed by BANK-B/1
    answer = await refused(story, lambda: story.post("BANK-A", "/v1/entries", forged), 422)
    assert fields(answer) == ["sig"]


async def test_refuses_an_entry_naming_another_orgs_key(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    entry = {**sign(story, "BANK-A", drawdown_body("A-1", "CN-1", rec)).entry, "key": "BANK-B/1"}
    signed = envelope(entry, org_key(story, "BANK-B"))  # a valid signature by the key named
    answer = await refused(story, lambda: story.post("BANK-A", "/v1/entries", signed), 422)
    assert "BANK-B/1" in answer["detail"]


async def test_refuses_the_right_key_over_different_bytes(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    signed = sign(story, "BANK-A", drawdown_body("A-1", "CN-1", rec)).to_json()
    for change in ({"amount": "1.00"}, {"loan_id": "A-2"}, {"maturity_date": "2027-01-01"}):
        tampered = copy.deepcopy(signed)
        tampered["entry"]["body"].update(change)
        answer = await refused(
            story, lambda t=tampered: story.post("BANK-A", "/v1/entries", t), 422
        )
        assert fields(answer) == ["sig"], change
    for name, value in (("ts", "2026-11-21T12:00:01.000Z"), ("nonce", "0" * 32)):
        tampered = copy.deepcopy(signed)
        tampered["entry"][name] = value
        answer = await refused(
            story, lambda t=tampered: story.post("BANK-A", "/v1/entries", t), 422
        )
        assert fields(answer) == ["sig"], name


async def test_refuses_a_signature_that_is_not_64_bytes_of_base64(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    signed = sign(story, "BANK-A", drawdown_body("A-1", "CN-1", rec)).to_json()
    for sig in ("not base64!", base64.b64encode(bytes(63)).decode(), "", signed["sig"][:-4]):
        bad = {**signed, "sig": sig}
        answer = await refused(story, lambda b=bad: story.post("BANK-A", "/v1/entries", b), 422)
        assert "sig" in answer["detail"]


async def test_refuses_a_revoked_key_and_takes_its_successor(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    successor = SigningKey.generate("BANK-A/2")
    key = {"key_id": successor.key_id, "public_key": successor.public.b64}
    await story.ok("REGULATOR", "/v1/orgs/BANK-A/keys", key)
    await story.ok(
        "REGULATOR", "/v1/orgs/BANK-A/keys/BANK-A/1/revocation", {"reason": "HSM compromised"}
    )
    old = sign(story, "BANK-A", drawdown_body("A-1", "CN-1", rec))
    answer = await refused(story, lambda: story.post_raw("BANK-A", "/v1/entries", old.raw), 422)
    assert fields(answer) == ["sig"]
    assert "revoked" in answer["detail"]
    new = make_entry(successor, "loan.drawdown", drawdown_body("A-1", "CN-1", rec), NOW)
    r = await story.post_raw("BANK-A", "/v1/entries", new.raw)
    assert r.status_code == 201, r.text


async def test_a_nonce_is_used_once_even_by_another_entry(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    first = sign(story, "BANK-A", drawdown_body("A-1", "CN-1", rec), nonce="ab" * 16)
    receipt = await story.post_raw("BANK-A", "/v1/entries", first.raw)
    assert receipt.status_code == 201, receipt.text
    other = sign(story, "BANK-A", {"loan_id": "A-1", **repayment_body()}, nonce="ab" * 16,
                 entry_type="loan.repayment")  # fmt: skip
    answer = await refused(story, lambda: story.post_raw("BANK-A", "/v1/entries", other.raw), 422)
    assert fields(answer) == ["entry.nonce"]
    assert "already used" in answer["detail"]


async def test_a_replayed_envelope_adds_nothing_however_often(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    signed = sign(story, "BANK-A", drawdown_body("A-1", "CN-1", rec))
    first = await story.post_raw("BANK-A", "/v1/entries", signed.raw)
    assert first.status_code == 201, first.text
    before = node_state(story)
    for _ in range(3):
        again = await story.post_raw("BANK-A", "/v1/entries", signed.raw)
        assert again.status_code == 201
        assert again.json()["index"] == first.json()["index"]
        assert again.json()["duplicate"] is True
    assert node_state(story) == before
    loans = (await story.get("REGULATOR", "/v1/loans")).json()
    assert [loan["loan_id"] for loan in loans] == ["A-1"]


async def test_refuses_a_timestamp_outside_the_window(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    second = timedelta(seconds=1)
    for skew in (-timedelta(minutes=5) - second, timedelta(minutes=5) + second,
                 timedelta(days=365), -timedelta(days=365)):  # fmt: skip
        signed = sign(story, "BANK-A", drawdown_body("A-1", "CN-1", rec), ts=NOW + skew)
        answer = await refused(
            story, lambda s=signed: story.post_raw("BANK-A", "/v1/entries", s.raw), 422
        )
        assert fields(answer) == ["entry.ts"], skew


async def test_a_timestamp_at_the_edge_of_the_window_is_taken(
    insured: tuple[Story, dict[str, Any]],
) -> None:
    story, rec = insured
    signed = sign(story, "BANK-A", drawdown_body("A-1", "CN-1", rec), ts=NOW + timedelta(minutes=5))
    r = await story.post_raw("BANK-A", "/v1/entries", signed.raw)
    assert r.status_code == 201, r.text


async def test_refuses_an_envelope_of_a_type_the_role_may_not_sign(story: Story) -> None:
    signed = sign(story, "BANK-A", policy_body(policy_no=POLICY_NO), entry_type="policy.registered")
    await refused(story, lambda: story.post_raw("BANK-A", "/v1/entries", signed.raw), 403)
