"""Screenshots of the console's main views, for the README.

    python -m tests.e2e.screenshots [--out docs/console] [--no-anchor]

Starts `pfnode serve` on a temporary demo directory (anchoring on the embedded chain,
every checkpoint, unless --no-anchor), plays the story of tests/e2e/console_helpers.py,
signs in as the regulator, draws BANK-B's renumbered-invoice loan and its duplicate while
the page watches, and saves: overview.png, flags.png, exposures.png, health.png,
proof.png (an inclusion proof verified in the browser) and bank.png (BANK-B's view).
Needs Chromium at /usr/bin/chromium and the playwright package.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect, sync_playwright

from tests.e2e.console_helpers import CHROMIUM, ConsoleNode, console_node, log_in

VIEWPORT = {"width": 1400, "height": 1000}
ANCHOR = ("--anchor", "embedded", "--anchor-every-seconds", "2", "--anchor-every-blocks", "1")
ANCHOR_WAIT_S = 300  # py-evm deploys the contract and checks BLS in Python: minutes


def wait_anchor_mined(node: ConsoleNode, seconds: float) -> bool:
    """Until the latest aggregated checkpoint covers the log and its transaction is mined."""
    deadline = time.monotonic() + seconds
    with node.client("REGULATOR") as regulator:
        while time.monotonic() < deadline:
            size = regulator.get("/healthz").json()["log_size"]
            anchor = regulator.get("/v1/ledger/anchor")
            shown = anchor.json() if anchor.status_code == 200 else {}
            if shown.get("tx_hash") and shown["size"] == size:
                return True
            time.sleep(1)
    return False


def settle(page: Any) -> None:
    """Every flag card filled in, every proof mark decided, the charts drawn."""
    page.wait_for_function(
        """() => [...document.querySelectorAll('#flag-list .mark')]
                  .every(m => m.dataset.verdict !== 'pending')
              && [...document.querySelectorAll('#flag-list [data-field=latency]')]
                  .every(l => l.dataset.ms !== undefined)"""
    )
    page.wait_for_timeout(3500)  # one refresh of loans, exposures and health


def shoot_regulator(page: Any, node: ConsoleNode, out: Path) -> None:
    log_in(page, node, "REGULATOR")
    node.draw_renumbered()
    node.draw_duplicate()
    page.locator('li.flag[data-code="DUPLICATE_FINANCING"]').wait_for()
    node.wait_checkpoint()
    settle(page)
    page.locator("#flags").screenshot(path=out / "flags.png")
    page.locator("#exposures").screenshot(path=out / "exposures.png")
    entry_hash = node.ensure_duplicate().json()["receipt"]["entry_hash"]
    page.locator(f'#flag-list .proof-link[data-hash="{entry_hash}"]').first.click()
    expect(page.locator("#proof-verdict")).to_have_attribute("data-verdict", "ok")
    page.screenshot(path=out / "proof.png")


def shoot_bank(page: Any, node: ConsoleNode, out: Path) -> None:
    log_in(page, node, "BANK-B")
    settle(page)
    page.screenshot(path=out / "bank.png", full_page=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.screenshots")
    parser.add_argument("--out", type=Path, default=Path("docs/console"))
    parser.add_argument("--no-anchor", action="store_true", help="leave anchoring off")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"no Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    extra = () if args.no_anchor else ANCHOR
    with (
        tempfile.TemporaryDirectory(prefix="pfnode-console-") as tmp,
        console_node(Path(tmp) / "data", extra) as node,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        regulator = browser.new_context(viewport=VIEWPORT).new_page()
        shoot_regulator(regulator, node, args.out)
        if not args.no_anchor and not wait_anchor_mined(node, ANCHOR_WAIT_S):
            print("no anchor mined in time: health.png shows it pending", file=sys.stderr)
        regulator.keyboard.press("Escape")
        regulator.wait_for_timeout(3500)
        regulator.evaluate("document.activeElement.blur()")
        regulator.screenshot(path=args.out / "overview.png", full_page=True)
        regulator.locator("#health").screenshot(path=args.out / "health.png")
        shoot_bank(browser.new_context(viewport=VIEWPORT).new_page(), node, args.out)
        browser.close()
    for name in sorted(p.name for p in args.out.glob("*.png")):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
