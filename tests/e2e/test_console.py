"""The regulator's console in headless Chromium, against a real `pfnode serve`.

A regulator signs in, watches a duplicate drawdown get flagged live, opens the flagged
entry's inclusion proof (checked by the page with Web Crypto) and downloads the audit
report; a tampered proof shows a cross; BANK-B's token shows BANK-B's loans and flags
and nothing of BANK-A's. The page's own proof code is also run against the RFC 9162 and
RFC 8785 vectors, in the browser.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run), driven by Playwright's
Python package; `playwright install` is never needed.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import shared_vectors
from tests.e2e.console_helpers import (
    BANK_A_LOANS,
    BANK_B_LOANS,
    CHROMIUM,
    DUPLICATE_LOAN,
    ConsoleNode,
    console_node,
    log_in,
    tamper_json,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

FLAG_WAIT_MS = 15_000  # the wall-clock wait is generous: a loaded 2-core machine
FLAG_WALL_S = 5.0
FLAG_LEDGER_MS = 1000  # what the page shows: block time - entry ts


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleNode]:
    with console_node(tmp_path_factory.mktemp("console") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh context per test: its own sessionStorage, so its own sign-in."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def flag_card(page: Any, code: str, entry_hash: str) -> Any:
    return page.locator(f'li.flag[data-code="{code}"][data-entry="{entry_hash}"]')


def test_regulator_sees_a_duplicate_flagged_live_and_its_proof_verified(
    page: Any, node: ConsoleNode
) -> None:
    if node.duplicate is not None:
        pytest.skip("the duplicate was drawn by an earlier test: nothing left to watch live")
    log_in(page, node, "REGULATOR")
    assert page.locator("#flag-list li").count() == 0

    sent = time.monotonic()
    receipt = node.draw_duplicate().json()["receipt"]
    card = page.locator('li.flag[data-code="DUPLICATE_FINANCING"]')
    card.wait_for(timeout=FLAG_WAIT_MS)
    on_screen = time.monotonic() - sent
    assert on_screen < FLAG_WALL_S, f"the flag took {on_screen:.2f} s to appear"
    assert card.get_attribute("data-entry") == receipt["entry_hash"]

    latency = card.locator('[data-field="latency"][data-ms]')
    latency.wait_for()
    shown_ms = int(latency.get_attribute("data-ms"))
    assert 0 <= shown_ms < FLAG_LEDGER_MS
    assert f"flagged in {shown_ms} ms" in latency.inner_text()

    assert "critical" in card.locator(".sev").inner_text().lower()
    receivable = card.locator('[data-field="receivable"]')
    sync_api.expect(receivable).to_contain_text("invoice INV-1")
    sync_api.expect(receivable).to_contain_text("B/L BL-1")
    institutions = card.locator('[data-field="institutions"]')
    sync_api.expect(institutions).to_contain_text("BANK-B (drew)")
    sync_api.expect(institutions).to_contain_text("BANK-A (related entry)")  # the earlier loan
    sync_api.expect(card.locator('[data-field="entry"]')).to_contain_text(DUPLICATE_LOAN)

    own = card.locator(f'.proof-link[data-hash="{receipt["entry_hash"]}"]')
    sync_api.expect(own.locator(".mark")).to_have_attribute("data-verdict", "ok")
    related = card.locator(".proof-link").nth(1)
    sync_api.expect(related.locator(".mark")).to_have_attribute("data-verdict", "ok")

    own.click()
    verdict = page.locator("#proof-verdict")
    sync_api.expect(verdict).to_have_attribute("data-verdict", "ok", timeout=FLAG_WAIT_MS)
    assert verdict.inner_text().startswith("✓")
    assert page.locator('#proof-steps li[data-step="leaf"]').get_attribute("data-verdict") == "ok"
    inclusion = page.locator('#proof-steps li[data-step="inclusion"]')
    assert inclusion.get_attribute("data-verdict") == "ok"
    assert receipt["entry_hash"] in page.locator("#proof-facts").inner_text()


def test_regulator_downloads_the_audit_report_as_csv_and_json(page: Any, node: ConsoleNode) -> None:
    node.ensure_duplicate()
    log_in(page, node, "REGULATOR")
    with page.expect_download() as csv_download:
        page.click("#download-csv")
    path = csv_download.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    loans = {r["loan_id"] for r in rows if r["record"] == "loan"}
    assert set(BANK_A_LOANS) | set(BANK_B_LOANS) <= loans
    assert "DUPLICATE_FINANCING" in {r["code"] for r in rows if r["record"] == "flag"}
    assert csv_download.value.suggested_filename.endswith(".csv")

    with page.expect_download() as json_download:
        page.click("#download-json")
    report = json.loads(Path(json_download.value.path()).read_text())
    assert {loan["loan_id"] for loan in report["loans"]} == loans
    assert "DUPLICATE_FINANCING" in {flag["code"] for flag in report["flags"]}
    sync_api.expect(page.locator("#audit-status")).to_contain_text("Downloaded")


def test_regulator_sees_exposures_and_chain_health(page: Any, node: ConsoleNode) -> None:
    node.ensure_duplicate()
    log_in(page, node, "REGULATOR")
    for chart, labels in [
        ("#exposure-bank", ["BANK-A", "BANK-B"]),
        ("#exposure-country", ["DE", "US", "FR"]),
        ("#exposure-buyer", ["DE-BUYER-042", "US-BUYER-007", "FR-BUYER-311"]),
    ]:
        bars = page.locator(f"{chart} g.bar")
        sync_api.expect(bars).to_have_count(len(labels))
        assert sorted(bars.evaluate_all("gs => gs.map(g => g.dataset.label)")) == sorted(labels)
    bank_a = page.locator('#exposure-bank g.bar[data-label="BANK-A"]')
    assert "320,000.00 · 2 loans" in (bank_a.text_content() or "")  # 200,000 + 120,000 open

    health = page.locator("#health-node")
    sync_api.expect(health).to_contain_text("ok · leader")
    size = str(page.request.get(node.base + "/healthz").json()["log_size"])
    sync_api.expect(health).to_contain_text(size)
    checkpoint = page.locator("#health-checkpoint")
    sync_api.expect(checkpoint).to_contain_text("pfnode.demo/ledger (log)")
    sync_api.expect(page.locator("#health-anchor")).to_contain_text("anchoring is off")


def test_bank_sees_its_own_loans_and_flags_and_nothing_of_another_bank(
    page: Any, node: ConsoleNode
) -> None:
    node.ensure_duplicate()
    log_in(page, node, "REGULATOR")
    sync_api.expect(page.locator("#loan-table tbody")).to_contain_text(BANK_A_LOANS[0])
    page.click("#sign-out")
    page.wait_for_selector("#login", state="visible")

    forbidden: list[str] = []
    page.on("response", lambda r: r.status == 403 and forbidden.append(r.url))
    log_in(page, node, "BANK-B")
    sync_api.expect(page.locator("#who-org")).to_have_text("BANK-B")
    table = page.locator("#loan-table tbody tr")
    sync_api.expect(table).to_have_count(len(BANK_B_LOANS))
    assert sorted(table.evaluate_all("rows => rows.map(r => r.dataset.loan)")) == sorted(
        BANK_B_LOANS
    )
    card = page.locator('li.flag[data-code="DUPLICATE_FINANCING"]')
    card.wait_for()
    sync_api.expect(card.locator('[data-field="institutions"]')).to_have_text(
        "BANK-B (drew) · another institution (not named to you)"
    )
    sync_api.expect(card.locator(".proof-link .mark")).to_have_attribute("data-verdict", "ok")
    assert card.locator(".proof-link").count() == 1  # no link to BANK-A's entry

    sync_api.expect(page.locator("#exposures")).to_be_hidden()
    sync_api.expect(page.locator("#audit")).to_be_hidden()
    page.wait_for_timeout(3500)  # a refresh cycle: nothing asks for a regulator's path
    page_text = page.locator("body").inner_text() + page.content()
    assert not [loan for loan in BANK_A_LOANS if loan in page_text]
    for panel in ("#flags", "#loans"):  # membership is public (cosigners); financing is not
        assert "BANK-A" not in page.locator(panel).inner_text()
    assert forbidden == []


def test_refuses_an_unknown_token(page: Any, node: ConsoleNode) -> None:
    page.goto(node.base + "/")
    page.fill("#token", "pfn_not-a-token")
    page.click("#login-form button[type=submit]")
    sync_api.expect(page.locator("#login-error")).to_contain_text("does not know that token")
    sync_api.expect(page.locator("#console")).to_be_hidden()


def flip_proof_hash(answer: dict[str, Any]) -> dict[str, Any]:
    first = answer["proof"]["hashes"][0]
    flipped = ("1" if first[0] == "0" else "0") + first[1:]
    return {
        **answer,
        "proof": {**answer["proof"], "hashes": [flipped, *answer["proof"]["hashes"][1:]]},
    }


def change_amount(answer: dict[str, Any]) -> dict[str, Any]:
    signed = answer["entry"]
    body = {**signed["entry"]["body"], "amount": "1.00"}
    return {**answer, "entry": {**signed, "entry": {**signed["entry"], "body": body}}}


@pytest.mark.parametrize(
    ("tamper", "failed_step"),
    [(flip_proof_hash, "inclusion"), (change_amount, "leaf")],
    ids=["proof-hash-flipped", "entry-body-changed"],
)
def test_invalid_proof_shows_a_cross(
    page: Any, node: ConsoleNode, tamper: Any, failed_step: str
) -> None:
    entry_hash = node.ensure_duplicate().json()["receipt"]["entry_hash"]
    page.route(f"**/v1/ledger/entries/{entry_hash}", lambda route: tamper_json(route, tamper))
    log_in(page, node, "REGULATOR")
    card = flag_card(page, "DUPLICATE_FINANCING", entry_hash)
    mark = card.locator(f'.proof-link[data-hash="{entry_hash}"] .mark')
    sync_api.expect(mark).to_have_attribute("data-verdict", "failed")
    assert mark.inner_text() == "✗"
    related = card.locator(".proof-link").nth(1).locator(".mark")  # untouched: still a tick
    sync_api.expect(related).to_have_attribute("data-verdict", "ok")

    card.locator(f'.proof-link[data-hash="{entry_hash}"]').click()
    verdict = page.locator("#proof-verdict")
    sync_api.expect(verdict).to_have_attribute("data-verdict", "failed")
    assert verdict.inner_text().startswith("✗ NOT verified")
    step = page.locator(f'#proof-steps li[data-step="{failed_step}"]')
    assert step.get_attribute("data-verdict") == "failed"


def test_page_verifiers_pass_the_rfc_vectors_in_the_browser(page: Any, node: ConsoleNode) -> None:
    merkle = shared_vectors("merkle-rfc6962")
    jcs = shared_vectors("jcs-rfc8785")
    cases = {
        kind: [json.loads(p.read_text()) for p in sorted((merkle / kind).glob("*/*.json"))]
        for kind in ("inclusion", "consistency")
    }
    canonical = [
        {"name": p.name, "input": p.read_text(), "output": (jcs / "output" / p.name).read_text()}
        for p in sorted((jcs / "input").glob("*.json"))
    ]
    page.goto(node.base + "/")
    wrong = page.evaluate(
        """async ({cases, canonical}) => {
            const v = await import("/console/verify.js");
            const b = (s) => v.base64ToBytes(s);
            const wrong = [];
            const expect = async (kind, c, run) => {
                let failed = false;
                try { await run(); } catch (e) { failed = true; }
                if (failed !== c.wantErr) wrong.push(`${kind}: ${c.desc} ${JSON.stringify(c)}`);
            };
            for (const c of cases.inclusion) await expect("inclusion", c, () =>
                v.verifyInclusion(b(c.leafHash), c.leafIdx, c.treeSize, (c.proof || []).map(b), b(c.root)));
            for (const c of cases.consistency) await expect("consistency", c, () =>
                v.verifyConsistency(c.size1, c.size2, b(c.root1), b(c.root2), (c.proof || []).map(b)));
            for (const c of canonical) {
                if (v.canonicalJson(JSON.parse(c.input)) !== c.output) wrong.push(`jcs: ${c.name}`);
            }
            return wrong;
        }""",
        {"cases": cases, "canonical": canonical},
    )
    assert len(cases["inclusion"]) + len(cases["consistency"]) > 100
    assert any(c["wantErr"] for c in cases["inclusion"] + cases["consistency"])
    assert wrong == []
