"""Tracks in the bot: members choose directions; answers, plans and progress follow them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dcml_bot.catalog import Level
from dcml_bot.core.bot import Bot
from dcml_bot.core.plan import member_scope, reading_order
from dcml_bot.store import open_store
from dcml_bot.store.database import HEAD_REVISION, current_revision
from support import MONDAY_SLOT, Clock, Recorder, database_at, make_bot, text_of

STARTER = Path(__file__).resolve().parent / "data" / "starter-guide" / "Readme.md"
TRACKS = ["systems", "autoML", "dcml", "graphs"]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def bot(db_url: str, recorder: Recorder) -> Iterator[Bot]:
    made = make_bot(db_url, recorder, Clock(MONDAY_SLOT), catalog=STARTER)
    yield made
    made.close()


def say(bot: Bot, user: str, line: str) -> str:
    return text_of(bot.commands.handle(bot.member("local", user), line))


def ids_in(reply_text: str, bot: Bot) -> set[str]:
    """Entries a reply shows, by their link (every entry in the starter guide has one)."""
    return {e.id for e in bot.library.catalog.entries if e.url and f"— {e.url}\n" in reply_text}


def only_in(bot: Bot, track: str) -> set[str]:
    return {e.id for e in bot.library.catalog.entries if e.tracks == (track,)}


def test_a_newcomer_picks_a_direction_and_answers_follow_it(bot: Bot, recorder: Recorder) -> None:
    assert bot.onboarding.joined("local", "alice", MONDAY_SLOT, display_name="Alice") == "welcomed"
    (welcome,) = recorder.to("alice")
    picker = [b for b in welcome.buttons if b.action == "track"]
    assert [b.value for b in picker] == TRACKS
    assert picker[0].label == "AI系统方向 (78)"
    # Until they pick, a newcomer reads the common list: the first paper comes from it.
    alice = bot.member("local", "alice")
    assert alice.tracks is None
    first = [b.value for b in welcome.buttons if b.action == "done"]
    common = {e.id for e in bot.library.catalog.entries if "common" in e.tracks}
    offered = bot.library.catalog.get(first[0].split("|")[0]) if first else None
    assert offered is not None and offered.id in common

    chosen = text_of(bot.commands.press(alice, "track", "systems"))
    assert "You now read systems and the common list" in chosen
    alice = bot.member("local", "alice")
    assert alice.tracks == ("systems",)

    essential = say(bot, "alice", "essential")
    shown = ids_in(essential, bot)
    assert shown & only_in(bot, "systems")
    assert shown & only_in(bot, "common")
    assert not shown & only_in(bot, "dcml")
    assert "In your directions (common, systems)" in essential
    # A track word scopes a query; `all` widens it.
    assert ids_in(say(bot, "alice", "dcml essential"), bot) <= only_in(bot, "dcml")
    assert "150 of 239 items · all · essential" in say(bot, "alice", "all essential")
    assert "of 87 items · essential" in essential  # common 9 + systems 78
    assert "43 of 43 items · dcml · essential" in say(bot, "alice", "dcml essential")


def test_track_commands_and_their_bad_input(bot: Bot) -> None:
    listing = say(bot, "bob", "tracks")
    assert "Everyone reads ✨ 科研入门指南 (9 items)." in listing
    assert "▫️ AI系统方向 — systems: 78 items, 31 essential" in listing
    assert "You have not chosen a direction yet" in listing

    assert "No direction is called “nosuch”" in say(bot, "bob", "track nosuch")
    assert bot.member("local", "bob").tracks is None  # nothing changed
    assert "No direction is called “paper”" in say(bot, "bob", "track systems paper")
    assert bot.member("local", "bob").tracks is None

    assert "You now read systems, graphs" in say(bot, "bob", "track systems Graph方向")
    assert bot.member("local", "bob").tracks == ("systems", "graphs")
    assert "✅ AI系统方向" in say(bot, "bob", "track")  # `track` alone lists them
    assert "You now read only the common list" in say(bot, "bob", "track common")
    assert bot.member("local", "bob").tracks == ()

    bob = bot.member("local", "bob")
    refused = text_of(bot.commands.press(bob, "track", "x" * 300))
    assert refused.startswith("No direction is called") and len(refused) < 300
    assert bot.member("local", "bob").tracks == ()


def test_the_weekly_plan_takes_common_first_then_each_track_in_turn(bot: Bot) -> None:
    catalog = bot.library.catalog
    carol = bot.store.set_tracks(bot.member("local", "carol").id, ["graphs", "systems"])
    scope = member_scope(carol, catalog)
    assert scope == {"common", "systems", "graphs"}
    order = reading_order(catalog, scope)
    essentials = [e for e in order if e.level_in(scope) is Level.ESSENTIAL]
    assert [e.tracks[0] for e in essentials[:9]] == ["common"] * 9
    # Then one from each track, in the index's order (systems before graphs).
    assert [e.tracks[0] for e in essentials[9:13]] == ["systems", "graphs", "systems", "graphs"]
    assert not [
        e for e in order if "dcml" in e.tracks and not {"systems", "graphs"} & set(e.tracks)
    ]
    assert len(order) == len({e.id for e in order})  # no item twice


def test_weekly_delivery_follows_the_members_tracks(bot: Bot, recorder: Recorder) -> None:
    dave = bot.member("local", "dave")
    bot.store.set_enrolled(dave.id, True, MONDAY_SLOT)
    bot.store.set_tracks(dave.id, ["dcml"])
    catalog = bot.library.catalog
    for entry in catalog.entries:
        if entry.tracks == ("common",):
            bot.store.set_progress(dave.id, entry.id, "read", title=entry.title, now=MONDAY_SLOT)
    report = bot.delivery.deliver(MONDAY_SLOT)
    assert report.count("sent") == 1
    (weekly,) = recorder.to("dave")
    (item_id,) = {b.value.split("|")[0] for b in weekly.buttons}
    entry = catalog.get(item_id)
    assert entry is not None and "dcml" in entry.tracks
    assert entry.level_in({"common", "dcml"}) is Level.ESSENTIAL
    assert f"9 of {9 + 43} read so far" in text_of(weekly)
    # The same week again sends nothing, whatever track dave switches to.
    bot.store.set_tracks(dave.id, ["graphs"])
    assert bot.delivery.deliver(MONDAY_SLOT).count("sent") == 0
    assert len(recorder.to("dave")) == 1


def test_progress_and_lab_per_track(bot: Bot) -> None:
    erin = bot.store.set_tracks(bot.member("local", "erin").id, ["autoML"])
    first = next(e for e in bot.library.catalog.entries if e.tracks == ("autoML",))
    say(bot, "erin", f"done {first.id}")
    progress = say(bot, "erin", "progress")
    assert "▸ ✨ 科研入门指南: 0 of 9 read" in progress
    assert "▸ AutoML方向: 1 of 40 read" in progress
    assert "1 of 49 items read" in progress
    assert erin.tracks == ("autoML",)
    lab = say(bot, "boss", "lab")
    assert "erin [autoML]: 1/49 read" in lab
    assert "boss [not chosen]" in lab
    assert "Directions: autoML 1/40 · not chosen 1" in lab


def test_admins_enrol_members_in_tracks(bot: Bot) -> None:
    bot.member("local", "frank", display_name="Frank Li")
    assert "Enrolled Frank Li; directions: systems, dcml." in say(
        bot, "boss", "enroll Frank Li systems dcml"
    )
    frank = bot.member("local", "frank")
    assert frank.enrolled and frank.tracks == ("systems", "dcml")
    assert "is for lab admins" in say(bot, "frank", "enroll frank graphs")


def test_a_single_guide_has_no_directions_to_choose(db_url: str, recorder: Recorder) -> None:
    single = make_bot(db_url, recorder, Clock(MONDAY_SLOT))
    try:
        assert "there are no directions to choose" in text_of(
            single.commands.handle(single.member("local", "gina"), "tracks")
        )
        single.onboarding.joined("local", "gina", MONDAY_SLOT)
        assert not [b for b in recorder.to("gina")[0].buttons if b.action == "track"]
        assert member_scope(single.member("local", "gina"), single.library.catalog) is None
    finally:
        single.close()


def test_an_existing_database_upgrades_in_place_keeping_progress(db_url: str) -> None:
    engine = database_at(db_url, "0004")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO members (id, platform, user_id, enrolled, joined_at) "
                "VALUES (1, 'local', 'old', true, :now)"
            ),
            {"now": MONDAY_SLOT.replace(tzinfo=None)},
        )
        connection.execute(
            sa.text(
                "INSERT INTO progress (member_id, item_id, state, title, updated_at) "
                "VALUES (1, 'arxiv:2106.09685', 'read', 'LoRA', :now)"
            ),
            {"now": MONDAY_SLOT.replace(tzinfo=None)},
        )
    engine.dispose()
    store = open_store(db_url)
    try:
        assert current_revision(store.engine) == HEAD_REVISION
        member = store.get_member("local", "old")
        assert member is not None and member.tracks is None and member.enrolled
        assert store.progress_for(member.id)["arxiv:2106.09685"].state == "read"
        assert store.set_tracks(member.id, ["systems"]).tracks == ("systems",)
    finally:
        store.dispose()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_command_of_the_table_is_in_the_help(bot: Bot, lang: str) -> None:
    say(bot, "boss", f"lang {lang}")
    helped = say(bot, "boss", "help")  # an admin, in a lab with directions: every section
    words = set(bot.commands.table)  # every command's name and alias, folded
    names = {command.name for command in bot.commands.table.values()} - {"help"}
    assert {"下一篇", "enrol", "?", "周报"} <= words
    assert len(names) >= 20 and {g.name for g in bot.commands.groups} == {
        "browse",
        "reading",
        "tracks",
        "notes",
        "admin",
        "review",
    }
    missing = {w for w in words if not re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", helped)}
    assert missing == set()
    member = say(bot, "ann", "help")  # a member is shown only the words they may use
    assert "下一篇" in member and "实验室" not in member and "周报" not in member
