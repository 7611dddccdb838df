"""Reading together in the core, on each database: who has read a paper (and the share switch
that hides a member everywhere), notes after done, their bad input, admins' deletion, the hook."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcml_bot.app import build_bot
from dcml_bot.catalog import entry_ref
from dcml_bot.core.bot import Bot
from dcml_bot.core.readers import ask_line
from dcml_bot.core.reply import InputBlock, Reply
from dcml_bot.settings import DigestSettings
from dcml_bot.store import MemberRecord, NoteRecord
from support import (
    MONDAY_SLOT,
    WEEK,
    Clock,
    Recorder,
    item_line,
    make_settings,
    text_of,
    write_catalog,
)

NOW = MONDAY_SLOT + dt.timedelta(hours=1)
IDS = [f"arxiv:2301.{n:05d}" for n in (1, 2, 3, 4)]


@pytest.fixture
def guide(tmp_path: Path) -> Path:
    """Four essentials: the first is everyone's next paper."""
    lines = [item_line("⚡", title, n) for n, title in enumerate(["Alpha", "Beta", "Gamma"], 1)]
    lines.append(item_line("⚡", "Delta Attention Study", 4))
    return write_catalog(tmp_path / "guide.md", [("Basics", lines)])


def lab(db_url: str, guide: Path, recorder: Recorder, *, share: bool = True) -> Bot:
    settings = make_settings(db_url, catalog=guide, digest=DigestSettings(share_progress=share))
    return build_bot(settings, messengers={"local": recorder}, clock=Clock(NOW))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def bot(db_url: str, guide: Path, recorder: Recorder) -> Iterator[Bot]:
    built = lab(db_url, guide, recorder)
    try:
        yield built
    finally:
        built.close()


def member(bot: Bot, user: str) -> MemberRecord:
    return bot.member("local", user, display_name=user.title())


def say(bot: Bot, user: str, line: str) -> Reply:
    return bot.commands.handle(member(bot, user), line)


def read(bot: Bot, user: str, item: str, *, hours: int = 0) -> None:
    """``user`` marked ``item`` done (later ``hours`` come later: readers are latest first)."""
    who = member(bot, user)
    bot.store.set_progress(who.id, item, "read", title="t", now=NOW + dt.timedelta(hours=hours))


def test_next_and_the_weekly_dm_name_up_to_three_readers_who_share(
    bot: Bot, recorder: Recorder
) -> None:
    for hours, user in enumerate(["ann", "bob", "cat", "dan"]):
        read(bot, user, IDS[0], hours=hours)
    say(bot, "dan", "share off")
    say(bot, "eve", "share on")
    nxt = text_of(say(bot, "eve", "next"))
    assert "Read it already: Cat, Bob, Ann — ask them." in nxt  # latest first; Dan said off
    # A reader is never told to ask themselves.
    ann = member(bot, "ann")
    line = ask_line(bot.store, ann, IDS[0], "en", share_default=True)
    assert line == "Read it already: Cat, Bob — ask them."
    store = bot.store
    store.set_enrolled(member(bot, "eve").id, True, NOW)
    report = bot.delivery.deliver(NOW, week=WEEK, force=True)
    assert report.count("sent") == 1
    [weekly] = recorder.to("eve")
    assert "Read it already: Cat, Bob, Ann — ask them." in text_of(weekly)
    assert "Dan" not in text_of(weekly)
    who = text_of(say(bot, "eve", f"who {IDS[0]}"))
    assert all(name in who for name in ("Ann", "Bob", "Cat")) and "Dan" not in who
    # Nobody who shares has read the second paper: no line at all.
    read(bot, "dan", IDS[1])
    say(bot, "eve", "done")  # eve's next paper is now the second
    assert "ask them" not in text_of(say(bot, "eve", "next"))
    assert "Nobody who shares" in text_of(say(bot, "eve", f"who {IDS[1]}"))


def test_share_off_removes_a_member_from_every_list(bot: Bot) -> None:
    read(bot, "ann", IDS[0])
    say(bot, "ann", f"note {IDS[0]} Read the appendix first.")
    before = (
        text_of(say(bot, "eve", "next")),
        text_of(say(bot, "eve", f"who {IDS[0]}")),
        text_of(say(bot, "eve", f"notes {IDS[0]}")),
    )
    assert all("Ann" in shown for shown in before)
    assert "Your name is no longer shown" in text_of(say(bot, "ann", "share off"))
    after = (
        text_of(say(bot, "eve", "next")),
        text_of(say(bot, "eve", f"who {IDS[0]}")),
        text_of(say(bot, "eve", f"notes {IDS[0]}")),
    )
    assert not any("Ann" in shown for shown in after)
    assert "a lab member" in after[2] and "Read the appendix first." in after[2]
    # The digest reads the same store query: Ann is not among the readers it may name.
    assert bot.store.readers_of("local", IDS[0], share_default=True) == []
    assert "You do not share" in text_of(say(bot, "ann", "share"))
    assert "Use /dcml share on" in text_of(say(bot, "ann", "share maybe"))
    say(bot, "ann", "share on")
    assert "Ann" in text_of(say(bot, "eve", f"who {IDS[0]}"))


def test_the_lab_default_decides_for_members_who_never_chose(
    db_url: str, guide: Path, recorder: Recorder
) -> None:
    private = lab(db_url, guide, recorder, share=False)
    try:
        read(private, "ann", IDS[0])
        read(private, "bob", IDS[0], hours=1)
        say(private, "bob", "share on")
        assert "(the lab's default)" in text_of(say(private, "ann", "share"))
        who = text_of(say(private, "eve", f"who {IDS[0]}"))
        assert "Bob" in who and "Ann" not in who
        assert "Read it already: Bob — ask them." in text_of(say(private, "eve", "next"))
    finally:
        private.close()


def test_done_offers_a_note_and_a_note_shows_in_notes(bot: Bot) -> None:
    done = say(bot, "ann", "done")
    [box] = done.inputs
    assert isinstance(box, InputBlock)
    assert (box.action, box.value, box.max_length) == ("note", entry_ref(IDS[0]), 2000)
    assert f"/dcml note {IDS[0]}" in box.typed
    again = say(bot, "ann", f"done {IDS[0]}")
    assert "Already marked" in text_of(again) and again.inputs  # a note can still be left
    assert not say(bot, "ann", "skip").inputs  # skipping is not reading: no box
    saved = bot.commands.submit(member(bot, "ann"), "note", box.value, "  Section 3 first.  ")
    assert saved.error is None and "Note saved" in text_of(saved.reply)
    paragraph = "word " * 300  # 1,500 characters: over other commands' 500, a note's fine
    assert "Note saved" in text_of(say(bot, "ann", f"note {IDS[0]} {paragraph}"))
    notes = text_of(say(bot, "bob", f"notes {IDS[0]}"))
    assert notes.index(paragraph.strip()) < notes.index("Section 3 first.")  # newest first
    assert "Ann · 2026-11-30 · #1" in notes  # the author (shares), the date, the number
    assert "No notes on" in text_of(say(bot, "bob", f"notes {IDS[1]}"))
    # Title words name the paper too, the note after a bar.
    read(bot, "ann", IDS[3])
    assert "Note saved" in text_of(say(bot, "ann", "note delta attention | Short and clear."))
    assert "Short and clear." in text_of(say(bot, "bob", "notes Delta Attention Study"))
    assert bot.store.count_notes(IDS[0]) == 2


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"note {IDS[0]}", "cannot be empty"),
        (f"note {IDS[0]}    ", "cannot be empty"),
        (f"note {IDS[0]} " + "x" * 2001, "has 2001 characters; notes are at most 2000"),
        (f"note {IDS[1]} Not read yet.", "Mark “Beta” done first"),
        ("note arxiv:9999.99999 Hello", "No item matches “arxiv:9999.99999”"),
        ("note nothing like it | Hello", "No item matches “nothing like it”"),
        ("note some words without a bar", "Say which paper"),
        ("note", "Say which paper"),
        ("note delete twelve", "Use /dcml note delete <note number>"),
    ],
)
def test_bad_notes_get_one_line_and_save_nothing(bot: Bot, line: str, expected: str) -> None:
    heard: list[tuple[NoteRecord, MemberRecord]] = []
    bot.notes.on_added = lambda note, author: heard.append((note, author))
    read(bot, "ann", IDS[0])
    reply = say(bot, "ann", line)
    assert len(reply.blocks) == 1 and expected in text_of(reply)
    assert bot.store.count_notes(IDS[0]) == bot.store.count_notes(IDS[1]) == 0
    assert heard == []


def test_the_box_refuses_like_the_command(bot: Bot) -> None:
    ann = member(bot, "ann")
    read(bot, "ann", IDS[0])
    for value, typed, expected in [
        (IDS[0], "", "cannot be empty"),
        (IDS[0], "y" * 2001, "2001 characters"),
        (IDS[1], "Fine.", "done first"),
        ("arxiv:0000.00000", "Fine.", "no longer in the guide"),
    ]:
        refused = bot.commands.submit(ann, "note", value, typed)
        assert refused.error is not None and expected in refused.error
    assert bot.commands.submit(ann, "nonsense", IDS[0], "Fine.").error is not None
    assert bot.store.count_notes(IDS[0]) == bot.store.count_notes(IDS[1]) == 0
    assert isinstance(bot.commands.ask(ann, "note", IDS[0]), InputBlock)
    unread = bot.commands.ask(ann, "note", IDS[1])
    assert isinstance(unread, Reply) and "done first" in text_of(unread)


def test_the_hook_hears_each_saved_note_once_and_survives_its_failure(bot: Bot) -> None:
    heard: list[tuple[NoteRecord, MemberRecord]] = []
    bot.notes.on_added = lambda note, author: heard.append((note, author))
    read(bot, "ann", IDS[0])
    say(bot, "ann", f"note {IDS[0]} First.")
    bot.commands.submit(member(bot, "ann"), "note", entry_ref(IDS[0]), "Second.")
    say(bot, "ann", f"note {IDS[0]} " + "z" * 2001)
    assert [(n.text, n.item_id, n.author, a.user_id) for n, a in heard] == [
        ("First.", IDS[0], "Ann", "ann"),
        ("Second.", IDS[0], "Ann", "ann"),
    ]

    def broken(note: NoteRecord, author: MemberRecord) -> None:
        raise RuntimeError("the digest thread is gone")

    bot.notes.on_added = broken
    assert "Note saved" in text_of(say(bot, "ann", f"note {IDS[0]} Third."))
    assert bot.store.count_notes(IDS[0]) == 3


def test_only_admins_delete_notes(bot: Bot) -> None:
    read(bot, "ann", IDS[0])
    say(bot, "ann", f"note {IDS[0]} Keep me?")
    [note] = bot.store.notes_for("local", IDS[0], share_default=True)
    assert "Only lab admins" in text_of(say(bot, "ann", f"note delete {note.id}"))
    assert bot.store.count_notes(IDS[0]) == 1
    assert f"Note #{note.id} deleted." in text_of(say(bot, "boss", f"note delete #{note.id}"))
    assert f"no note #{note.id}" in text_of(say(bot, "boss", f"note delete {note.id}"))
    assert "No notes on" in text_of(say(bot, "eve", f"notes {IDS[0]}"))
    assert "note delete" in text_of(say(bot, "boss", "help"))
    assert "note delete" not in text_of(say(bot, "ann", "help"))


def test_chinese_aliases_and_replies(bot: Bot) -> None:
    read(bot, "ann", IDS[0])
    say(bot, "ann", "lang zh")
    assert "已保存" in text_of(say(bot, "ann", f"笔记 {IDS[0]} 先读第三节。"))
    assert "先读第三节。" in text_of(say(bot, "ann", f"查看笔记 {IDS[0]}"))
    assert "Ann" in text_of(say(bot, "ann", f"谁读过 {IDS[0]}"))
    assert "不会再作为读者" in text_of(say(bot, "ann", "分享 off"))
