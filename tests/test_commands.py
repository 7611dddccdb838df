"""Every command and button, end to end on each database, through an in-memory messenger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dcml_bot.core.bot import Bot
from support import MONDAY_SLOT, WEEK, Clock, Recorder, make_bot, text_of

NOW = MONDAY_SLOT + dt.timedelta(hours=1)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def bot(db_url: str, recorder: Recorder, clock: Clock) -> Iterator[Bot]:
    built = make_bot(db_url, recorder, clock)
    try:
        yield built
    finally:
        built.close()


def say(bot: Bot, user: str, line: str) -> str:
    return text_of(bot.commands.handle(bot.member("local", user), line))


def test_help_and_empty_input(bot: Bot) -> None:
    member_help = say(bot, "alice", "help")
    assert "/dcml search" in member_help
    assert "Admin:" not in member_help
    assert say(bot, "alice", "/dcml") == member_help
    assert say(bot, "alice", "   ") == member_help
    assert "Admin: /dcml lab" in say(bot, "boss", "/dcml help")


def test_over_long_input_is_refused(bot: Bot) -> None:
    reply = say(bot, "alice", "search " + "x" * 600)
    assert "I don't know" in reply
    assert "x" * 100 not in reply


def test_level_topic_kind_and_search_queries(bot: Bot) -> None:
    total = len(bot.library.catalog.entries)
    essential = bot.commands.handle(bot.member("local", "alice"), "essential")
    assert essential.header == f"{total} of {total} items · essential"
    assert 0 < len(essential.items) < total  # capped so every platform can render it
    assert "Showing" in text_of(essential)

    rag = bot.commands.handle(bot.member("local", "alice"), "rag")
    assert rag.header is not None and rag.header.startswith("4 of")
    assert all("rag" in (item.topic or "").lower() for item in rag.items)

    papers = bot.commands.handle(bot.member("local", "alice"), "/dcml paper")
    assert papers.header is not None and papers.header.startswith("41 of")

    found = bot.commands.handle(bot.member("local", "alice"), "search clip")
    assert found.header is not None and found.header.startswith("6 of")
    assert all(item.url for item in found.items)

    assert "Nothing matches" in say(bot, "alice", "search zzqx")


def test_topics_lists_sections_and_counts(bot: Bot) -> None:
    reply = say(bot, "alice", "topics")
    for section in bot.library.catalog.sections:
        assert f"▸ {section.name}" in reply
    assert "ImageLLMs (" in reply


def test_next_done_skip_and_progress(bot: Bot) -> None:
    catalog = bot.library.catalog
    first, second, third = catalog.entries[0], catalog.entries[1], catalog.entries[2]
    alice = bot.member("local", "alice")

    nxt = bot.commands.handle(alice, "next")
    assert nxt.header == "Your next paper"
    assert [i.id for i in nxt.items] == [first.id]
    assert [b.value for b in nxt.buttons] == [f"{first.id}|{WEEK}"] * 3
    assert [b.action for b in nxt.buttons] == ["done", "skip", "later"]

    assert f"Marked as read: {first.title}" in say(bot, "alice", "done")
    assert f"Already marked as read: {first.title}" in say(bot, "alice", f"done {first.id}")
    assert f"Skipped: {second.title}" in say(bot, "alice", "skip")
    assert [i.id for i in bot.commands.handle(alice, "next").items] == [third.id]

    progress = say(bot, "alice", "progress")
    assert f"1 of {len(catalog.entries)} items read, 1 skipped" in progress
    assert f"essential: 1 of {len(catalog.entries)} read" in progress
    assert "Weekly paper: off" in progress
    assert third.title in progress


def test_done_by_id_title_words_ambiguous_and_unknown(bot: Bot) -> None:
    catalog = bot.library.catalog
    target = catalog.get("arxiv:2306.13549")
    assert target is not None
    assert f"Marked as read: {target.title}" in say(bot, "alice", "done arxiv:2306.13549")

    # Two titles contain the words; the exact title wins.
    reply = say(bot, "alice", "done visual instruction tuning")
    assert "Marked as read: Visual Instruction Tuning" in reply
    progress = bot.store.progress_for(bot.member("local", "alice").id)
    assert progress["arxiv:2304.08485"].state == "read"
    assert "arxiv:2310.03744" not in progress

    many = bot.commands.handle(bot.member("local", "alice"), "done language model")
    assert "matches" in text_of(many) and "say which one" in text_of(many)
    assert len(many.items) > 1
    assert len(bot.store.progress_for(bot.member("local", "alice").id)) == 2

    none = say(bot, "alice", "done zzqx quux")
    assert "No item matches “zzqx quux”" in none
    assert len(bot.store.progress_for(bot.member("local", "alice").id)) == 2


def test_start_stop_twice(bot: Bot) -> None:
    assert "You are enrolled: a paper arrives every Monday at 10:00 (Asia/Shanghai)" in say(
        bot, "alice", "start"
    )
    assert bot.member("local", "alice").enrolled
    assert "already enrolled" in say(bot, "alice", "start")
    assert "Weekly papers are off" in say(bot, "alice", "stop")
    assert not bot.member("local", "alice").enrolled
    assert "already off" in say(bot, "alice", "stop")
    assert bot.member("local", "alice").opted_out_at is not None


def test_lang_switches_replies_to_chinese(bot: Bot) -> None:
    assert "Use /dcml lang en or /dcml lang zh." in say(bot, "alice", "lang klingon")
    assert "语言已设为中文" in say(bot, "alice", "lang zh")
    assert bot.member("local", "alice").language == "zh"
    assert "管理员" not in say(bot, "alice", "help")
    assert "/dcml search <关键词>" in say(bot, "alice", "zzqx")
    assert "你的下一篇论文" in say(bot, "alice", "next")
    assert "已加入" in say(bot, "alice", "start")
    assert "你的进度" in say(bot, "alice", "progress")
    assert "请使用 /dcml lang en" in say(bot, "alice", "lang bad")
    assert "仅限实验室管理员" in say(bot, "alice", "lab")
    assert "Language set to English." in say(bot, "alice", "lang en")
    assert "Your next paper" in say(bot, "alice", "next")


@pytest.mark.parametrize("command", ["lab", "remind", "reload", "enroll bob", "enroll"])
def test_admin_commands_refused_for_members(bot: Bot, recorder: Recorder, command: str) -> None:
    bot.member("local", "bob")
    say(bot, "alice", "start")
    reply = say(bot, "alice", command)
    assert f"“{command.split()[0]}” is for lab admins." in reply
    assert recorder.sent == []
    assert not bot.member("local", "bob").enrolled


def test_admin_lab_remind_reload_enroll(bot: Bot, recorder: Recorder) -> None:
    bot.member("local", "bob", display_name="Bob Builder")
    bot.member("local", "bobby", display_name="Bobby Tables")
    say(bot, "alice", "start")

    lab = say(bot, "boss", "lab")
    assert "Lab progress (4 members)" in lab
    assert "Bob Builder: 0/43 read · opted out" in lab
    assert "alice: 0/43 read · enrolled" in lab

    assert "Use /dcml enroll <user id or name>." in say(bot, "boss", "enroll")
    assert "No member matches “carol”" in say(bot, "boss", "enroll carol")
    assert "several members" in say(bot, "boss", "enroll Bob")
    assert not bot.member("local", "bob").enrolled
    assert "Enrolled Bob Builder." in say(bot, "boss", "enroll @bob")
    assert bot.member("local", "bob").enrolled

    remind = say(bot, "boss", "remind")
    assert f"Delivery for {WEEK}: 2 sent, 0 already had it" in remind
    assert sorted(uid for uid, _, _ in recorder.sent) == ["alice", "bob"]
    assert "0 sent, 2 already had it" in say(bot, "boss", "remind")
    assert len(recorder.sent) == 2

    reload = say(bot, "boss", "reload")
    assert "Catalog unchanged: 43 items" in reload


def test_button_presses(bot: Bot, clock: Clock) -> None:
    catalog = bot.library.catalog
    first, second = catalog.entries[0], catalog.entries[1]
    alice = bot.member("local", "alice")

    done = bot.commands.press(alice, "done", f"{first.id}|{WEEK}")
    assert f"Marked as read: {first.title}" in text_of(done)
    assert f"Next up: {second.title}" in text_of(done)

    later = bot.commands.press(alice, "later", f"{second.id}|{WEEK}")
    assert "Snoozed until next week" in text_of(later)
    record = bot.store.progress_for(alice.id)[second.id]
    assert (record.state, record.snoozed_week) == ("snoozed", WEEK)

    skip = bot.commands.press(alice, "skip", f"{catalog.entries[2].id}|{WEEK}")
    assert "Skipped:" in text_of(skip)
    assert bot.store.progress_for(alice.id)[catalog.entries[2].id].state == "skipped"

    before = bot.store.progress_for(alice.id)
    assert "no longer valid" in text_of(bot.commands.press(alice, "explode", f"{first.id}|{WEEK}"))
    assert "no longer valid" in text_of(bot.commands.press(alice, "done", ""))
    gone = bot.commands.press(alice, "done", f"arxiv:9999.99999|{WEEK}")
    assert "no longer in the guide" in text_of(gone)
    assert bot.store.progress_for(alice.id) == before


def test_replies_carry_the_readers_language(bot: Bot) -> None:
    alice = bot.member("local", "alice")
    assert bot.commands.handle(alice, "help").lang == "en"
    say(bot, "alice", "lang zh")
    alice = bot.member("local", "alice")
    for line in ("help", "next", "progress", "zzqx", "lab", "note"):
        assert bot.commands.handle(alice, line).lang == "zh", line
    assert bot.commands.press(alice, "no-such-action", "x").lang == "zh"
