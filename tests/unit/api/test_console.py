"""The console's routes: GET /v1/me, the page at / and its assets under /console/."""

from __future__ import annotations

import re

from tests.unit.api.story import Story


async def test_me_names_the_callers_organisation_and_role(story: Story) -> None:
    for org, role in [
        ("REGULATOR", "regulator"),
        ("BANK-A", "bank"),
        ("INSURER", "insurer"),
    ]:
        r = await story.get(org, "/v1/me")
        assert r.status_code == 200
        assert r.json() == {"org": org, "role": role}
    assert (await story.get(None, "/v1/me")).status_code == 401


async def test_console_page_and_assets_are_served_outside_the_schema(story: Story) -> None:
    page = await story.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/console/console.js">' in page.text
    script = await story.client.get("/console/verify.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "verifyInclusion" in script.text
    assert (await story.client.get("/console/index.py")).status_code == 404
    paths = (await story.client.get("/openapi.json")).json()["paths"]
    assert not {"/", "/console/{name}"} & set(paths)


async def test_every_file_the_page_loads_is_served(story: Story) -> None:
    """The page's links and the modules' imports all resolve under /console/."""
    page = (await story.client.get("/")).text
    wanted = set(re.findall(r'"/console/([\w.-]+)"', page))
    seen: set[str] = set()
    while wanted - seen:
        name = (wanted - seen).pop()
        seen.add(name)
        r = await story.client.get(f"/console/{name}")
        assert r.status_code == 200, name
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([\w.-]+)"', r.text))
    assert {"console.js", "console.css", "verify.js", "charts.js"} <= seen
