"""/healthz and /metrics: no authentication; metrics count what happened."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.unit.api.story import Story


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_healthz_reports_the_ledger_head(story: Story) -> None:
    r = await story.client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "role": "leader",
        "height": None,
        "log_size": 0,
        "queue": 0,
        "alarms": [],
        "upstream_error": None,
    }
    await story.insure()
    health = (await story.client.get("/healthz")).json()
    assert health["log_size"] == 3
    assert health["height"] is not None


async def test_healthz_is_503_when_the_sequencer_is_down(story: Story) -> None:
    story.node.sequencer.stop()
    r = await story.client.get("/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "degraded"


async def test_metrics_count_requests_entries_flags_and_latency(story: Story) -> None:
    await story.duplicate_story()
    await story.get("BANK-A", "/v1/loans/NOPE")
    r = await story.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)

    def value(name: str, **labels: str) -> float:
        return got.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("pfnode_entries_total", type="loan.drawdown", status="accepted") == 1
    assert value("pfnode_entries_total", type="loan.drawdown", status="rejected") == 1
    assert value("pfnode_entries_total", type="coverage.issued", status="accepted") == 2
    assert value("pfnode_flags_total", code="DUPLICATE_FINANCING") == 1
    assert value("pfnode_write_seconds_count") == 6
    assert value("pfnode_http_requests_total", method="POST", route="/v1/loans", status="201") == 1
    assert value("pfnode_http_requests_total", method="POST", route="/v1/loans", status="409") == 1
    assert (
        value("pfnode_http_requests_total", method="GET", route="/v1/loans/{loan_id}", status="404")
        == 1
    )
    assert value("pfnode_ledger_size") == 6


async def test_unknown_paths_share_one_metrics_label(story: Story) -> None:
    for path in ("/a", "/b", "/c"):
        await story.client.get(path)
    got = samples((await story.client.get("/metrics")).text)
    key = (
        "pfnode_http_requests_total",
        (("method", "GET"), ("route", "unmatched"), ("status", "404")),
    )
    assert got[key] == 3
