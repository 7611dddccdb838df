"""The weekly digest through Slack's Web API: signed slash commands in, a fake Slack recording the
channel post, its thread and the admins' DMs (as strict as the docs: not_in_channel, limits)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dcml_bot.app import build_service
from dcml_bot.core.digest import ALREADY, FAILED, POSTED, digest_key
from dcml_bot.platforms.slack.blocks import (
    MAX_MESSAGE_BLOCKS,
    MAX_MESSAGE_TEXT,
    check_message,
    check_view,
)
from dcml_bot.platforms.slack.messenger import SlackMessenger
from dcml_bot.platforms.slack.platform import BOT_SCOPES
from dcml_bot.server import build_http_app
from dcml_bot.settings import DigestSettings
from fakes.api import running
from fakes.slack import FakeSlack, Slack, slack_settings
from support import BETA as BETA_ID
from support import FRIDAY, GUIDE, Clock, write_catalog

Answer = tuple[int, Any, dict[str, str]]
READERS = {"U0ALICE": "Alice", "U0BOB": "Bob", "U0CAROL": "Carol"}


class LabSlack(FakeSlack):
    """FakeSlack plus channels the bot is in, threads (``conversations.replies``) and
    chat.postMessage's documented refusals: ``not_in_channel`` for a channel the bot was not
    invited to, ``msg_too_long`` and ``invalid_blocks`` past Slack's limits."""

    def __init__(self, joined: tuple[str, ...] = ("C0LAB",)) -> None:
        super().__init__()
        self.joined = set(joined)
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.routes["/api/chat.postMessage"] = self._post_checked
        self.routes["/api/conversations.replies"] = self._replies
        for user, name in READERS.items():
            self.users[user] = {"id": user, "name": name.lower(), "profile": {"display_name": name}}

    def _post_checked(self, request: dict[str, Any]) -> Answer:
        args = self.args(request)
        channel = str(args["channel"])
        if channel[:1] in {"C", "G"} and channel not in self.joined:
            return 200, {"ok": False, "error": "not_in_channel"}, {}
        if len(str(args.get("text") or "")) > MAX_MESSAGE_TEXT:
            return 200, {"ok": False, "error": "msg_too_long"}, {}
        if len(args.get("blocks") or []) > MAX_MESSAGE_BLOCKS:
            return 200, {"ok": False, "error": "invalid_blocks"}, {}
        thread = args.get("thread_ts")
        if thread is None:
            return self._post(request)
        with self.lock:  # a reply lives in its thread, not in the channel's history
            self._ts += 1
            message = {
                "ts": f"{self._ts}.000100",
                "thread_ts": thread,
                "text": args.get("text"),
                "blocks": args.get("blocks"),
                "metadata": args.get("metadata"),
            }
            self.threads.setdefault((channel, str(thread)), []).append(message)
        return 200, {"ok": True, "channel": channel, "ts": message["ts"]}, {}

    def _replies(self, request: dict[str, Any]) -> Answer:
        args = self.args(request)
        channel, ts = str(args["channel"]), str(args["ts"])
        with self.lock:
            parent = [m for m in self.history.get(channel, []) if m["ts"] == ts]
            messages = parent + list(self.threads.get((channel, ts), []))
        if not parent:
            return 200, {"ok": False, "error": "thread_not_found"}, {}
        if str(args.get("include_all_metadata")).lower() not in {"1", "true"}:
            messages = [{k: v for k, v in m.items() if k != "metadata"} for m in messages]
        return 200, {"ok": True, "messages": messages}, {}

    def posts(self, channel: str = "C0LAB") -> list[dict[str, Any]]:
        with self.lock:
            return list(self.history.get(channel, []))

    def replies(self, channel: str, ts: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.threads.get((channel, ts), []))


@contextmanager
def lab_slack(
    db_url: str, tmp_path: Path, *, fake: LabSlack | None = None, **digest: Any
) -> Iterator[Slack]:
    fake = (fake or LabSlack()).start()
    guide = write_catalog(tmp_path / "guide.md", GUIDE)
    settings = slack_settings(
        db_url,
        fake,
        catalog=str(guide),
        digest=DigestSettings(**{"channel": "C0LAB", **digest}),
    )
    clock = Clock(FRIDAY)
    service = build_service(settings, clock=clock, schedule=False)
    try:
        with running(build_http_app(service)) as base:
            yield Slack(service, base, fake, clock)
    finally:
        fake.stop()


@pytest.fixture
def slack(db_url: str, tmp_path: Path) -> Iterator[Slack]:
    with lab_slack(db_url, tmp_path) as running_bot:
        yield running_bot


def readers(slack: Slack) -> None:
    """Alice, Bob and Carol join (welcome DM with Alpha); each marks it done with /dcml done, and
    Alice marks the next one (Beta) too: she finished the essentials."""
    bot = slack.service.bot
    for user, name in READERS.items():
        bot.onboarding.joined("slack", user, slack.clock(), display_name=name)
        assert slack.command("done", user=user).status_code == 200
    assert "Marked as read: Beta Paper" in json.dumps(slack.command("done", user="U0ALICE").json())
    slack.platform.drain()


def rendered(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def test_three_readers_make_one_channel_post_with_counts_and_a_thread(slack: Slack) -> None:
    readers(slack)
    run = slack.service.jobs.review()
    assert run is not None and (run.outcome, run.thread) == (POSTED, POSTED)
    [post] = slack.fake.posts()
    assert check_message(post) == []
    text = rendered(post)
    assert "The lab this week · 2026-W49" in post["text"]
    assert "New in the lab this week: Alice, Bob, Carol" in text
    assert "4 paper(s) marked done this week" in text
    assert "read by 3" in text and "Alice finished the essential papers" in text
    assert "<@" not in text  # names, not pings, unless the lab asks for mentions
    key = digest_key("slack", "C0LAB", "2026-W49")
    assert post["metadata"]["event_payload"] == {"key": key}
    [reply] = slack.fake.replies("C0LAB", post["ts"])
    assert check_message(reply) == []
    assert "Discussion of the paper of the week, Beta Paper" in rendered(reply)
    assert reply["metadata"]["event_payload"] == {"key": key + ":thread"}
    posted = slack.service.bot.store.get_digest("slack", "C0LAB", "2026-W49")
    assert posted is not None and posted.message_id == f"C0LAB/{post['ts']}"


def test_rerunning_in_the_same_week_posts_nothing_more(slack: Slack) -> None:
    readers(slack)
    assert slack.service.jobs.review() is not None
    calls = len(slack.fake.requests("/api/chat.postMessage"))
    slack.clock.advance(hours=2)
    for run in (slack.service.jobs.review(), slack.service.jobs.digest()):
        assert run is not None and (run.outcome, run.thread) == (ALREADY, ALREADY)
    assert len(slack.fake.requests("/api/chat.postMessage")) == calls
    assert len(slack.fake.posts()) == 1
    assert len(slack.fake.replies("C0LAB", slack.fake.posts()[0]["ts"])) == 1


def test_a_member_with_share_off_is_not_named(slack: Slack) -> None:
    readers(slack)
    bob = slack.service.bot.store.get_member("slack", "U0BOB")
    assert bob is not None
    slack.service.bot.store.set_share_progress(bob.id, False)
    slack.service.jobs.review()
    text = rendered(slack.fake.posts()[0])
    assert "Bob" not in text and "Alice, Carol and 1 more" in text
    assert "4 paper(s) marked done" in text


def test_mentions_ping_only_when_the_lab_sets_mention(db_url: str, tmp_path: Path) -> None:
    with lab_slack(db_url, tmp_path, mention=True) as slack:
        readers(slack)
        slack.service.jobs.review()
        [post] = slack.fake.posts()
        assert check_message(post) == []
        assert "<@U0ALICE> finished the essential papers" in rendered(post)


def test_a_recovered_claim_finds_the_post_instead_of_posting_twice(slack: Slack) -> None:
    readers(slack)
    bot = slack.service.bot
    week = bot.digest.compose("2026-W49")
    key = digest_key("slack", "C0LAB", "2026-W49")
    messenger = bot.messengers["slack"]
    assert isinstance(messenger, SlackMessenger)
    # A process posted the digest, then died before recording it: its claim's lease ran out.
    early = slack.clock() - dt.timedelta(minutes=10)
    assert bot.store.claim(
        key, member_id=None, channel="C0LAB", kind="digest", worker="gone:1", now=early
    )
    sent = messenger.post("C0LAB", bot.digest.reply(week), key=key)
    assert messenger.find_posted("C0LAB", key) == sent
    assert messenger.find_posted("C0LAB", "digest:slack:C0LAB:2026-W01") is None
    run = slack.service.jobs.digest()
    assert (run.outcome, run.thread) == (POSTED, POSTED)
    assert len(slack.fake.posts()) == 1  # found by its metadata, not posted again
    assert bot.store.get_outbox(key).platform_message_id == sent  # type: ignore[union-attr]
    root = sent.partition("/")[2]
    assert messenger.find_posted("C0LAB", key + ":thread", thread=sent) is not None
    assert len(slack.fake.replies("C0LAB", root)) == 1


def test_a_channel_the_bot_is_not_in_tells_the_admins_once_how_to_invite_it(
    db_url: str, tmp_path: Path
) -> None:
    with lab_slack(db_url, tmp_path, fake=LabSlack(joined=())) as slack:
        readers(slack)
        run = slack.service.jobs.review()
        assert run is not None and run.outcome == FAILED
        row = slack.service.bot.store.get_outbox(digest_key("slack", "C0LAB", "2026-W49"))
        assert row is not None and (row.status, row.last_error) == ("dead", "slack: not_in_channel")
        told = [m for m in slack.fake.dms("U0ADMIN") if "/invite @dcml-bot" in rendered(m)]
        assert len(told) == 1 and "C0LAB" in rendered(told[0])
        slack.clock.advance(days=7)
        slack.command("done", user="U0BOB")
        assert slack.service.jobs.review() is not None  # next week: fails again, not told again
        told = [m for m in slack.fake.dms("U0ADMIN") if "/invite @dcml-bot" in rendered(m)]
        assert len(told) == 1
        slack.fake.joined.add("C0LAB")  # an admin typed /invite @dcml-bot
        again = slack.service.jobs.digest(reopen=True)
        assert (again.outcome, again.thread) == (POSTED, POSTED)
        assert len(slack.fake.posts()) == 1


def test_admin_pick_through_the_slash_command_and_the_home_tab_bars(slack: Slack) -> None:
    readers(slack)
    store = slack.service.bot.store
    refused = slack.command("digest pick zzz-nothing", user="U0ADMIN").json()
    assert "No item matches" in json.dumps(refused, ensure_ascii=False)
    assert store.get_digest("slack", "C0LAB", "2026-W49") is None
    assert "for lab admins" in json.dumps(slack.command("digest pick Gamma", user="U0BOB").json())
    picked = slack.command("digest pick Gamma Paper", user="U0ADMIN").json()
    assert "Paper of the week for 2026-W49: Gamma Paper" in json.dumps(picked, ensure_ascii=False)
    slack.service.jobs.review()
    assert "Picked by an admin" in rendered(slack.fake.posts()[0])
    slack.platform.publish_home("U0ADMIN")
    view = slack.fake.requests("/api/views.publish")[-1]["body"]["view"]
    if isinstance(view, str):
        view = json.loads(view)
    assert check_view(view) == []
    shown = json.dumps(view, ensure_ascii=False)
    assert "▓▓▓▓▓░░░░░ 2/4 · Alice" in shown and "Nobody needs attention" in shown


def test_the_manifest_asks_for_the_history_scopes_reconciling_reads() -> None:
    assert {"chat:write", "channels:history", "groups:history"} <= set(BOT_SCOPES)


def test_a_temporary_failure_is_posted_by_the_next_tick(slack: Slack) -> None:
    readers(slack)
    slack.fake.fail_post, slack.fake.fail_channel = "internal_error", "C0LAB"
    run = slack.service.jobs.review()
    assert run is not None and run.outcome == FAILED and slack.fake.posts() == []
    row = slack.service.bot.store.get_outbox(digest_key("slack", "C0LAB", "2026-W49"))
    assert row is not None and row.status == "failed" and row.retry_at is not None
    slack.fake.fail_post = None
    slack.service.jobs.deliver()  # the tick: not due yet (5 minutes)
    assert slack.fake.posts() == []
    slack.clock.advance(minutes=6)
    slack.service.jobs.deliver()
    [post] = slack.fake.posts()
    assert len(slack.fake.replies("C0LAB", post["ts"])) == 1
    assert not any("/invite" in rendered(m) for m in slack.fake.dms("U0ADMIN"))


def test_without_the_history_scope_a_post_cannot_be_read_back_and_says_so(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    slack.fake.routes["/api/conversations.history"] = lambda r: (
        200,
        {"ok": False, "error": "missing_scope", "needed": "channels:history"},
        {},
    )
    messenger = slack.service.bot.messengers["slack"]
    assert isinstance(messenger, SlackMessenger)
    assert messenger.find_posted("C0LAB", "digest:slack:C0LAB:2026-W49") is None
    assert "cannot read C0LAB back (add channels:history)" in caplog.text


def test_a_note_in_the_slack_thread_pings_nobody(slack: Slack) -> None:
    readers(slack)
    slack.service.jobs.review()
    store = slack.service.bot.store
    carol = store.get_member("slack", "U0CAROL")
    assert carol is not None
    typed = "<!channel> see <https://evil.example|here> & *this*"
    note = store.get_note(
        store.add_note(carol.id, BETA_ID, typed, slack.clock()), share_default=True
    )
    assert note is not None and slack.service.bot.digest.post_note(note, carol) == POSTED
    [post] = slack.fake.posts()
    _opening, shown = slack.fake.replies("C0LAB", post["ts"])
    assert check_message(shown) == []
    text = rendered(shown)
    assert "Carol shared a note on Beta Paper:" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "<https://evil" not in text


def test_a_note_typed_after_done_lands_in_the_papers_digest_thread(slack: Slack) -> None:
    readers(slack)
    slack.service.jobs.review()
    [post] = slack.fake.posts()
    answer = slack.command(f"note {BETA_ID} Read the appendix first.", user="U0ALICE")
    assert "Note saved" in json.dumps(answer.json(), ensure_ascii=False)
    deadline = time.monotonic() + 20
    while len(slack.fake.replies("C0LAB", post["ts"])) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    _opening, shown = slack.fake.replies("C0LAB", post["ts"])
    assert "Read the appendix first." in rendered(shown)
    assert "Alice shared a note on Beta Paper:" in rendered(shown)
    notes = json.dumps(slack.command(f"notes {BETA_ID}", user="U0BOB").json(), ensure_ascii=False)
    assert "Read the appendix first." in notes and "Alice" in notes
