"""The weekly digest through the Feishu Open Platform: a fake recording the group post
(``receive_id_type=chat_id``), the replies in its thread and the admins' DMs; the real lark-oapi
client on the bot's side."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dcml_bot.app import build_service
from dcml_bot.core.digest import ALREADY, FAILED, POSTED, digest_key
from dcml_bot.platforms.feishu.cards import escape_markdown
from dcml_bot.platforms.feishu.messenger import delivery_uuid
from dcml_bot.server import build_http_app
from dcml_bot.settings import DigestSettings
from fakes.api import running
from fakes.feishu import LAB_GROUP, MESSAGES, FakeFeishu, Feishu, card_of, feishu_settings
from support import ALPHA, BETA, FRIDAY, GAMMA, GUIDE, Clock, write_catalog

Answer = tuple[int, Any, dict[str, str]]
READERS = {"ou_alice": "Alice", "ou_bob": "Bob", "ou_carol": "Carol"}


class LabFeishu(FakeFeishu):
    """FakeFeishu plus the groups the bot is in: a message to another chat is refused with
    230002 ("The bot can not be outside the group."), a reply to an unknown message with 230001."""

    def __init__(self, chats: tuple[str, ...] = (LAB_GROUP,)) -> None:
        super().__init__()
        self.chats = set(chats)
        self.routes[MESSAGES] = self._checked
        self.routes["reply"] = self._checked

    def _checked(self, request: dict[str, Any]) -> Answer:
        body = request["body"]
        to_chat = request["query"].get("receive_id_type") == "chat_id"
        if request["path"] == MESSAGES and to_chat and body.get("receive_id") not in self.chats:
            return 400, {"code": 230002, "msg": "The bot can not be outside the group."}, {}
        if request["path"].endswith("/reply"):
            parent = request["path"].split("/")[-2]
            if parent not in {c["message_id"] for c in self.sent()}:
                return 400, {"code": 230001, "msg": "ext=invalid message_id."}, {}
        return self._send(request)

    def group_posts(self, chat: str = LAB_GROUP) -> list[dict[str, Any]]:
        return [
            c
            for c in self.sent()
            if c["path"] == MESSAGES
            and c["query"].get("receive_id_type") == "chat_id"
            and c["body"]["receive_id"] == chat
        ]


@contextmanager
def lab_feishu(
    db_url: str, tmp_path: Path, *, fake: LabFeishu | None = None, **digest: Any
) -> Iterator[Feishu]:
    fake = (fake or LabFeishu()).start()
    guide = write_catalog(tmp_path / "guide.md", GUIDE)
    clock = Clock(FRIDAY)
    update = {"catalog": str(guide), "digest": DigestSettings(**{"channel": LAB_GROUP, **digest})}
    service = build_service(
        feishu_settings(db_url, fake, update=update), clock=clock, schedule=False
    )
    try:
        with running(build_http_app(service)) as base:
            lab = Feishu(service, base, fake, clock)
            assert lab.platform.wait_identity(10)
            yield lab
    finally:
        fake.stop()


def readers(feishu: Feishu) -> None:
    """Alice, Bob and Carol join (a welcome card each) and read Alpha; Alice reads Beta too."""
    bot = feishu.service.bot
    catalog = bot.library.catalog
    for open_id, name in READERS.items():
        bot.onboarding.joined("feishu", open_id, feishu.clock(), display_name=name)
        member = feishu.member(open_id)
        for item in (ALPHA, BETA) if open_id == "ou_alice" else (ALPHA,):
            title = catalog.get(item).title  # type: ignore[union-attr]
            bot.store.set_progress(member.id, item, "read", title=title, now=feishu.clock())


def text_of(call: dict[str, Any]) -> str:
    return json.dumps(card_of(call), ensure_ascii=False)


def test_three_readers_make_one_group_card_and_a_reply_in_its_thread(
    db_url: str, tmp_path: Path
) -> None:
    with lab_feishu(db_url, tmp_path) as feishu:
        readers(feishu)
        run = feishu.service.jobs.review()
        assert run is not None and (run.outcome, run.thread) == (POSTED, POSTED)
        [post] = feishu.fake.group_posts()
        card = text_of(post)
        assert "本周实验室 · 2026-W49" in card
        assert "本周共标记已读 4 篇" in card and "3 人读过" in card
        assert "Alice 读完了必读论文" in card and "<at " not in card
        key = digest_key("feishu", LAB_GROUP, "2026-W49")
        assert post["body"]["uuid"] == delivery_uuid(key)
        [reply] = feishu.fake.replies(post["message_id"])
        assert reply["body"]["reply_in_thread"] is True
        assert reply["body"]["uuid"] == delivery_uuid(key + ":thread")
        assert "本周论文《Beta Paper》的讨论" in text_of(reply)
        for again in (feishu.service.jobs.review(), feishu.service.jobs.digest()):
            assert again is not None and (again.outcome, again.thread) == (ALREADY, ALREADY)
        assert len(feishu.fake.group_posts()) == 1
        assert len(feishu.fake.replies(post["message_id"])) == 1
        # A note on the paper of the week goes to the same thread, once.
        carol = feishu.member("ou_carol")
        store = feishu.service.bot.store
        note = store.get_note(
            store.add_note(carol.id, BETA, "**bold?** <at id=all></at>", feishu.clock()),
            share_default=True,
        )
        assert note is not None
        assert feishu.service.bot.digest.post_note(note, carol) == POSTED
        assert feishu.service.bot.digest.post_note(note, carol) == ALREADY
        replies = feishu.fake.replies(post["message_id"])
        assert len(replies) == 2 and replies[1]["body"]["reply_in_thread"] is True
        shown = text_of(replies[1])
        assert "Carol 分享了关于《Beta Paper》的笔记" in shown
        assert "<at id=all>" not in shown and "&lt;at id=all&gt;" in shown  # typed text escaped


def test_share_off_and_mentions_in_the_card(db_url: str, tmp_path: Path) -> None:
    with lab_feishu(db_url, tmp_path, mention=True) as feishu:
        readers(feishu)
        store = feishu.service.bot.store
        store.set_share_progress(feishu.member("ou_carol").id, False)
        feishu.service.jobs.review()
        card = text_of(feishu.fake.group_posts()[0])
        assert "<at id=ou_alice></at> 读完了必读论文" in card
        assert "Carol" not in card and "本周新成员：Alice、Bob等，另有 1 位" in card


def test_a_group_without_the_bot_tells_the_admins_once(db_url: str, tmp_path: Path) -> None:
    with lab_feishu(db_url, tmp_path, fake=LabFeishu(chats=())) as feishu:
        readers(feishu)
        run = feishu.service.jobs.review()
        assert run is not None and run.outcome == FAILED
        row = feishu.service.bot.store.get_outbox(digest_key("feishu", LAB_GROUP, "2026-W49"))
        assert row is not None and row.status == "dead" and "230002" in (row.last_error or "")
        feishu.clock.advance(days=7)  # next week: Bob reads, the post fails again
        title = feishu.service.bot.library.catalog.get(GAMMA).title  # type: ignore[union-attr]
        bob = feishu.member("ou_bob")
        feishu.service.bot.store.set_progress(
            bob.id, GAMMA, "read", title=title, now=feishu.clock()
        )
        again = feishu.service.jobs.review()
        assert again is not None and (again.week, again.outcome) == ("2026-W50", FAILED)
        told = [c for c in feishu.fake.to("ou_admin") if "请把机器人加入该群" in text_of(c)]
        assert len(told) == 1 and escape_markdown(LAB_GROUP) in text_of(told[0])
        assert feishu.fake.group_posts() == []


def test_a_mention_renders_as_a_ping_only_for_an_open_id() -> None:
    from dcml_bot.core.reply import Mention, Reply, TextBlock
    from dcml_bot.platforms.feishu.cards import render_card, render_post
    from dcml_bot.platforms.slack.blocks import render_message

    def reply(user_id: str, name: str) -> Reply:
        return Reply(
            blocks=(TextBlock(text="finished *it*", mention=Mention(user_id=user_id, name=name)),)
        )

    ping = render_post(reply("ou_alice1", "Alice"), "en_us")["en_us"]["content"][0]
    assert ping[0] == {"tag": "at", "user_id": "ou_alice1"} and ping[-1]["text"] == "finished *it*"
    odd = json.dumps(render_card(reply("<at id=all>", "<b>Eve</b>")), ensure_ascii=False)
    assert "<at" not in odd and "&lt;b&gt;Eve&lt;/b&gt;" in odd
    slack = json.dumps(render_message(reply("<!channel>", "<!here> Eve")), ensure_ascii=False)
    assert "<!" not in slack and "&lt;!here&gt; Eve" in slack
