"""A platform's lifecycle (platforms/common/runtime.py) on its real pool, inbox and first call."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from dcml_bot.core.bot import Bot
from dcml_bot.core.metrics import Metrics
from dcml_bot.platforms.common.runtime import Runtime
from support import MONDAY_SLOT, Clock, Recorder, make_bot

PLATFORM = "test"


@pytest.fixture
def recorder() -> Recorder:
    """The admins' messenger (platform "local")."""
    return Recorder()


@pytest.fixture
def bot(db_url: str, recorder: Recorder) -> Iterator[Bot]:
    """A bot on the database under test; ``local:boss`` is an admin."""
    made = make_bot(db_url, recorder, Clock(MONDAY_SLOT))
    yield made
    made.close()


class Steps:
    """Records the lifecycle hooks in the order they are called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def hook(self, name: str, then: Callable[[], Any] | None = None) -> Callable[[], None]:
        """A hook that records ``name`` (and calls ``then``, e.g. to fail)."""

        def call() -> None:
            self.calls.append(name)
            if then is not None:
                then()

        return call


def runtime_for(bot: Bot, steps: Steps, *, workers: int = 2, **hooks: Any) -> Runtime:
    """A runtime whose hooks record into ``steps``; ``hooks`` replaces some of them."""
    chosen: dict[str, Any] = {
        "connect": steps.hook("connect"),
        "listen": steps.hook("listen"),
        "disconnect": steps.hook("disconnect"),
        "close": steps.hook("close"),
        **hooks,
    }

    class Hooked(Runtime):
        def _connect(self) -> None:
            chosen["connect"]()

        def _listen(self) -> None:
            chosen["listen"]()

        def _disconnect(self) -> None:
            chosen["disconnect"]()

    messenger = SimpleNamespace(close=chosen["close"])
    return Hooked(PLATFORM, bot, Metrics(), messenger, workers=workers, retry=(0.01, 0.05))


def spy(monkeypatch: pytest.MonkeyPatch, steps: Steps, owner: object, method: str) -> None:
    """Record ``owner.method`` in ``steps`` each time it is called, then call it."""
    real, name = getattr(owner, method), f"{type(owner).__name__}.{method}"

    def recorded(*args: Any) -> Any:
        steps.calls.append(name)
        return real(*args)

    monkeypatch.setattr(owner, method, recorded)


def test_stop_takes_its_five_steps_in_one_order(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps()
    runtime = runtime_for(bot, steps)
    spy(monkeypatch, steps, runtime.first_call, "stop")
    spy(monkeypatch, steps, runtime.inbox, "close")
    spy(monkeypatch, steps, runtime.background, "shutdown")
    runtime.start(wait=10)
    steps.calls.clear()
    runtime.stop(0.5)
    assert steps.calls == [
        "FirstCall.stop",
        "disconnect",
        "close",
        "Inbox.close",
        "Background.shutdown",
    ]
    with pytest.raises(RuntimeError):  # the pool takes no more work
        runtime.submit(steps.calls.append, "late")


def test_stop_called_twice_repeats_its_steps_without_failing(bot: Bot) -> None:
    steps = Steps()
    runtime = runtime_for(bot, steps)
    runtime.start(wait=10)
    runtime.stop()
    runtime.stop()
    assert steps.calls == ["connect", "listen"] + ["disconnect", "close"] * 2
    assert runtime.health() == {"state": "connected"}


def test_start_waits_for_the_first_call_opens_the_connection_and_replays_the_inbox(
    bot: Bot,
) -> None:
    steps = Steps()
    runtime = runtime_for(bot, steps)
    handled: list[str] = []
    runtime.inbox.register("join", handled.append)
    # A join the last run kept but did not handle.
    bot.store.record_event(PLATFORM, "Ev1", bot.clock(), kind="join", payload='{"user": "U1"}')
    try:
        runtime.start(wait=10)
        assert steps.calls == ["connect", "listen"]
        assert runtime.health() == {"state": "connected"}
        runtime.drain()
        assert handled == ['{"user": "U1"}']
        assert bot.store.pending_events(PLATFORM) == []
    finally:
        runtime.stop()


def test_health_says_connecting_while_the_first_call_fails_and_stopped_after(bot: Bot) -> None:
    steps = Steps()
    attempted = threading.Event()

    def down() -> None:
        attempted.set()
        raise ConnectionError("platform down")

    runtime = runtime_for(bot, steps, connect=steps.hook("connect", down))
    runtime.start(wait=0)
    assert attempted.wait(10)
    assert runtime.health()["state"] == "connecting"
    assert "listen" in steps.calls  # serving without it: the connection opens anyway
    runtime.stop()
    health = runtime.health()
    assert health["state"] == "stopped" and "platform down" in str(health["error"])


def test_workers_report_a_pool_whose_every_worker_is_busy(bot: Bot) -> None:
    runtime = runtime_for(bot, Steps(), workers=2)
    release = threading.Event()
    running = [threading.Event(), threading.Event()]
    try:
        for started in running:
            runtime.submit(lambda s=started: (s.set(), release.wait(10)))
        runtime.submit(release.wait, 10)  # queued behind them
        assert all(started.wait(10) for started in running)
        load = runtime.workers()
        assert (load.workers, load.running, load.queued) == (2, 2, 1)
        # all_busy is the newest task's age: it counts only while no worker is free.
        while runtime.workers().all_busy == 0.0:
            time.sleep(0.001)
    finally:
        release.set()
        runtime.drain()
    idle = runtime.workers()
    assert (idle.running, idle.queued, idle.all_busy) == (0, 0, 0.0)
    runtime.stop()


def test_submit_runs_work_on_the_pool(bot: Bot) -> None:
    runtime = runtime_for(bot, Steps())
    future = runtime.submit(lambda a, b: (threading.current_thread().name, a + b), 2, 3)
    thread, total = future.result(timeout=10)
    assert thread.startswith(PLATFORM) and thread != threading.current_thread().name
    assert total == 5
    runtime.stop()


def test_drain_waits_for_queued_work_and_what_it_queued(bot: Bot) -> None:
    runtime = runtime_for(bot, Steps(), workers=1)
    done: list[str] = []
    gate = threading.Event()

    def first() -> None:
        gate.wait(10)
        done.append("first")
        runtime.submit(done.append, "queued by first")

    runtime.submit(first)
    threading.Timer(0.05, gate.set).start()
    runtime.drain()
    assert done == ["first", "queued by first"]
    runtime.stop()


def test_commands_and_events_are_counted_by_outcome(bot: Bot) -> None:
    runtime = runtime_for(bot, Steps())
    runtime.command("ok", time.perf_counter())
    runtime.command("error")
    runtime.event("team_join", "welcomed")
    registry = runtime.metrics.registry

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"platform": PLATFORM, **labels})

    assert value("dcml_commands_total", outcome="ok") == 1.0
    assert value("dcml_commands_total", outcome="error") == 1.0
    assert value("dcml_command_seconds_count") == 1.0  # only the answered one is timed
    assert value("dcml_events_total", type="team_join", outcome="welcomed") == 1.0
    runtime.stop()


def test_a_join_given_up_tells_the_admins_who_it_was_about(bot: Bot, recorder: Recorder) -> None:
    runtime = runtime_for(bot, Steps())

    def fails(payload: str) -> None:
        raise LookupError("profile lookup down")

    runtime.inbox.register("join", fails, lambda payload: ["U1"])
    runtime.inbox.give_up = dt.timedelta(0)  # give up at the first failure
    assert runtime.inbox.accept("join", "Ev2", "{}")
    runtime.drain()
    told = recorder.to("boss")
    assert len(told) == 1
    assert f"{PLATFORM}:U1" in str(told[0]) and "profile lookup down" in str(told[0])
    runtime.stop()
