"""Message tables in English and Chinese; every user-facing sentence of the core is here."""

from __future__ import annotations

from typing import Literal

Language = Literal["en", "zh"]
LANGUAGES: tuple[Language, ...] = ("en", "zh")

_EN: dict[str, str] = {
    "help.header": "dcml-bot — your reading programme",
    "help.body": (
        "Ask for papers from {guide}:\n"
        "• /dcml essential · optional · advanced — by level\n"
        "• /dcml rag · video · math … — by topic (see /dcml topics)\n"
        "• /dcml paper · code · course — by kind; combine words: /dcml essential video\n"
        "• /dcml search <words> — search titles and notes\n"
        "Your plan: /dcml next · done [id or title words] · skip · progress\n"
        "Weekly paper: /dcml start (enrol) · stop (opt out) · lang en|zh"
    ),
    "help.admin": "Admin: /dcml lab · remind · reload · enroll <user>",
    "unknown": "I don't know “{word}”. {hint}",
    "hint": "Try /dcml help, /dcml topics or /dcml search <words>.",
    "query.header": "{count} of {total} items · {query}",
    "query.none": "Nothing matches {query}.",
    "query.more": "Showing {shown} of {count}; narrow it down, e.g. /dcml essential {example}.",
    "topics.header": "Topics in {guide}",
    "topics.line": "{name} ({count})",
    "next.header": "Your next paper",
    "next.none": "You have finished your plan — nothing left to read. 🎉",
    "next.week": "This week's paper",
    "next.topic": "From “{topic}” · {level}",
    "button.done": "✅ Done",
    "button.skip": "⏭ Skip",
    "button.later": "⏰ Later",
    "done.ok": "Marked as read: {title}",
    "skip.ok": "Skipped: {title}",
    "later.ok": "Snoozed until next week: {title}",
    "done.again": "Already marked as read: {title}",
    "then.next": "Next up: {title}",
    "pick.none": "No item matches “{words}”. Use an id such as arxiv:2310.03744 or words from the title.",
    "pick.many": "“{words}” matches {count} items; say which one:",
    "pick.nothing": "There is no current paper to mark. Ask /dcml next first.",
    "action.gone": "That paper is no longer in the guide; nothing changed.",
    "action.unknown": "That button is no longer valid.",
    "busy": "Working on it… the answer follows in a moment.",
    "unreachable": "Could not message {name} ({who}): {error}. The bot will not retry; check that the app is available to them and their account is active.",
    "failed": "Something went wrong on our side; it has been logged for the admins. Please try again later.",
    "progress.header": "Your progress",
    "progress.line": "{level}: {read} of {total} read",
    "progress.total": "{read} of {total} items read, {skipped} skipped",
    "progress.removed": "{count} read item(s) were later removed from the guide; they stay in your history.",
    "progress.enrolled": "Weekly paper: on ({day} {time}, {tz})",
    "progress.optedout": "Weekly paper: off — /dcml start to turn it on",
    "start.ok": "You are enrolled: a paper arrives every {day} at {time} ({tz}).",
    "start.already": "You are already enrolled.",
    "stop.ok": "Weekly papers are off. Your progress is kept; /dcml start turns them back on.",
    "stop.already": "Weekly papers are already off.",
    "lang.ok": "Language set to English.",
    "lang.bad": "Use /dcml lang en or /dcml lang zh.",
    "admin.only": "“{command}” is for lab admins.",
    "lab.header": "Lab progress ({count} members)",
    "lab.line": "{name}: {read}/{total} read · {state} · next: {next}",
    "lab.enrolled": "enrolled",
    "lab.optedout": "opted out",
    "lab.none": "No members yet.",
    "remind.done": "Delivery for {week}: {sent} sent, {already} already had it, {skipped} with nothing left, {failed} failed.",
    "reload.ok": "Catalog reloaded: {count} items from {source}.",
    "reload.same": "Catalog unchanged: {count} items from {source}.",
    "reload.bad": "The new catalog was NOT loaded; still serving the previous one ({count} items).",
    "reload.running": "A reload is already running, started {started}; serving the current catalog ({count} items) meanwhile.",
    "reload.stopped": "The bot is stopping; the catalog was not reloaded.",
    "enroll.usage": "Use /dcml enroll <user id or name>.",
    "enroll.none": "No member matches “{who}”.",
    "enroll.many": "“{who}” matches several members: {names}.",
    "enroll.ok": "Enrolled {name}.",
    "welcome.header": "Welcome to the lab, {name}! 👋",
    "welcome.body": (
        "The lab keeps a starter reading list, {guide}. I am its bot: every {day} at {time} "
        "({tz}) I send you the next paper of your plan — essentials first — and remember what "
        "you have read. You are enrolled now; /dcml stop turns it off."
    ),
    "welcome.essentials": "The essentials at a glance ({count})",
    "welcome.first": "Your first paper",
    "welcome.usage": "Ask me anything from the guide: /dcml essential · /dcml rag · /dcml search clip · /dcml help",
    "weekly.header": "📚 Your paper for {week}",
    "weekly.body": "{done} of {total} read so far. Reply with the buttons when you have read it.",
    "level.essential": "essential",
    "level.optional": "optional",
    "level.advanced": "advanced",
    "level.unclassified": "unclassified",
    "more": "…and {count} more",
    "help.tracks": "Directions: /dcml tracks · track <name> [<name>…] — you read {mine}; /dcml all <words> looks in every direction",
    "tracks.header": "Directions in {guide}",
    "tracks.line": "{mark} {title} — {name}: {count} items, {essential} essential",
    "tracks.common": "Everyone reads {title} ({count} items).",
    "tracks.mine": "You read {names} and the common list. Change it: /dcml track <name> [<name>…]",
    "tracks.unchosen": "You have not chosen a direction yet, so you read the common list. Pick one below or: /dcml track <name>",
    "tracks.single": "This lab has one reading list, {guide}: there are no directions to choose.",
    "track.ok": "You now read {names} and the common list. Your progress is kept; a paper you read in one direction counts in every one.",
    "track.common": "You now read only the common list.",
    "track.unknown": "No direction is called “{word}”. Directions: {names}.",
    "track.button": "{title} ({count})",
    "query.scope": "In your directions ({names}); /dcml all {example} looks in every one.",
    "progress.track": "▸ {title}: {read} of {total} read",
    "enroll.tracks": "Enrolled {name}; directions: {names}.",
    "lab.tracks": "Directions: {counts}",
    "lab.unchosen": "not chosen",
    "home.tracks": "Your directions: {names}. Switch with a button (or /dcml track a b for two):",
    "welcome.pick": "Which direction are you in? Pick one (change it any time with /dcml track):",
    "welcome.track": "Your direction: {names} (you read it and the common list).",
}

_ZH: dict[str, str] = {
    "help.header": "dcml-bot — 你的阅读计划",
    "help.body": (
        "从《{guide}》查找论文：\n"
        "• /dcml 必读 · 选读 · 进阶 — 按级别\n"
        "• /dcml rag · video · math … — 按主题（见 /dcml topics）\n"
        "• /dcml paper · code · course — 按类型；可组合：/dcml 必读 video\n"
        "• /dcml search <关键词> — 搜索标题和备注\n"
        "你的计划：/dcml next · done [id 或标题关键词] · skip · progress\n"
        "每周论文：/dcml start（加入）· stop（退出）· lang en|zh"
    ),
    "help.admin": "管理员：/dcml lab · remind · reload · enroll <用户>",
    "unknown": "无法理解“{word}”。{hint}",
    "hint": "试试 /dcml help、/dcml topics 或 /dcml search <关键词>。",
    "query.header": "{count} / {total} 项 · {query}",
    "query.none": "没有匹配 {query} 的条目。",
    "query.more": "仅显示 {shown} / {count} 项；请缩小范围，例如 /dcml 必读 {example}。",
    "topics.header": "《{guide}》的主题",
    "topics.line": "{name}（{count}）",
    "next.header": "你的下一篇论文",
    "next.none": "计划已全部完成，没有待读的了。🎉",
    "next.week": "本周论文",
    "next.topic": "来自“{topic}” · {level}",
    "button.done": "✅ 已读",
    "button.skip": "⏭ 跳过",
    "button.later": "⏰ 稍后",
    "done.ok": "已标记为已读：{title}",
    "skip.ok": "已跳过：{title}",
    "later.ok": "推迟到下周：{title}",
    "done.again": "之前已标记为已读：{title}",
    "then.next": "下一篇：{title}",
    "pick.none": "没有条目匹配“{words}”。请使用 id（如 arxiv:2310.03744）或标题中的词。",
    "pick.many": "“{words}”匹配到 {count} 项，请指明是哪一项：",
    "pick.nothing": "当前没有可标记的论文，请先发送 /dcml next。",
    "action.gone": "这篇论文已不在指南中，未做更改。",
    "action.unknown": "这个按钮已失效。",
    "busy": "正在处理……稍后给出回复。",
    "unreachable": "无法给 {name}（{who}）发送消息：{error}。机器人不会重试；请确认应用对其可用、其账号正常。",
    "failed": "机器人内部出错，已记录日志供管理员查看，请稍后再试。",
    "progress.header": "你的进度",
    "progress.line": "{level}：已读 {read} / {total}",
    "progress.total": "共已读 {read} / {total} 项，跳过 {skipped} 项",
    "progress.removed": "有 {count} 项已读条目后来从指南中移除，仍保留在你的记录中。",
    "progress.enrolled": "每周论文：开启（{day} {time}，{tz}）",
    "progress.optedout": "每周论文：关闭 — 发送 /dcml start 开启",
    "start.ok": "已加入：每{day} {time}（{tz}）给你发送一篇论文。",
    "start.already": "你已经加入了。",
    "stop.ok": "已关闭每周论文。进度会保留；发送 /dcml start 可重新开启。",
    "stop.already": "每周论文已经是关闭状态。",
    "lang.ok": "语言已设为中文。",
    "lang.bad": "请使用 /dcml lang en 或 /dcml lang zh。",
    "admin.only": "“{command}”仅限实验室管理员使用。",
    "lab.header": "实验室进度（{count} 位成员）",
    "lab.line": "{name}：已读 {read}/{total} · {state} · 下一篇：{next}",
    "lab.enrolled": "已加入",
    "lab.optedout": "已退出",
    "lab.none": "还没有成员。",
    "remind.done": "{week} 的推送：发送 {sent}，已收到 {already}，无可推送 {skipped}，失败 {failed}。",
    "reload.ok": "已重新加载目录：{count} 项，来自 {source}。",
    "reload.same": "目录未变化：{count} 项，来自 {source}。",
    "reload.bad": "新目录未加载；仍在使用之前的目录（{count} 项）。",
    "reload.running": "已有一次重新加载在进行中，开始于 {started}；在此期间仍使用当前目录（{count} 项）。",
    "reload.stopped": "机器人正在停止；目录未重新加载。",
    "enroll.usage": "用法：/dcml enroll <用户 id 或名字>。",
    "enroll.none": "没有成员匹配“{who}”。",
    "enroll.many": "“{who}”匹配到多位成员：{names}。",
    "enroll.ok": "已为 {name} 加入阅读计划。",
    "welcome.header": "欢迎加入实验室，{name}！👋",
    "welcome.body": (
        "实验室有一份入门阅读清单《{guide}》。我是它的机器人：每{day} {time}（{tz}）"
        "给你发送计划中的下一篇论文（先必读），并记住你的阅读进度。你已加入，发送 /dcml stop 可退出。"
    ),
    "welcome.essentials": "必读一览（{count}）",
    "welcome.first": "你的第一篇论文",
    "welcome.usage": "可以随时问我：/dcml 必读 · /dcml rag · /dcml search clip · /dcml help",
    "weekly.header": "📚 {week} 的论文",
    "weekly.body": "目前已读 {done} / {total}。读完后请点击下方按钮。",
    "level.essential": "必读",
    "level.optional": "选读",
    "level.advanced": "进阶",
    "level.unclassified": "未分级",
    "more": "……还有 {count} 项",
    "help.tracks": "研究方向：/dcml tracks · track <方向> [<方向>…] — 你在读 {mine}；/dcml all <关键词> 在所有方向中查找",
    "tracks.header": "{guide} 的研究方向",
    "tracks.line": "{mark} {title} — {name}：{count} 项，必读 {essential}",
    "tracks.common": "所有人都读 {title}（{count} 项）。",
    "tracks.mine": "你在读 {names} 和公共清单。更改：/dcml track <方向> [<方向>…]",
    "tracks.unchosen": "你还没有选择方向，目前只读公共清单。在下方选择，或发送 /dcml track <方向>",
    "tracks.single": "实验室只有一份阅读清单《{guide}》，没有可选的方向。",
    "track.ok": "你现在读 {names} 和公共清单。进度保留；在一个方向读过的论文在所有方向都算已读。",
    "track.common": "你现在只读公共清单。",
    "track.unknown": "没有叫“{word}”的方向。可选方向：{names}。",
    "track.button": "{title}（{count}）",
    "query.scope": "在你的方向中（{names}）；/dcml all {example} 在所有方向中查找。",
    "progress.track": "▸ {title}：已读 {read} / {total}",
    "enroll.tracks": "已为 {name} 加入阅读计划；方向：{names}。",
    "lab.tracks": "方向：{counts}",
    "lab.unchosen": "未选择",
    "home.tracks": "你的方向：{names}。点击按钮切换（读两个方向：/dcml track a b）：",
    "welcome.pick": "你在哪个研究方向？请选择（之后可用 /dcml track 更改）：",
    "welcome.track": "你的方向：{names}（同时阅读公共清单）。",
}

_TABLES: dict[str, dict[str, str]] = {"en": _EN, "zh": _ZH}

WEEKDAYS: dict[str, dict[str, str]] = {
    "en": {
        "mon": "Monday",
        "tue": "Tuesday",
        "wed": "Wednesday",
        "thu": "Thursday",
        "fri": "Friday",
        "sat": "Saturday",
        "sun": "Sunday",
    },
    "zh": {
        "mon": "周一",
        "tue": "周二",
        "wed": "周三",
        "thu": "周四",
        "fri": "周五",
        "sat": "周六",
        "sun": "周日",
    },
}


def text(language: str, key: str, **values: object) -> str:
    """The message ``key`` in a language (English when unknown), formatted with ``values``."""
    table = _TABLES.get(language, _EN)
    return table.get(key, _EN[key]).format(**values)


def weekday(language: str, day: str) -> str:
    """A weekday name (``mon`` …) in a language."""
    return WEEKDAYS.get(language, WEEKDAYS["en"])[day]
