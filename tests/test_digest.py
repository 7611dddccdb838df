"""The weekly digest on the local lab: the real LocalMessenger keeps the lab channel's posts and
their threads in the database (SQLite and PostgreSQL); the CLI runs it as a separate process."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from dcml_bot.app import Service, build_service
from dcml_bot.core.digest import ALREADY, EMPTY, NO_THREAD, OFF, POSTED, digest_key
from dcml_bot.core.home import home_reply
from dcml_bot.core.reply import Reply, render_plain
from dcml_bot.platforms.local.messenger import LocalMessenger
from dcml_bot.server import build_http_app
from dcml_bot.settings import DigestSettings
from dcml_bot.store import MemberRecord
from fakes.api import running
from support import (
    ALPHA,
    BETA,
    FRIDAY,
    GAMMA,
    GUIDE,
    Clock,
    lab_settings,
    write_catalog,
)


@dataclass
class Lab:
    """The bot on the local platform alone, its lab channel ``lab`` and a movable clock."""

    service: Service
    clock: Clock

    @property
    def messenger(self) -> LocalMessenger:
        messenger = self.service.bot.messengers["local"]
        assert isinstance(messenger, LocalMessenger)
        return messenger

    def join(self, name: str, *, share: bool | None = None) -> MemberRecord:
        """A newcomer: welcomed (with a first paper), optionally with their share choice."""
        bot = self.service.bot
        user = name.lower()
        bot.onboarding.joined("local", user, self.clock(), display_name=name)
        member = bot.store.get_member("local", user)
        assert member is not None
        if share is not None:
            member = bot.store.set_share_progress(member.id, share)
        return member

    def read(self, member: MemberRecord, *items: str) -> None:
        catalog = self.service.bot.library.catalog
        for item in items:
            entry = catalog.get(item)
            assert entry is not None
            self.service.bot.store.set_progress(
                member.id, item, "read", title=entry.title, now=self.clock()
            )

    def posts(self) -> list[tuple[str, str, list[str]]]:
        """The lab channel: each post's id, plain text and thread (plain texts)."""
        return [
            (mid, render_plain(post), [render_plain(reply) for _, reply in thread])
            for mid, post, thread in self.messenger.lab_channel("lab")
        ]

    def command(self, user: str, line: str) -> str:
        member = self.service.bot.member("local", user)
        return render_plain(self.service.bot.commands.handle(member, line))


def lab_service(db_url: str, tmp_path: Path, clock: Clock, **digest: Any) -> Service:
    catalog = write_catalog(tmp_path / "guide.md", GUIDE)
    settings = lab_settings(
        db_url,
        catalog=str(catalog),
        admins=["local:boss"],
        digest=DigestSettings(**{"channel": "lab", **digest}),
    )
    return build_service(settings, clock=clock, schedule=False)


@pytest.fixture
def lab(db_url: str, tmp_path: Path) -> Iterator[Lab]:
    clock = Clock(FRIDAY)
    service = lab_service(db_url, tmp_path, clock)
    try:
        yield Lab(service, clock)
    finally:
        service.stop()


def three_readers(lab: Lab) -> tuple[MemberRecord, MemberRecord, MemberRecord]:
    """Alice finishes the essentials (alpha, beta); Bob and Carol read alpha."""
    alice, bob, carol = lab.join("Alice"), lab.join("Bob"), lab.join("Carol")
    lab.read(alice, ALPHA, BETA)
    lab.read(bob, ALPHA)
    lab.read(carol, ALPHA)
    return alice, bob, carol


def test_a_week_of_three_readers_is_one_post_with_its_counts_and_a_thread(lab: Lab) -> None:
    three_readers(lab)
    run = lab.service.jobs.review()
    assert run is not None and (run.week, run.outcome, run.thread) == ("2026-W49", POSTED, POSTED)
    [(_, post, thread)] = lab.posts()
    assert "The lab this week · 2026-W49" in post
    assert "New in the lab this week: Alice, Bob, Carol" in post
    assert "4 paper(s) marked done this week" in post
    lines = post.splitlines()
    alpha = lines.index("  ⚡ 📄 Alpha Paper — https://arxiv.org/abs/2301.00001")
    assert lines[alpha + 1].strip() == "read by 3"
    assert "Beta Paper" in lines[alpha + 2] and lines[alpha + 3].strip() == "read by 1"
    assert "Alice finished the essential papers" in post
    assert "Bob finished" not in post and "Carol finished" not in post
    # Bob's and Carol's next paper is Beta; Alice's is Gamma.
    assert "[⭐ Paper of the week]" in post and "Next in the plans of 2 member(s)" in post
    paper = post.split("[⭐ Paper of the week]")[1]
    assert "Beta Paper" in paper and "Gamma Paper" not in paper
    assert len(thread) == 1 and "Discussion of the paper of the week, Beta Paper" in thread[0]
    store = lab.service.bot.store
    posted = store.get_digest("local", "lab", "2026-W49")
    assert posted is not None and posted.item_id == BETA and posted.message_id == lab.posts()[0][0]
    key = digest_key("local", "lab", "2026-W49")
    assert [store.get_outbox(k).status for k in (key, key + ":thread")] == ["sent", "sent"]  # type: ignore[union-attr]


def test_rerunning_the_digest_in_one_week_posts_once(lab: Lab) -> None:
    three_readers(lab)
    jobs = lab.service.jobs
    first = jobs.review()
    assert first is not None and first.outcome == POSTED
    lab.clock.advance(hours=1)
    again = [jobs.review(), jobs.review(), jobs.digest()]
    assert [(r.outcome, r.thread) for r in again if r] == [(ALREADY, ALREADY)] * 3
    assert len(lab.posts()) == 1 and len(lab.posts()[0][2]) == 1
    assert len(lab.service.bot.store.local_messages("lab", channel="lab")) == 2


def test_share_off_keeps_a_member_out_of_the_digest(db_url: str, tmp_path: Path) -> None:
    clock = Clock(FRIDAY)
    # The lab's default is off: only who said "share on" may be named.
    service = lab_service(db_url, tmp_path, clock, share_progress=False)
    lab = Lab(service, clock)
    try:
        alice = lab.join("Alice", share=True)
        bob = lab.join("Bob", share=False)
        carol = lab.join("Carol")
        lab.read(alice, ALPHA, BETA)
        lab.read(bob, ALPHA, BETA)  # Bob finishes the essentials too, and is not named
        lab.read(carol, ALPHA, BETA)
        assert service.jobs.review() is not None
        [(_, post, _)] = lab.posts()
        assert "New in the lab this week: Alice and 2 more" in post
        assert "Alice finished the essential papers" in post
        assert "Bob" not in post and "Carol" not in post
        assert "6 paper(s) marked done this week" in post  # counted, never named
    finally:
        service.stop()


def test_an_empty_week_posts_nothing_and_the_next_run_agrees(lab: Lab) -> None:
    three_readers(lab)
    lab.clock.advance(days=7)  # 2026-W50: nobody joined, read or finished anything
    run = lab.service.jobs.review()
    assert run is not None and (run.week, run.outcome, run.thread) == ("2026-W50", EMPTY, None)
    again = lab.service.jobs.review()
    assert again is not None and again.outcome == EMPTY
    assert lab.posts() == []
    row = lab.service.bot.store.get_outbox(digest_key("local", "lab", "2026-W50"))
    assert row is not None and (row.status, row.last_error) == ("dead", "dropped: an empty week")


def test_dry_run_composes_without_claiming_or_posting(lab: Lab) -> None:
    three_readers(lab)
    run = lab.service.jobs.digest(dry_run=True)
    assert run.reply is not None and "4 paper(s) marked done" in render_plain(run.reply)
    assert lab.posts() == []
    assert lab.service.bot.store.get_outbox(digest_key("local", "lab", "2026-W49")) is None


def test_an_admin_picks_the_paper_of_the_week_and_bad_picks_save_nothing(lab: Lab) -> None:
    three_readers(lab)
    lab.join("Boss")
    store = lab.service.bot.store
    assert "is for lab admins" in lab.command("alice", "digest pick Gamma Paper")
    assert "No item matches “zzz nothing”" in lab.command("boss", "/dcml digest pick zzz nothing")
    assert "matches 4 items" in lab.command("boss", "digest pick paper")
    assert "Use /dcml digest" in lab.command("boss", "digest pick")
    assert store.get_digest("local", "lab", "2026-W49") is None  # nothing half-saved
    said = lab.command("boss", "周报 pick Gamma Paper")
    assert "Paper of the week for 2026-W49: Gamma Paper." in said
    preview = lab.command("boss", "digest")
    assert (
        "Digest preview · 2026-W49 (not posted yet" in preview and "Picked by an admin" in preview
    )
    assert lab.service.jobs.review() is not None
    paper = lab.posts()[0][1].split("[⭐ Paper of the week]")[1]
    assert "Gamma Paper" in paper and "Picked by an admin." in paper
    assert "Discussion of the paper of the week, Gamma Paper" in lab.posts()[0][2][0]
    # This week's is posted: a pick now is for next week.
    assert "for 2026-W50: Alpha Paper" in lab.command("boss", f"digest pick {ALPHA}")
    assert "(posted)" in lab.command("boss", "digest")


def test_a_note_goes_to_its_papers_thread_once_escaped_and_named_per_share(lab: Lab) -> None:
    alice, bob, carol = three_readers(lab)
    store = lab.service.bot.store
    digest = lab.service.bot.digest
    early = store.add_note(carol.id, BETA, "Before any digest", lab.clock())
    note = store.get_note(early, share_default=True)
    assert note is not None and digest.post_note(note, carol) == NO_THREAD
    assert lab.service.jobs.review() is not None  # Beta is the paper of the week
    typed = "<b>read §3</b> first @channel <!here>"
    note_id = store.add_note(carol.id, BETA, typed, lab.clock())
    note = store.get_note(note_id, share_default=True)
    assert note is not None
    assert digest.post_note(note, carol) == POSTED
    assert digest.post_note(note, carol) == ALREADY
    quiet = lab.service.bot.store.set_share_progress(bob.id, False)
    other = store.get_note(
        store.add_note(bob.id, BETA, "Figure 2!", lab.clock()), share_default=True
    )
    assert other is not None and digest.post_note(other, quiet) == POSTED
    elsewhere = store.get_note(
        store.add_note(alice.id, GAMMA, "no thread", lab.clock()), share_default=True
    )
    assert elsewhere is not None and digest.post_note(elsewhere, alice) == NO_THREAD
    thread = lab.posts()[0][2]
    assert len(thread) == 3
    assert "Carol shared a note on Beta Paper:" in thread[1] and typed in thread[1]
    assert "A member shared a note on Beta Paper:" in thread[2] and "Bob" not in thread[2]
    assert store.get_outbox(f"note:{note_id}").status == "sent"  # type: ignore[union-attr]


def test_mentions_only_when_the_lab_asks(db_url: str, tmp_path: Path) -> None:
    clock = Clock(FRIDAY)
    service = lab_service(db_url, tmp_path, clock, mention=True)
    lab = Lab(service, clock)
    try:
        three_readers(lab)
        service.jobs.review()
        [(_, post, _)] = lab.posts()
        assert "@Alice finished the essential papers" in post
        [(_, reply, _)] = lab.messenger.lab_channel("lab")
        finish = [b for b in reply.blocks if b.type == "text" and b.mention is not None]
        assert [(b.mention.user_id, b.text) for b in finish] == [  # type: ignore[union-attr]
            ("alice", "finished the essential papers")
        ]
    finally:
        service.stop()


def test_the_digest_is_off_without_a_channel(db_url: str, tmp_path: Path) -> None:
    clock = Clock(FRIDAY)
    catalog = write_catalog(tmp_path / "guide.md", GUIDE)
    settings = lab_settings(db_url, catalog=str(catalog), admins=["local:boss"])
    service = build_service(settings, clock=clock, schedule=False)
    try:
        lab = Lab(service, clock)
        three_readers(lab)
        assert service.jobs.review() is None
        assert service.jobs.digest().outcome == OFF
        assert "The weekly digest is off" in lab.command("boss", "digest")
        assert service.bot.store.local_messages("lab", channel="lab") == []
    finally:
        service.stop()


# --- needs attention and progress bars ----------------------------------------------------------


def test_needs_attention_lists_quiet_and_unreachable_members_and_dms_admins_weekly(
    lab: Lab,
) -> None:
    store = lab.service.bot.store
    boss = lab.join("Boss")
    lab.clock.advance(days=-28)
    quiet = lab.join("Quinn")  # enrolled four weeks ago, never answered
    gone = lab.join("Gina")
    lab.clock.advance(days=28)
    lab.read(lab.join("Ada"), ALPHA)  # answered this week: fine
    key = "weekly:local:gina:2026-W49"
    store.claim(key, member_id=gone.id, kind="weekly", worker="w", now=lab.clock())
    store.mark_failed(
        key, worker="w", error="slack: user_disabled", retry_at=None, dead=True, now=lab.clock()
    )
    said = lab.command("boss", "attention")
    assert "Needs attention (2)" in said
    assert "Gina: cannot be messaged (slack: user_disabled)" in said
    assert "Quinn: enrolled 4 weeks ago, nothing done or skipped yet" in said
    assert "Ada" not in said and "Boss" not in said
    assert quiet.enrolled
    assert "for lab admins" in lab.command("ada", "关注")
    for _ in range(3):
        lab.service.jobs.review()
    dms = [render_plain(r) for _, r in lab.messenger.inbox(boss.user_id)]
    told = [dm for dm in dms if "Needs attention" in dm]
    assert len(told) == 1 and "2026-W49" in told[0] and "Quinn" in told[0]


def test_lab_and_home_show_a_progress_bar_per_member(lab: Lab) -> None:
    three_readers(lab)
    lab.join("Boss")
    lab_text = lab.command("boss", "lab")
    assert "▓▓▓▓▓░░░░░ 2/4 · Alice: 2/4 read" in lab_text
    assert "▓▓░░░░░░░░ 1/4 · Bob: 1/4 read" in lab_text
    boss = lab.service.bot.store.get_member("local", "boss")
    assert boss is not None
    home = render_plain(home_reply(lab.service.bot.commands, boss))
    assert "▓▓▓▓▓░░░░░ 2/4 · Alice" in home and "Nobody needs attention" in home
    alice = lab.service.bot.store.get_member("local", "alice")
    assert alice is not None
    assert "▓" not in render_plain(home_reply(lab.service.bot.commands, alice))  # admins only


# --- the command line ----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "dcml-bot"


def cli(db: Path, guide: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DCML_BOT_", "SLACK_", "FEISHU_"))
    }
    env.update(
        {
            "DCML_BOT_DATABASE_URL": f"sqlite:///{db}",
            "DCML_BOT_CATALOG": str(guide),
            "DCML_BOT_DIGEST__CHANNEL": "lab",
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
    )
    return subprocess.run(
        [str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_digest_command_posts_once_dry_runs_and_refuses_a_bad_week(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    guide = write_catalog(tmp_path / "guide.md", GUIDE)
    service = lab_service(f"sqlite:///{db}", tmp_path, Clock(dt.datetime.now(dt.UTC)))
    try:
        three_readers(Lab(service, Clock(dt.datetime.now(dt.UTC))))
    finally:
        service.stop()
    dry = cli(db, guide, "digest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "4 paper(s) marked done" in dry.stdout and "dry run: nothing posted" in dry.stdout
    first = cli(db, guide, "digest")
    assert first.returncode == 0, first.stderr
    assert "posted in local:lab" in first.stdout and "thread: posted" in first.stdout
    second = cli(db, guide, "digest")
    assert second.returncode == 0 and "already posted" in second.stdout
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT reply FROM local_messages WHERE channel = 'lab'"))
        posts = [json.loads(row[0]) for row in rows]
    engine.dispose()
    assert [p["thread"] is None for p in posts] == [True, False]
    assert Reply.model_validate(posts[0]["reply"]).header is not None
    bad = cli(db, guide, "digest", "--week", "2026-W99")
    assert bad.returncode == 2 and "2026 has no week 99" in bad.stderr
    empty = cli(db, guide, "digest", "--week", "2020-W10")
    assert empty.returncode == 0 and "an empty week posts nothing" in empty.stdout


# --- the local web lab --------------------------------------------------------------------------


def test_the_web_lab_shows_the_chart_the_attention_list_and_the_lab_channel(lab: Lab) -> None:
    *_, carol = three_readers(lab)
    with running(build_http_app(lab.service)) as base, httpx.Client(base_url=base) as client:
        page = client.get("/").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        chart = page.split('id="progress-chart"')[1].split("</svg>")[0]
        assert re.search(r'data-member="alice" data-read="2" data-total="4"', chart)
        assert re.search(r'data-member="bob" data-read="1" data-total="4"', chart)
        assert 'class="done" x="130" y="4" width="110.0"' in chart  # 2 of 4: half of 220
        assert "Nobody needs attention" in page.split('id="review"')[1]
        assert "No digest yet" in page
        headers = {"Origin": base, "Sec-Fetch-Site": "same-origin"}
        posted = client.post("/local/admin/digest", data={"csrf": csrf.group(1)}, headers=headers)
        assert posted.status_code == 303 and "posted" in posted.headers["location"]
        note = lab.service.bot.store.add_note(carol.id, BETA, "<script>x()</script>", lab.clock())
        found = lab.service.bot.store.get_note(note, share_default=True)
        assert found is not None and lab.service.bot.digest.post_note(found, carol) == POSTED
        channel = client.get("/").text.split('id="lab-channel"')[1]
        assert "4 paper(s) marked done this week" in channel
        assert channel.count('data-kind="thread"') == 2
        assert (
            "<script>x()</script>" not in channel and "&lt;script&gt;x()&lt;/script&gt;" in channel
        )


def test_the_review_job_fires_at_the_digest_slot_in_the_lab_time_zone(lab: Lab) -> None:
    from zoneinfo import ZoneInfo

    from dcml_bot.scheduler import REVIEW_JOB, Scheduler

    settings = lab.service.settings
    settings = settings.model_copy(
        update={"digest": settings.digest.model_copy(update={"day": "wed", "time": dt.time(9, 45)})}
    )
    when = Scheduler(lab.service.jobs, settings).next_run(REVIEW_JOB)
    assert when is not None
    local = when.astimezone(ZoneInfo(settings.timezone))
    assert (local.weekday(), local.hour, local.minute) == (2, 9, 45)


def test_every_digest_and_attention_message_reads_the_same_fields_in_both_languages() -> None:
    from string import Formatter

    from dcml_bot.core import i18n

    def fields(message: str) -> set[str]:
        return {name for _, name, _, _ in Formatter().parse(message) if name}

    keys = [k for k in i18n._EN if k.startswith(("digest.", "attention."))]
    assert len(keys) > 30
    for key in keys:
        assert fields(i18n._EN[key]) == fields(i18n._ZH[key]), key
    for key in ("digest.finished", "digest.note"):  # a mention takes the name's place, first
        assert i18n._EN[key].startswith("{name}") and i18n._ZH[key].startswith("{name}")
