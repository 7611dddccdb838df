"""The local lab obeys only its own page: same origin, known hosts, and the token when set."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from dcml_bot.app import Service, build_service
from dcml_bot.platforms.local.guard import COOKIE, LabExposed, host_name, is_loopback
from dcml_bot.platforms.local.messenger import CLOCK_OFFSET
from dcml_bot.server import build_http_app
from fakes.api import FakeAPI, running
from support import MONDAY_SLOT, Clock, lab_settings

THURSDAY = MONDAY_SLOT + dt.timedelta(days=3)
TOKEN = "lab-token-4f9c2e7a1b"
EVIL = "http://evil.example"
PAYLOADS = Path(__file__).parent / "data" / "payloads"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ROUTES = [
    "/local/members",
    "/local/command",
    "/local/press",
    "/local/admin/deliver",
    "/local/admin/advance",
    "/local/admin/reload",
]


def with_local(settings: Any, **local: Any) -> Any:
    """``settings`` with ``[local]`` keys changed (unvalidated: the token as if from the env)."""
    return settings.model_copy(update={"local": settings.local.model_copy(update=local)})


@dataclass
class Lab:
    service: Service
    client: httpx.Client
    base: str

    def csrf(self) -> str:
        """The CSRF token embedded in the lab page's forms."""
        match = CSRF.search(self.client.get("/").text)
        assert match is not None
        return match.group(1)

    def post(self, path: str, form: dict[str, str], **headers: str) -> httpx.Response:
        return self.client.post(path, data=form, headers=headers)

    def own(self, path: str, form: dict[str, str], csrf: str) -> httpx.Response:
        """A post as the lab's own page sends it from Chromium."""
        headers = {"Origin": self.base, "Sec-Fetch-Site": "same-origin"}
        return self.client.post(path, data={**form, "csrf": csrf}, headers=headers)

    def state(self) -> Any:
        """What the lab's actions change: members, local messages, the clock offset and
        progress, read from the database; and the size of the loaded catalog."""
        store = self.service.bot.store
        members = store.list_members()
        catalog = self.service.bot.library.current
        return (
            [(m.user_id, m.enrolled, m.onboarded_at) for m in members],
            [(m.id, m.user_id, m.channel, m.reply) for m in store.local_messages()],
            store.local_get(CLOCK_OFFSET),
            {m.user_id: sorted(store.progress_for(m.id).items()) for m in members},
            len(catalog.entries) if catalog else 0,
        )


@contextmanager
def serve_lab(settings: Any) -> Iterator[Lab]:
    service = build_service(settings, clock=Clock(THURSDAY), schedule=False)
    with running(build_http_app(service)) as base, httpx.Client(base_url=base) as client:
        yield Lab(service, client, base)


@pytest.fixture
def lab(db_url: str) -> Iterator[Lab]:
    with serve_lab(lab_settings(db_url)) as opened:
        yield opened


@pytest.fixture
def locked(db_url: str) -> Iterator[Lab]:
    """The lab with ``DCML_BOT_LOCAL__TOKEN`` set."""
    with serve_lab(with_local(lab_settings(db_url), token=SecretStr(TOKEN))) as opened:
        yield opened


def forms(lab: Lab, tmp_path: Path, csrf: str) -> dict[str, dict[str, str]]:
    """A member with a paper to press, one enrolled but not yet served, a smaller guide to
    reload; and for each route a form that changes something when the page posts it."""
    assert lab.own("/local/members", {"name": "Ann"}, csrf).status_code == 303
    bot = lab.service.bot
    bea = bot.store.upsert_member("local", "bea", display_name="Bea", now=THURSDAY)
    bot.store.set_enrolled(bea.id, True, THURSDAY)
    message_id, paper = bot.messengers["local"].inbox("ann")[-1]  # type: ignore[attr-defined]
    button = paper.buttons[0]
    guide = tmp_path / "guide.md"
    guide.write_text("# G\n\n### S\n\n- `⚡` 📄 [Paper](https://arxiv.org/abs/2301.00001)\n")
    bot.library.source = str(guide)
    return {
        "/local/members": {"name": "Mallory"},
        "/local/command": {"as": "ann", "text": "/dcml essential"},
        "/local/press": {
            "as": "ann",
            "message": message_id,
            "action": button.action,
            "value": button.value,
        },
        "/local/admin/deliver": {"as": "ann"},
        "/local/admin/advance": {"as": "ann"},
        "/local/admin/reload": {"as": "ann"},
    }


def attacks(base: str, csrf: str) -> dict[str, tuple[dict[str, str], str | None]]:
    """Name -> (headers, the CSRF field sent or None): every way a post is refused."""
    other_port = base.rsplit(":", 1)[0] + ":1"
    return {
        "foreign Origin": ({"Origin": EVIL}, csrf),
        "foreign Origin, same-origin fetch claimed": (
            {"Origin": EVIL, "Sec-Fetch-Site": "same-origin"},
            csrf,
        ),
        "Origin null": ({"Origin": "null"}, csrf),
        "Origin on another port": ({"Origin": other_port}, csrf),
        "Sec-Fetch-Site cross-site": ({"Sec-Fetch-Site": "cross-site"}, csrf),
        "Sec-Fetch-Site same-site": ({"Sec-Fetch-Site": "same-site"}, csrf),
        "same Origin, no CSRF token": ({"Origin": base}, None),
        "same Origin, wrong CSRF token": ({"Origin": base}, csrf[:-4] + "AAAA"),
        "same Origin, empty CSRF token": ({"Origin": base}, ""),
        "neither Origin nor Sec-Fetch-Site nor CSRF token": ({}, None),
    }


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the server logged (the client's and the test server's access lines left out)."""
    client = ("httpx", "httpcore", "uvicorn.access")  # `serve` runs uvicorn without access log
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(client))


# --- same origin and CSRF -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
def test_cross_origin_posts_get_403_and_change_nothing(lab: Lab, path: str, tmp_path: Path) -> None:
    csrf = lab.csrf()
    form = forms(lab, tmp_path, csrf)[path]
    before = lab.state()
    for name, (headers, token) in attacks(lab.base, csrf).items():
        sent = form if token is None else {**form, "csrf": token}
        response = lab.post(path, sent, **headers)
        assert response.status_code == 403, name
        assert lab.state() == before, name
    # The same form from the page itself changes the lab: the checks above can fail.
    assert lab.own(path, form, csrf).status_code == 303
    assert lab.state() != before


def test_every_form_of_the_page_carries_the_csrf_token(lab: Lab) -> None:
    csrf = lab.csrf()
    lab.own("/local/members", {"name": "Ann"}, csrf)
    page = lab.client.get("/?as=ann").text
    opened = re.findall(r"<form [^>]*>\s*<input [^>]*>", page)
    assert len(opened) == page.count("<form ") >= 6  # members, command, press, three admin
    assert all(f'name="csrf" value="{csrf}"' in tag for tag in opened)
    # A script of the page may send it as a header instead.
    response = lab.post(
        "/local/command",
        {"as": "ann", "text": "help"},
        **{"X-CSRF-Token": csrf, "Origin": lab.base},
    )
    assert response.status_code == 303


def test_the_csrf_token_is_per_process(db_url: str) -> None:
    settings = lab_settings(db_url)
    with serve_lab(settings) as first:
        token = first.csrf()
    with serve_lab(settings) as second:
        assert second.csrf() != token
        refused = second.post("/local/members", {"name": "Ann", "csrf": token}, Origin=second.base)
        assert refused.status_code == 403 and "Open the lab" in refused.text
        assert second.service.bot.store.list_members() == []


def test_a_typed_post_without_origin_but_with_the_token_works(lab: Lab) -> None:
    # Sec-Fetch-Site "none" (typed by the user) and clients without fetch metadata (curl)
    # are let through by the token alone.
    csrf = lab.csrf()
    typed = lab.post("/local/members", {"name": "Ann", "csrf": csrf}, **{"Sec-Fetch-Site": "none"})
    assert typed.status_code == 303
    plain = lab.post("/local/members", {"name": "Bob", "csrf": csrf})
    assert plain.status_code == 303
    assert [m.user_id for m in lab.service.bot.store.list_members()] == ["ann", "bob"]


def test_the_lab_cannot_be_framed(lab: Lab) -> None:
    page = lab.client.get("/")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "same-origin"


# --- Host headers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "evil.example",
        "localhost.evil.example:{port}",
        "127.0.0.1.nip.io:{port}",
        "evil.example@127.0.0.1:{port}",
        "127.0.0.1:{port}/x",
        "[::2]:{port}",
        "0.0.0.0:{port}",
    ],
)
def test_foreign_host_headers_get_400_and_change_nothing(lab: Lab, host: str) -> None:
    csrf = lab.csrf()
    host = host.format(port=lab.base.rsplit(":", 1)[1])
    before = lab.state()
    page = lab.client.get("/", headers={"Host": host})
    assert page.status_code == 400
    assert "csrf" not in page.text
    for path, form in [("/local/members", {"name": "Mallory"}), ("/local/admin/advance", {})]:
        # The attacker's page after DNS rebinding is same-origin with itself.
        headers = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
        response = lab.client.post(path, data={**form, "csrf": csrf}, headers=headers)
        assert response.status_code == 400, path
    assert lab.state() == before


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "LocalHost", "127.0.0.1"]
)
def test_loopback_names_are_served(lab: Lab, host: str) -> None:
    host = host.format(port=lab.base.rsplit(":", 1)[1])
    assert lab.client.get("/", headers={"Host": host}).status_code == 200
    response = lab.client.post(
        "/local/members",
        data={"name": "Ann", "csrf": lab.csrf()},
        headers={"Host": host, "Origin": f"http://{host}"},
    )
    assert response.status_code == 303


def test_configured_hosts_are_served(db_url: str) -> None:
    settings = with_local(lab_settings(db_url), hosts=["lab.example.org"], token=SecretStr(TOKEN))
    with serve_lab(settings) as lab:
        page = lab.client.get("/?token=" + TOKEN, headers={"Host": "lab.example.org"})
        assert page.status_code == 303
        # Behind a proxy that rewrites Host, an Origin of a configured name is ours too.
        response = lab.client.post(
            "/local/members",
            data={"name": "Ann", "csrf": lab.csrf()},
            headers={"Origin": "https://lab.example.org"},
        )
        assert response.status_code == 303
        assert lab.client.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_webhooks_health_and_metrics_ignore_the_host_check(tmp_path: Path) -> None:
    secret, verification = "signing-secret", "test-verification-token"
    bot_info = {"activate_status": 2, "app_name": "bot", "open_id": "ou_bot"}
    fake = FakeAPI(
        {
            "/api/auth.test": lambda r: (200, {"ok": True, "team_id": "T1", "user_id": "U1"}, {}),
            "/open-apis/auth/v3/tenant_access_token/internal": lambda r: (
                200,
                {"code": 0, "msg": "ok", "tenant_access_token": "t-1", "expire": 7200},
                {},
            ),
            "/open-apis/bot/v3/info": lambda r: (
                200,
                {"code": 0, "msg": "ok", "bot": bot_info},
                {},
            ),
        }
    ).start()
    settings = lab_settings(
        f"sqlite:///{tmp_path / 'hooks.sqlite3'}",
        slack_api_url=fake.base + "/api/",
        slack_bot_token=SecretStr("xoxb-test"),
        slack_signing_secret=SecretStr(secret),
        feishu_domain=fake.base,
        feishu_app_id=SecretStr("cli_" + uuid.uuid4().hex[:12]),
        feishu_app_secret=SecretStr("app-secret"),
        feishu_verification_token=SecretStr(verification),
        feishu_encrypt_key=None,
    )
    settings = with_local(settings, enabled="on")
    service = build_service(settings, clock=Clock(THURSDAY), schedule=False)
    evil = {"Host": "evil.example"}
    try:
        with running(build_http_app(service)) as base, httpx.Client(base_url=base) as client:
            deadline = time.monotonic() + 15
            while client.get("/healthz").status_code != 200:
                assert time.monotonic() < deadline, client.get("/healthz").text
                time.sleep(0.05)
            assert client.get("/healthz", headers=evil).status_code == 200
            assert client.get("/metrics", headers=evil).status_code == 200
            body = (PAYLOADS / "slack_url_verification.json").read_text()
            ts = str(int(time.time()))
            signature = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256)
            slack = client.post(
                "/slack/events",
                content=body,
                headers={
                    **evil,
                    "Content-Type": "application/json",
                    "X-Slack-Request-Timestamp": ts,
                    "X-Slack-Signature": "v0=" + signature.hexdigest(),
                },
            )
            assert slack.status_code == 200
            assert slack.json()["challenge"] == json.loads(body)["challenge"]
            challenge = json.loads((PAYLOADS / "feishu_url_verification.plain.json").read_text())
            feishu = client.post("/feishu/events", json=challenge, headers=evil)
            assert feishu.status_code == 200
            assert feishu.json() == {"challenge": challenge["challenge"]}
            # The lab beside them still checks.
            assert client.get("/", headers=evil).status_code == 400
    finally:
        fake.stop()


def test_without_a_token_the_lab_answers_this_machine_only(db_url: str) -> None:
    # Bound to 0.0.0.0 by `serve --host`, a client from the network is refused all the same.
    service = build_service(lab_settings(db_url), clock=Clock(THURSDAY), schedule=False)
    app = build_http_app(service)

    async def from_the_network() -> list[int]:
        transport = httpx.ASGITransport(app, client=("192.168.1.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as c:
            return [
                (await c.get("/")).status_code,
                (await c.post("/local/members", data={"name": "Mallory"})).status_code,
                (await c.get("/healthz")).status_code,
            ]

    try:
        assert asyncio.run(from_the_network()) == [403, 403, 200]
        assert service.bot.store.list_members() == []
    finally:
        service.bot.close()


def test_loopback_and_host_names() -> None:
    loopback = [
        "localhost",
        "LocalHost",
        "127.0.0.1",
        "127.0.1.1",
        "::1",
        "[::1]",
        "::ffff:127.0.0.1",
    ]
    assert all(is_loopback(host) for host in loopback)
    beyond = ["0.0.0.0", "::", "", "192.168.1.5", "fd00::5", "lab.example", "localhost.example"]
    assert not any(is_loopback(host) for host in beyond)
    assert host_name("[::1]:3000") == "::1" and host_name("Lab.Example:80") == "lab.example"
    assert [host_name(h) for h in ("", None, "a@b", "a b", "a/b", "[::1", "a:b:c")] == [None] * 7


# --- the token ----------------------------------------------------------------------------------


def test_with_a_token_the_page_asks_for_it(locked: Lab) -> None:
    page = locked.client.get("/")
    assert page.status_code == 401
    assert 'id="login"' in page.text and "DCML_BOT_LOCAL__TOKEN" in page.text
    assert "add-member" not in page.text
    csrf = CSRF.search(page.text)
    assert csrf is not None
    before = locked.state()
    # Not logged in: even a post from the page is refused.
    refused = locked.own("/local/members", {"name": "Ann"}, csrf.group(1))
    assert refused.status_code == 403
    assert locked.state() == before


def test_wrong_token_refused_right_token_gives_a_cookie(
    locked: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    csrf = CSRF.search(locked.client.get("/").text)
    assert csrf is not None
    wrong = locked.own("/local/login", {"token": TOKEN + "x"}, csrf.group(1))
    assert wrong.status_code == 403 and "not the lab" in wrong.text
    assert COOKIE not in wrong.cookies and COOKIE not in locked.client.cookies
    foreign = locked.post("/local/login", {"token": TOKEN, "csrf": csrf.group(1)}, Origin=EVIL)
    assert foreign.status_code == 403 and COOKIE not in locked.client.cookies
    no_csrf = locked.post("/local/login", {"token": TOKEN}, Origin=locked.base)
    assert no_csrf.status_code == 403 and COOKIE not in locked.client.cookies

    right = locked.own("/local/login", {"token": TOKEN}, csrf.group(1))
    assert right.status_code == 303 and right.headers["location"] == "/"
    cookie = right.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
    assert TOKEN not in cookie  # a value derived from the token, not the token
    assert locked.client.get("/").status_code == 200
    lab_csrf = locked.csrf()
    assert locked.own("/local/members", {"name": "Ann"}, lab_csrf).status_code == 303
    assert [m.user_id for m in locked.service.bot.store.list_members()] == ["ann"]
    # A made-up cookie is not a login.
    locked.client.cookies.set(COOKIE, "0" * 64)
    assert locked.client.get("/").status_code == 401
    assert TOKEN not in server_log(caplog)


def test_token_in_the_url_works_once_then_leaves_the_url(
    locked: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = locked.client.get("/?token=nope&as=ann")
    assert wrong.status_code == 403 and COOKIE not in locked.client.cookies
    right = locked.client.get(f"/?token={TOKEN}&as=ann")
    assert right.status_code == 303
    assert right.headers["location"] == "/?as=ann"  # the token is dropped from the URL
    assert COOKIE in locked.client.cookies
    page = locked.client.get("/")
    assert page.status_code == 200 and 'id="add-member"' in page.text
    assert TOKEN not in page.text
    assert TOKEN not in server_log(caplog)


def test_the_token_does_not_replace_the_origin_checks(locked: Lab) -> None:
    locked.client.get(f"/?token={TOKEN}")
    csrf = locked.csrf()
    before = locked.state()
    for name, (headers, token) in attacks(locked.base, csrf).items():
        form = {"name": "Mallory"} if token is None else {"name": "Mallory", "csrf": token}
        assert locked.post("/local/members", form, **headers).status_code == 403, name
    assert locked.state() == before


# --- start-up -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [{"host": "0.0.0.0"}, {"host": "192.168.1.5"}, {"host": "::"}, {"hosts": ["lab.example"]}],
)
def test_beyond_loopback_without_a_token_is_refused(db_url: str, changes: dict[str, Any]) -> None:
    host = changes.get("host", "127.0.0.1")
    settings = with_local(lab_settings(db_url, host=host), hosts=changes.get("hosts", []))
    with pytest.raises(LabExposed, match="DCML_BOT_LOCAL__TOKEN"):
        build_service(settings, schedule=False)
    with_token = with_local(settings, token=SecretStr(TOKEN))
    build_service(with_token, schedule=False).bot.close()


@pytest.mark.parametrize("how", ["env", "flag"])
def test_serve_refuses_a_lab_beyond_loopback_without_a_token(tmp_path: Path, how: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "FEISHU_", "DCML_"))}
    env.update(DCML_BOT_DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    serve = [str(Path(sys.executable).parent / "dcml-bot"), "serve", "--port", "0"]
    if how == "env":
        env["DCML_BOT_HOST"] = "0.0.0.0"
    else:
        serve += ["--host", "0.0.0.0"]
    result = subprocess.run(
        serve, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "DCML_BOT_LOCAL__TOKEN" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_the_token_comes_from_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcml_bot.settings import SettingsError, load_settings

    for name in list(os.environ):
        if name.startswith(("DCML_BOT_", "SLACK_", "FEISHU_")):
            monkeypatch.delenv(name)
    config = tmp_path / "bot.toml"
    config.write_text(f'[local]\ntoken = "{TOKEN}"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="DCML_BOT_LOCAL__TOKEN") as refused:
        load_settings(config)
    assert TOKEN not in str(refused.value)
    monkeypatch.setenv("DCML_BOT_LOCAL__TOKEN", TOKEN)
    config.write_text('[local]\nhosts = ["Lab.Example.org"]\n', encoding="utf-8")
    settings = load_settings(config)
    assert settings.local.token is not None
    assert settings.local.token.get_secret_value() == TOKEN
    assert settings.local.hosts == ["lab.example.org"]
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
    monkeypatch.setenv("DCML_BOT_LOCAL__TOKEN", "  ")
    with pytest.raises(SettingsError, match="DCML_BOT_LOCAL__TOKEN"):
        load_settings(config)
    monkeypatch.delenv("DCML_BOT_LOCAL__TOKEN")
    config.write_text('[local]\nhosts = ["http://lab.example.org:80"]\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"local\.hosts"):
        load_settings(config)
