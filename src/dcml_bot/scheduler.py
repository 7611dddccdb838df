"""Runs the bot's jobs on APScheduler: the weekly slot, the weekly review (digest), catch-up ticks,
refresh and pruning."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dcml_bot.core.jobs import Jobs
from dcml_bot.settings import Settings

log = logging.getLogger(__name__)

WEEKLY_JOB, TICK_JOB, REFRESH_JOB, PRUNE_JOB = "weekly", "catch-up", "catalog-refresh", "prune"
REVIEW_JOB = "weekly-review"
# Ticks missed in a row before /healthz calls the scheduler stale.
STALE_TICKS = 2


class Scheduler:
    """Runs ``Jobs`` on APScheduler's background thread, in the lab's time zone."""

    def __init__(
        self,
        jobs: Jobs,
        settings: Settings,
        *,
        tick_minutes: float = 15,
        first_tick: dt.timedelta = dt.timedelta(seconds=5),
    ) -> None:
        self.jobs = jobs
        self.tick = dt.timedelta(minutes=tick_minutes)
        self.first_tick = min(first_tick, self.tick)
        self._started: float | None = None  # time.monotonic() at start()
        self._last_tick: tuple[float, dt.datetime] | None = None  # the last delivery run done
        self._scheduler = BackgroundScheduler(
            timezone=settings.timezone,
            # Overlapping or missed runs collapse into one; the outbox makes extra runs harmless.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )

        def weekly(day: str, at: dt.time) -> CronTrigger:
            return CronTrigger(
                day_of_week=day, hour=at.hour, minute=at.minute, timezone=settings.timezone
            )

        self._scheduler.add_job(
            jobs.deliver,
            weekly(settings.delivery.day, settings.delivery.time),
            id=WEEKLY_JOB,
            name="weekly paper",
        )
        # The lab channel's digest and the admins' needs-attention DM, at the digest's slot.
        self._scheduler.add_job(
            jobs.review,
            weekly(settings.digest.day, settings.digest.time),
            id=REVIEW_JOB,
            name="weekly digest and needs attention",
        )
        # Members in other time zones, weeks missed while down, and temporary failures are
        # served by this tick; it is cheap when nothing is due.
        self._scheduler.add_job(
            jobs.deliver,
            IntervalTrigger(seconds=self.tick.total_seconds()),
            id=TICK_JOB,
            name="catch-up and retries",
            # Soon after start, so a week missed while the bot was down goes out now.
            next_run_time=dt.datetime.now(dt.UTC) + self.first_tick,
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
        self._scheduler.add_listener(self._ran, EVENT_JOB_EXECUTED)

    def _ran(self, event: JobExecutionEvent) -> None:
        # A delivery run that returned None was skipped (another still runs): not a tick done.
        if event.job_id in {WEEKLY_JOB, TICK_JOB} and event.retval is not None:
            self._last_tick = (time.monotonic(), dt.datetime.now(dt.UTC))

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether delivery runs complete: not once it has stopped, nor when STALE_TICKS ticks in
        a row have not (they failed, or one run hangs); counted from the first tick till one has."""
        last = self._last_tick
        since = last[0] if last else self._started
        if since is not None and last is None:
            since += self.first_tick.total_seconds()
        late = time.monotonic() - since if since is not None else 0.0
        stale = late > STALE_TICKS * self.tick.total_seconds()
        running = self._scheduler.running
        return not stale and (running or self._started is None), {
            "running": running,
            "last_tick": last[1].isoformat() if last else None,
            "stale": stale,
        }

    def start(self) -> None:
        """Start the background thread."""
        self._started = time.monotonic()
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
