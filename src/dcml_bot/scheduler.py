"""Background jobs: the weekly paper, catch-up ticks, retries and catalog refresh (APScheduler)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dcml_bot.delivery import DeliveryReport
from dcml_bot.i18n import text
from dcml_bot.library import ReloadResult
from dcml_bot.messages import ContextBlock, Reply, TextBlock
from dcml_bot.outbound import SendError

if TYPE_CHECKING:
    from dcml_bot.app import Bot
    from dcml_bot.store import MemberRecord

log = logging.getLogger(__name__)

WEEKLY_JOB, TICK_JOB, REFRESH_JOB, PRUNE_JOB = "weekly", "catch-up", "catalog-refresh", "prune"
# Feishu retries an event for about 7 hours and Slack for minutes; a week is ample.
EVENT_MEMORY = dt.timedelta(days=7)
# With catch_up off, a slot is still served this long after it passed (a restart, a slow tick).
NO_CATCH_UP = dt.timedelta(hours=1)


class Jobs:
    """The bot's periodic work as plain methods, so tests and the CLI can run them directly."""

    def __init__(
        self,
        bot: Bot,
        *,
        on_report: Callable[[DeliveryReport], None] | None = None,
    ) -> None:
        self.bot = bot
        self.on_report = on_report
        self._running = threading.Lock()

    def deliver(self) -> DeliveryReport | None:
        """Serve every member whose slot has passed and whose week is not sent yet."""
        if not self._running.acquire(blocking=False):
            log.info("weekly delivery already running; this tick is skipped")
            return None
        try:
            now = self.bot.clock()
            catch_up = self.bot.settings.delivery.catch_up
            report = self.bot.delivery.deliver(now, late_limit=None if catch_up else NO_CATCH_UP)
            self.retry_welcomes(now)
        finally:
            self._running.release()
        done = {
            k: v for k, v in report.outcomes.items() if k not in {"not-due", "already", "missed"}
        }
        if done:
            log.info("weekly delivery: %s", ", ".join(f"{k} {v}" for k, v in sorted(done.items())))
        if self.on_report is not None:
            self.on_report(report)
        return report

    def retry_welcomes(self, now: dt.datetime) -> int:
        """Send again the welcomes that failed for a temporary reason; returns how many went."""
        sent = 0
        for row in self.bot.store.due_retries(now, kind="welcome"):
            member = self.bot.store.get_member_by_id(row.member_id)
            if member is not None and self.bot.onboarding.welcome(member, now) == "welcomed":
                sent += 1
        return sent

    def refresh_catalog(self) -> ReloadResult:
        """Fetch the catalog again; tell the admins once about each new problem."""
        result = self.bot.library.reload()
        if result.status == "rejected":
            self.tell_admins_rejected(result)
        return result

    def tell_admins_rejected(self, result: ReloadResult) -> int:
        """DM every admin why a new catalog was refused, once per distinct set of reasons."""
        digest = hashlib.sha256("\n".join(result.errors).encode()).hexdigest()[:16]
        count = len(result.catalog.entries) if result.catalog else 0

        def reply(lang: str) -> Reply:
            return Reply(
                blocks=(
                    TextBlock(text=text(lang, "reload.bad", count=count)),
                    ContextBlock(lines=result.errors[:10]),
                )
            )

        return self.notify_admins(f"catalog-rejected:{digest}", reply)

    def tell_admins_unreachable(self, member: MemberRecord, error: str) -> int:
        """DM every admin, once per member, that a member cannot be messaged at all."""
        who = f"{member.platform}:{member.user_id}"

        def reply(lang: str) -> Reply:
            name = member.display_name or member.user_id
            return Reply(
                blocks=(TextBlock(text=text(lang, "unreachable", name=name, who=who, error=error)),)
            )

        return self.notify_admins(f"unreachable:{who}", reply)

    def notify_admins(self, topic: str, reply: Callable[[str], Reply]) -> int:
        """Send each admin one message about ``topic``, ever (guarded by the outbox)."""
        now, sent = self.bot.clock(), 0
        worker = self.bot.delivery.worker
        for admin in self.bot.settings.admins:
            platform, _, user_id = admin.partition(":")
            messenger = self.bot.messengers.get(platform)
            if messenger is None or not user_id:
                continue
            member = self.bot.member(platform, user_id)
            key = f"notice:{topic}:{platform}:{user_id}"
            claim = self.bot.store.claim(
                key, member_id=member.id, kind="notice", worker=worker, now=now
            )
            if claim is None:
                continue
            try:
                # A claim left by a crashed run: the notice may have gone out already.
                found = messenger.find_sent(user_id, key) if claim.recovered else None
                message_id = found or messenger.send_dm(
                    user_id, reply(self.bot.profiles.language(member)), key=key
                )
            except SendError as exc:
                self.bot.store.mark_failed(
                    key, worker=worker, error=str(exc), retry_at=None, dead=True, now=now
                )
                log.warning("could not tell admin %s about %s: %s", admin, topic, exc)
                continue
            self.bot.store.mark_sent(key, worker=worker, platform_message_id=message_id, now=now)
            sent += 1
        return sent

    def prune(self) -> int:
        """Forget processed inbound event ids older than the platforms' retry windows."""
        return self.bot.store.prune_events(self.bot.clock() - EVENT_MEMORY)


class Scheduler:
    """Runs ``Jobs`` on APScheduler's background thread, in the lab's time zone."""

    def __init__(
        self,
        jobs: Jobs,
        *,
        tick_minutes: int = 15,
        first_tick: dt.timedelta = dt.timedelta(seconds=5),
    ) -> None:
        settings = jobs.bot.settings
        self.jobs = jobs
        self._scheduler = BackgroundScheduler(
            timezone=settings.timezone,
            # Overlapping or missed runs collapse into one; the outbox makes extra runs harmless.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )
        at = settings.delivery.time
        self._scheduler.add_job(
            jobs.deliver,
            CronTrigger(
                day_of_week=settings.delivery.day,
                hour=at.hour,
                minute=at.minute,
                timezone=settings.timezone,
            ),
            id=WEEKLY_JOB,
            name="weekly paper",
        )
        # Members in other time zones, weeks missed while down, and temporary failures are
        # served by this tick; it is cheap when nothing is due.
        self._scheduler.add_job(
            jobs.deliver,
            IntervalTrigger(minutes=tick_minutes),
            id=TICK_JOB,
            name="catch-up and retries",
            # Soon after start, so a week missed while the bot was down goes out now.
            next_run_time=dt.datetime.now(dt.UTC) + first_tick,
        )
        if settings.catalog_is_url and settings.catalog_refresh_minutes > 0:
            self._scheduler.add_job(
                jobs.refresh_catalog,
                IntervalTrigger(minutes=settings.catalog_refresh_minutes),
                id=REFRESH_JOB,
                name="catalog refresh",
            )
        self._scheduler.add_job(
            jobs.prune, IntervalTrigger(hours=6), id=PRUNE_JOB, name="forget old event ids"
        )

    def start(self) -> None:
        """Start the background thread."""
        self._scheduler.start()
        log.info("scheduler started; next weekly run %s", self.next_run())

    def shutdown(self) -> None:
        """Stop, letting a running job finish."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def next_run(self, job_id: str = WEEKLY_JOB) -> dt.datetime | None:
        """When a job fires next (the weekly paper by default)."""
        job = self._scheduler.get_job(job_id)
        if job is None:
            return None
        when: dt.datetime | None = getattr(job, "next_run_time", None)
        if when is None:
            # Before start() APScheduler has not computed it yet; ask the trigger.
            now = dt.datetime.now(dt.UTC)
            when = job.trigger.get_next_fire_time(None, now)
        return when

    def job_ids(self) -> list[str]:
        """The scheduled jobs."""
        return [job.id for job in self._scheduler.get_jobs()]
