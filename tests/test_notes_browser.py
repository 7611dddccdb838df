"""Notes and sharing in the local lab, in Chromium against `serve` (tests/fakes/browser.py's setup):
the text box under a paper marked done, /dcml notes, escaping, and the share switch."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from fakes.browser import Server, browser, page, server

__all__ = ["browser", "page", "server"]  # fixtures (tests/fakes/browser.py)

HOSTILE = "<script>window.pwned=1</script> <b>bold</b> & <img src=x onerror=window.pwned=2>"


def say(page: Page, line: str) -> None:
    page.fill("#command input[name=text]", line)
    page.click("#command button")


def add(page: Page, name: str) -> None:
    page.fill("#add-member input[name=name]", name)
    page.click("#add-member button")
    expect(page.locator("#whoami")).to_have_text(name)


def test_a_note_after_done_shows_in_notes_and_share_off_hides_its_author(
    server: Server, page: Page
) -> None:
    page.goto(server.base + "/")
    add(page, "Alice Liu")
    page.locator("#dms .reply").first.locator("button[data-action=done]").click()
    box = page.locator("#dms .reply").first.locator("form.input-box")
    expect(box).to_have_count(1)
    ref = box.locator("input[name=value]").get_attribute("value")
    assert ref
    box.locator("textarea").fill(HOSTILE)
    box.locator("button").click()
    expect(page.locator("#dms .reply").first).to_contain_text("Note saved")
    expect(page.locator("#dms .reply").first.locator("form.input-box")).to_have_count(0)

    # Bob, new, is offered the same paper: he is told whom to ask, and reads the note.
    add(page, "Bob")
    say(page, "/dcml next")
    expect(page.locator("#chat .reply").first).to_contain_text("Read it already: Alice Liu")
    say(page, f"/dcml notes {ref}")
    notes = page.locator("#chat .reply").first
    expect(notes).to_contain_text(HOSTILE)  # shown as the text it is
    expect(notes).to_contain_text("Alice Liu")
    assert notes.locator(".text b, .text img, .text script").count() == 0
    assert page.evaluate("window.pwned") is None

    # A note over 2,000 characters (past the box's maxlength): refused, nothing saved.
    page.locator("#dms .reply").first.locator("button[data-action=done]").click()
    bobs = page.locator("#dms .reply").first.locator("form.input-box")
    bobs.locator("textarea").evaluate("(box) => { box.value = 'y'.repeat(2001); }")
    bobs.locator("button").click()
    expect(page.locator("#error")).to_contain_text("2001 characters; notes are at most 2000")

    # Alice turns sharing off: her name leaves every list, her note stays, unsigned.
    page.goto(server.base + "/?as=alice-liu")
    say(page, "/dcml share off")
    expect(page.locator("#chat .reply").first).to_contain_text("no longer shown")
    page.goto(server.base + "/?as=bob")
    say(page, f"/dcml notes {ref}")
    latest = page.locator("#chat .reply").first
    expect(latest).to_contain_text("a lab member")
    expect(latest).to_contain_text(HOSTILE)
    expect(latest).not_to_contain_text("Alice Liu")
    say(page, f"/dcml who {ref}")
    expect(page.locator("#chat .reply").first).to_contain_text("Bob")
    expect(page.locator("#chat .reply").first).not_to_contain_text("Alice Liu")


def test_a_week_read_together_in_the_lab_channel_digest_thread_and_note(
    server: Server, page: Page
) -> None:
    server.stop()
    server.env["DCML_BOT_DIGEST__CHANNEL"] = "lab"
    server.env["DCML_BOT_ADMINS"] = '["local:alice"]'
    server.start()
    page.goto(server.base + "/")
    refs = []
    for name in ("Alice", "Bob", "Carol"):
        add(page, name)
        page.locator("#dms .reply").first.locator("button[data-action=done]").click()
        box = page.locator("#dms .reply").first.locator("form.input-box")
        expect(box).to_have_count(1)
        refs.append(box.locator("input[name=value]").get_attribute("value"))
    assert refs[0] and len(set(refs)) == 1  # all three read the same first paper

    page.goto(server.base + "/?as=alice")
    say(page, f"/dcml digest pick {refs[0]}")
    expect(page.locator("#chat .reply").first).to_contain_text("Paper of the week for")
    page.click("#post-digest")
    channel = page.locator("#lab-channel")
    expect(channel).to_contain_text("3 paper(s) marked done this week")
    expect(channel).to_contain_text("New in the lab this week: Alice, Bob, Carol")
    expect(channel).to_contain_text("Picked by an admin")
    expect(channel.locator('[data-kind="thread"]')).to_have_count(1)
    page.click("#post-digest")  # twice in one week: still one post
    expect(page.locator("#notice")).to_contain_text("already")

    # Carol's note on that paper joins the thread under the digest (posted off her request).
    page.goto(server.base + "/?as=carol")
    page.locator("#dms .reply").first.locator("form.input-box textarea").fill(HOSTILE)
    page.locator("#dms .reply").first.locator("form.input-box button").click()
    expect(page.locator("#dms .reply").first).to_contain_text("Note saved")
    thread = page.locator('#lab-channel [data-kind="thread"]')
    for _ in range(50):
        page.reload()
        if thread.count() == 2:
            break
        page.wait_for_timeout(200)
    expect(thread).to_have_count(2)
    expect(thread.last).to_contain_text("Carol shared a note on")
    expect(thread.last).to_contain_text(HOSTILE)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#lab-channel .text script, #lab-channel .text img").count() == 0
