"""Notes and sharing through Slack's endpoint: signed commands, the note button's views.open
(a strict fake: trigger_id once, within 3 s, a valid modal), the modal's view_submission."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from dcml_bot.app import build_service
from dcml_bot.platforms.slack.blocks import check_message, check_view
from dcml_bot.server import build_http_app
from fakes.api import running
from fakes.slack import DELIVERY_TIME, PAYLOADS, FakeSlack, Slack, SlackViews, slack_settings
from support import Clock

FORM = "application/x-www-form-urlencoded"
HOSTILE = "<!channel> & <@U0ADMIN|boss> <script>alert(1)</script> *bold* @here #general"


class Notes(Slack):
    """A running bot with Slack, whose fake Web API also opens modals."""

    views: SlackViews
    last_submission: str = ""

    def press_input(self, user: str, value: str, trigger: str) -> httpx.Response:
        payload = json.loads((PAYLOADS / "slack_block_actions.json").read_text())
        payload["user"]["id"] = user
        payload["channel"]["id"] = payload["container"]["channel_id"] = "D" + user
        payload["trigger_id"] = trigger
        payload["response_url"] = f"{self.fake.base}/respond/input-{user}"
        payload["actions"][0].update(action_id="dcml-input:note", value=value)
        return self.post(
            urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        )

    def submit(
        self, user: str, view: dict[str, Any], typed: str, *, timestamp: int | None = None
    ) -> httpx.Response:
        payload = json.loads((PAYLOADS / "slack_view_submission.json").read_text())
        payload["user"]["id"] = user
        payload["trigger_id"] = self.views.issue()
        payload["view"].update(
            id=view.get("id", "V0"),
            blocks=view["blocks"],
            private_metadata=view["private_metadata"],
            state={"values": {"text": {"text": {"type": "plain_text_input", "value": typed}}}},
        )
        self.last_submission = urlencode({"payload": json.dumps(payload)})
        return self.post(self.last_submission, FORM, timestamp=timestamp)

    def open_box(self, user: str, value: str) -> dict[str, Any]:
        """Press the note button; the modal Slack was asked to open."""
        before = len(self.views.opened)
        assert self.press_input(user, value, self.views.issue()).status_code == 200
        self.platform.drain()
        assert len(self.views.opened) == before + 1
        return self.views.opened[-1]


@pytest.fixture
def slack(db_url: str) -> Iterator[Notes]:
    fake = FakeSlack()
    views = SlackViews(check_view)
    fake.routes["/api/views.open"] = views
    fake.start()
    for user, name in (("U0ANN", "Ann <b>Lee</b>"), ("U0SHY", "Shy Sam"), ("U0NEW", "Newbie")):
        fake.users[user] = {"id": user, "name": user.lower(), "profile": {"display_name": name}}
    clock = Clock(DELIVERY_TIME)
    service = build_service(slack_settings(db_url, fake), clock=clock, schedule=False)
    try:
        with running(build_http_app(service)) as base:
            running_bot = Notes(service, base, fake, clock)
            running_bot.views = views
            yield running_bot
    finally:
        fake.stop()


def note_button(reply: dict[str, Any]) -> dict[str, Any]:
    [button] = [
        e
        for b in reply["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"].startswith("dcml-input:")
    ]
    return button


def test_a_note_after_done_goes_through_the_modal_and_shows_escaped_in_notes(
    slack: Notes,
) -> None:
    heard: list[int] = []
    slack.service.bot.notes.on_added = lambda note, author: heard.append(note.id)
    done = slack.command("done", user="U0ANN").json()
    assert check_message(done) == []
    button = note_button(done)
    ref = button["value"]
    view = slack.open_box("U0ANN", ref)
    assert check_view(view) == [] and view["callback_id"] == "dcml_input"
    assert json.loads(view["private_metadata"]) == {"action": "note", "value": ref}
    [box] = [b for b in view["blocks"] if b["type"] == "input"]
    assert box["element"]["multiline"] is True and box["element"]["max_length"] == 2000

    answer = slack.submit("U0ANN", view, HOSTILE)
    assert answer.status_code == 200 and answer.text == ""  # no response_action: it closes
    assert len(heard) == 1
    item = slack.service.bot.library.catalog.get(ref)
    assert item is not None and slack.service.bot.store.count_notes(item.id) == 1

    shown = slack.command(f"notes {ref}", user="U0NEW").json()
    assert check_message(shown) == []
    raw = json.dumps(shown, ensure_ascii=False)
    assert "<!channel>" not in raw and "<@U0ADMIN" not in raw and "<script>" not in raw
    assert "&lt;!channel&gt; &amp; &lt;@U0ADMIN|boss&gt; &lt;script&gt;" in raw
    texts = [b["text"] for b in shown["blocks"] if b["type"] == "section"]
    texts += [e for b in shown["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert texts and all(t["verbatim"] is True for t in texts)  # no @here, no #channel links
    assert "Ann &lt;b&gt;Lee&lt;/b&gt;" in raw  # the author, by display name, escaped


def test_refused_notes_are_answered_inline_and_nothing_is_saved(slack: Notes) -> None:
    heard: list[int] = []
    slack.service.bot.notes.on_added = lambda note, author: heard.append(note.id)
    ref = note_button(slack.command("done", user="U0ANN").json())["value"]
    view = slack.open_box("U0ANN", ref)
    gone = {**view, "private_metadata": json.dumps({"action": "note", "value": "arxiv:0000.0"})}
    cases = [
        ("U0ANN", view, "x" * 2001, "has 2001 characters; notes are at most 2000"),
        ("U0ANN", view, "   \n ", "cannot be empty"),
        ("U0ANN", gone, "Fine.", "no longer in the guide"),
        ("U0NEW", view, "Fine.", "done first"),  # a member who has not read it
    ]
    for user, shown, typed, expected in cases:
        answer = slack.submit(user, shown, typed)
        assert answer.status_code == 200
        body = answer.json()
        assert body["response_action"] == "errors" and list(body["errors"]) == ["text"]
        assert expected in body["errors"]["text"]
    item = slack.service.bot.library.catalog.get(ref)
    assert item is not None and slack.service.bot.store.count_notes(item.id) == 0
    assert heard == []
    # A malformed submission is acknowledged and counted, never a 500.
    broken = {**view, "private_metadata": "not json"}
    assert slack.submit("U0ANN", broken, "Fine.").status_code == 200
    metrics = httpx.get(slack.base + "/metrics").text
    assert 'outcome="malformed",platform="slack",type="view_submission"} 1.0' in metrics
    assert 'outcome="note-refused",platform="slack",type="view_submission"} 4.0' in metrics


def test_an_expired_trigger_says_how_to_type_the_note_instead(slack: Notes) -> None:
    ref = note_button(slack.command("done", user="U0ANN").json())["value"]
    assert slack.press_input("U0ANN", ref, slack.views.issue(age=5)).status_code == 200
    assert slack.press_input("U0ANN", ref, "999.888.never-issued").status_code == 200
    slack.platform.drain()
    assert slack.views.opened == []
    assert slack.views.refused == ["expired_trigger_id", "invalid_trigger_id"]
    said = [c["body"] for c in slack.fake.calls if c["path"] == "/respond/input-U0ANN"]
    assert len(said) == 2
    for body in said:
        assert body["replace_original"] is False  # the paper message keeps its button
        assert f"/dcml note {ref}" in json.dumps(body) and "did not open in time" in body["text"]
    # A member who has not read the paper gets the reason instead of a modal.
    assert slack.press_input("U0NEW", ref, slack.views.issue()).status_code == 200
    slack.platform.drain()
    assert slack.views.opened == []
    [refusal] = [c["body"] for c in slack.fake.calls if c["path"] == "/respond/input-U0NEW"]
    assert "done first" in refusal["text"]


def test_share_off_hides_a_member_from_who_the_weekly_dm_and_notes(slack: Notes) -> None:
    for user in ("U0ANN", "U0SHY"):
        ref = note_button(slack.command("done", user=user).json())["value"]
        slack.platform.drain()  # their names, from users.info
        view = slack.open_box(user, ref)
        assert slack.submit(user, view, f"A note by {user}.").text == ""
    assert "no longer shown" in json.dumps(slack.command("share off", user="U0SHY").json())
    who = json.dumps(slack.command(f"who {ref}", user="U0NEW").json(), ensure_ascii=False)
    assert "Ann &lt;b&gt;Lee&lt;/b&gt;" in who and "Shy Sam" not in who
    notes = json.dumps(slack.command(f"notes {ref}", user="U0NEW").json(), ensure_ascii=False)
    assert "A note by U0SHY." in notes and "Shy Sam" not in notes and "a lab member" in notes
    nxt = json.dumps(slack.command("next", user="U0NEW").json(), ensure_ascii=False)
    assert "Read it already: Ann &lt;b&gt;Lee&lt;/b&gt; — ask them." in nxt
    store = slack.service.bot.store
    newbie = store.get_member("slack", "U0NEW")
    assert newbie is not None
    store.set_enrolled(newbie.id, True, slack.clock())
    report = slack.service.jobs.deliver()
    assert report is not None and report.count("sent") >= 1
    [weekly] = slack.fake.dms("U0NEW")
    shown = json.dumps(weekly["blocks"], ensure_ascii=False)
    assert "Ann &lt;b&gt;Lee&lt;/b&gt; — ask them" in shown and "Shy Sam" not in shown
    assert "<@" not in shown  # names, never mentions


def test_a_replayed_submission_saves_no_second_note(slack: Notes) -> None:
    heard: list[int] = []
    slack.service.bot.notes.on_added = lambda note, author: heard.append(note.id)
    ref = note_button(slack.command("done", user="U0ANN").json())["value"]
    view = slack.open_box("U0ANN", ref)
    signed_at = int(time.time())
    assert slack.submit("U0ANN", view, "Read the appendix.", timestamp=signed_at).text == ""
    # The captured request, sent again inside Slack's 5-minute window: same body, same signature.
    again = slack.post(slack.last_submission, FORM, timestamp=signed_at)
    assert again.status_code == 200 and again.text == ""
    item = slack.service.bot.library.catalog.get(ref)
    assert item is not None and slack.service.bot.store.count_notes(item.id) == 1
    assert len(heard) == 1
    metrics = httpx.get(slack.base + "/metrics").text
    assert 'outcome="replayed",platform="slack",type="view_submission"} 1.0' in metrics
