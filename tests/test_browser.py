"""The local web lab in a real browser: Playwright driving Debian's Chromium against `serve`."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from fakes.browser import LAB_TOKEN, Server, browser, page, server

__all__ = ["browser", "page", "server"]  # fixtures (tests/fakes/browser.py)


def test_a_new_user_tries_every_feature_and_a_restart_keeps_it(server: Server, page: Page) -> None:
    assert f"starting on {server.base}/ (platforms: local)" in server.log.read_text()
    page.goto(server.base + "/")
    expect(page.locator("header")).to_contain_text("local lab")

    # Add a member: their onboarding DM arrives.
    page.fill("#add-member input[name=name]", "Alice Liu")
    page.click("#add-member button")
    expect(page.locator("#notice")).to_contain_text("welcome DM")
    expect(page.locator("#whoami")).to_have_text("Alice Liu")
    expect(page.locator("#dms .reply").first).to_contain_text("Welcome to the lab, Alice Liu")

    # /dcml essential: the list, with its Slack and Feishu previews.
    page.fill("#command input[name=text]", "/dcml essential")
    page.click("#command button")
    chat = page.locator("#chat .reply").first
    expect(chat).to_contain_text("essential")
    assert chat.locator("li").count() > 5
    chat.locator("details.preview summary").click()
    expect(chat.locator("pre.slack-json")).to_contain_text('"blocks"')
    expect(chat.locator("pre.feishu-json")).to_contain_text('"schema": "2.0"')

    # A week later the next paper arrives as a DM with buttons.
    page.click("#advance")
    expect(page.locator("#notice")).to_contain_text("1 weekly paper(s) went out")
    expect(page.locator("#dms .reply")).to_have_count(2)
    newest = page.locator("#dms .reply").first
    expect(newest).to_contain_text("Your paper for")
    title = newest.locator("li a").first.inner_text()

    # Done: progress changes and the message shows the choice instead of buttons.
    expect(page.locator("#home")).to_contain_text("0 of")
    newest.locator("button[data-action=done]").click()
    expect(page.locator("#home")).to_contain_text("1 of")
    expect(page.locator("#dms .reply").first.locator("button[data-action]")).to_have_count(0)

    # Restart the server: everything is still there.
    server.stop()
    server.start()
    page.goto(server.base + "/?as=alice-liu")
    expect(page.locator("#members")).to_contain_text("Alice Liu")
    expect(page.locator("#dms .reply")).to_have_count(2)
    expect(page.locator("#dms")).to_contain_text(title)
    expect(page.locator("#home")).to_contain_text("1 of")
    expect(page.locator("#chat")).to_contain_text("/dcml essential")


def test_switching_members_and_bad_input_in_the_browser(server: Server, page: Page) -> None:
    page.goto(server.base + "/")
    for name in ("Bob", "Carol"):
        page.fill("#add-member input[name=name]", name)
        page.click("#add-member button")
        expect(page.locator("#whoami")).to_have_text(name)
    page.click("#members a[data-member=bob]")
    expect(page.locator("#whoami")).to_have_text("Bob")
    expect(page.locator("#dms .reply")).to_have_count(1)

    page.fill("#command input[name=text]", "   ")
    page.click("#command button")
    expect(page.locator("#error")).to_contain_text("Type a command")

    page.goto(server.base + "/?as=nobody")
    expect(page.locator("#error")).to_contain_text("no member")


def _starter_copy(tmp: Path) -> tuple[Path, str, str]:
    """The starter guide with one dcml paper listed in systems too: (index, its id, its title)."""
    import shutil

    from dcml_bot.catalog.guides import Guides

    source = Path(__file__).resolve().parent / "data" / "starter-guide"
    shutil.copytree(source, tmp / "guide")
    index = tmp / "guide" / "Readme.md"
    catalog = Guides(str(index)).load().catalog
    assert catalog is not None
    shared = next(e for e in catalog.entries if e.tracks == ("dcml",) and e.url)
    systems = tmp / "guide" / "docs" / "systems" / "Readme.md"
    with systems.open("a", encoding="utf-8") as guide:
        guide.write(f"\n### Shared\n\n- `💡` 📄 [{shared.title}]({shared.url})\n")
    return index, shared.id, shared.title


def test_a_newcomer_picks_a_direction_in_the_browser(tmp_path: Path, page: Page) -> None:
    from dcml_bot.catalog.guides import Guides

    index, shared_id, shared_title = _starter_copy(tmp_path)
    catalog = Guides(str(index)).load().catalog
    assert catalog is not None
    allowed = {e.id for e in catalog.entries if {"common", "systems"} & set(e.tracks)}
    server = Server(tmp_path)
    server.env["DCML_BOT_CATALOG"] = str(index)
    server.start()
    try:
        page.goto(server.base + "/")
        page.fill("#add-member input[name=name]", "Ada")
        page.click("#add-member button")
        welcome = page.locator("#dms .reply").first
        expect(welcome).to_contain_text("Which direction are you in?")
        expect(welcome.locator("button[data-action=track]")).to_have_count(4)

        welcome.locator("button[data-action=track]", has_text="AI系统方向").click()
        expect(page.locator("#chat .reply").first).to_contain_text(
            "You now read systems and the common list"
        )
        # The welcome stays as it was: its first paper keeps its buttons.
        expect(page.locator("#dms .reply").first.locator("button[data-action=done]")).to_have_count(
            1
        )
        expect(page.locator("#members a[data-member=ada]")).to_contain_text("systems")

        page.fill("#command input[name=text]", "/dcml essential")
        page.click("#command button")
        answer = page.locator("#chat .reply").first
        expect(answer).to_contain_text("CMU DL Systems课程")  # a systems essential
        expect(answer).to_contain_text("Crafting Your Research Future")  # a common one
        expect(answer).not_to_contain_text("MIT DCAI 2024")  # dcml's first essential
        for item in answer.locator("li[data-item]").all():
            assert item.get_attribute("data-item") in allowed

        # A week later the paper comes from common or systems.
        page.click("#advance")
        expect(page.locator("#notice")).to_contain_text("1 weekly paper(s) went out")
        weekly = page.locator("#dms .reply").first
        expect(weekly).to_contain_text("Your paper for")
        assert weekly.locator("li[data-item]").first.get_attribute("data-item") in allowed

        # The shared paper, marked done while reading systems, is done in dcml too.
        page.fill("#command input[name=text]", f"/dcml done {shared_id}")
        page.click("#command button")
        expect(page.locator("#chat .reply").first).to_contain_text(shared_title)
        page.fill("#command input[name=text]", "/dcml track dcml")
        page.click("#command button")
        expect(page.locator("#chat .reply").first).to_contain_text("You now read dcml")
        expect(page.locator("#home")).to_contain_text("▸ Data-Centric ML方向: 1 of 43 read")
    finally:
        server.stop()


def test_the_lab_with_a_token_asks_for_it_once(tmp_path: Path, browser: Browser) -> None:
    server = Server(tmp_path)
    server.env["DCML_BOT_LOCAL__TOKEN"] = LAB_TOKEN
    server.start()
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(server.base + "/")
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#add-member")).to_have_count(0)
        page.fill("#login input[name=token]", "not-it")
        page.click("#login button")
        expect(page.locator("#error")).to_contain_text("not the lab")
        page.fill("#login input[name=token]", LAB_TOKEN)
        page.click("#login button")

        # Logged in: the lab works as without a token.
        page.fill("#add-member input[name=name]", "Alice Liu")
        page.click("#add-member button")
        expect(page.locator("#notice")).to_contain_text("welcome DM")
        page.fill("#command input[name=text]", "/dcml essential")
        page.click("#command button")
        expect(page.locator("#chat .reply").first).to_contain_text("essential")
        page.click("#advance")
        expect(page.locator("#notice")).to_contain_text("1 weekly paper(s) went out")
        expect(page.locator("#home")).to_contain_text("0 of")
        page.locator("#dms .reply").first.locator("button[data-action=done]").click()
        expect(page.locator("#home")).to_contain_text("1 of")
        page.goto(server.base + "/?as=alice-liu")  # the cookie is remembered
        expect(page.locator("#whoami")).to_have_text("Alice Liu")

        # Another browser: ?token= logs it in once and leaves the address bar.
        other = browser.new_context()
        try:
            visitor = other.new_page()
            visitor.goto(f"{server.base}/?token={LAB_TOKEN}&as=alice-liu")
            expect(visitor).to_have_url(server.base + "/?as=alice-liu")
            expect(visitor.locator("#whoami")).to_have_text("Alice Liu")
        finally:
            other.close()
    finally:
        context.close()
        server.stop()
    assert LAB_TOKEN not in server.log.read_text()


class EvilSite:
    """Another site's page that posts to the lab as soon as it opens (a form and a fetch)."""

    def __init__(self, lab: str) -> None:
        page = f"""<!doctype html><title>cats</title>
<form id="f" method="post" action="{lab}/local/members"><input name="name" value="Mallory"></form>
<script>
fetch("{lab}/local/admin/advance", {{method: "POST", mode: "no-cors", body: "as=x",
  headers: {{"Content-Type": "application/x-www-form-urlencoded"}}}})
  .finally(() => document.getElementById("f").submit());
</script>""".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://evil.example:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_another_site_cannot_use_the_lab(server: Server, page: Page) -> None:
    evil = EvilSite(server.base)
    try:
        page.goto(evil.url)
        expect(page.locator("body")).to_contain_text("Open the lab")  # the lab's 403
        # DNS rebinding: evil.example now points at the lab; the lab refuses the name.
        port = server.base.rsplit(":", 1)[1]
        rebound = page.goto(f"http://evil.example:{port}/")
        assert rebound is not None and rebound.status == 400
    finally:
        evil.close()
    page.goto(server.base + "/")
    expect(page.locator("#members")).to_contain_text("Nobody yet")
    from dcml_bot.platforms.local.messenger import CLOCK_OFFSET
    from dcml_bot.store import open_store

    store = open_store(server.env["DCML_BOT_DATABASE_URL"])
    try:
        assert store.list_members() == [] and store.local_get(CLOCK_OFFSET) is None
    finally:
        store.dispose()
    log = server.log.read_text()
    assert "refused POST /local/members" in log and "refused POST /local/admin/advance" in log
