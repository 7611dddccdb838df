"""Pacing learned from the server's answers: the rate logic on a fake clock, then the real Slack
and Feishu clients against fake APIs that throttle with Retry-After / x-ogw-ratelimit-reset."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dcml_bot.core.metrics import Metrics
from dcml_bot.core.outbound import SendError, Stopping
from dcml_bot.core.reply import Reply
from dcml_bot.platforms.common import pacing as pacing_module
from dcml_bot.platforms.common.pacing import DECREASE, Pacing, Rate, Throttled
from dcml_bot.platforms.feishu.messenger import FeishuMessenger, FeishuOptions
from dcml_bot.platforms.feishu.messenger import make_client as make_feishu_client
from dcml_bot.platforms.slack.messenger import SlackMessenger, SlackOptions, make_client
from fakes.api import FakeAPI, TokenBucket
from fakes.api import Reply as WireReply
from fakes.feishu import fresh_token_cache

__all__ = ["fresh_token_cache"]  # autouse: each test its own lark-oapi token cache

METHOD = "chat.postMessage"


class FakeTime:
    """A clock that only the pacing's sleeps move (plus what a test adds)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def paced(start: float = 10.0, ceiling: float = 1000.0, **options: Any) -> tuple[Pacing, FakeTime]:
    fake = FakeTime()
    pacing = Pacing(
        "test",
        {METHOD: (start, ceiling)},
        per_target=1.0,
        clock=fake.clock,
        sleep=fake.sleep,
        **options,
    )
    return pacing, fake


def throttled_first(times: int, retry_after: float | None = 1.0, **kw: Any) -> Callable[[], str]:
    """A call answered "throttled" ``times`` times, then "ok"."""
    left = [times]

    def call() -> str:
        if left[0] > 0:
            left[0] -= 1
            raise Throttled("429", retry_after=retry_after, **kw)
        return "ok"

    return call


# --- the rate logic ------------------------------------------------------------------------------


def test_a_429_pauses_the_method_retries_the_call_and_lowers_the_rate() -> None:
    pacing, fake = paced(start=10.0)
    limited: list[str] = []
    pacing.on_limited = limited.append
    assert pacing.call(METHOD, throttled_first(1, retry_after=3.0)) == "ok"
    rate = pacing.rate(METHOD)
    assert fake.sleeps == [3.0]  # the pause, then the same call again at once
    assert rate.per_second == pytest.approx(10.0 * DECREASE)
    assert rate.threshold == rate.per_second and rate.decreases == 1
    assert limited == [METHOD]
    # A call made during a pause waits for its end.
    rate.paused_until = fake.now + 2.0
    pacing.call(METHOD, lambda: None)
    assert fake.now == pytest.approx(rate.paused_until)


def test_several_429s_within_one_pause_count_as_one_decrease() -> None:
    rate = Rate(per_second=10.0, ceiling=100.0)
    assert rate.throttle(now=5.0, pause=1.0, sent_at=4.99)
    assert not rate.throttle(now=5.1, pause=1.0, sent_at=4.98)  # arrived during the pause
    assert not rate.throttle(now=6.2, pause=1.0, sent_at=4.97)  # sent before the decrease
    assert rate.per_second == pytest.approx(10.0 * DECREASE) and rate.limited == 3
    assert rate.paused_until == pytest.approx(6.2 + 1.0)
    assert rate.throttle(now=8.0, pause=1.0, sent_at=7.5)  # sent after it: a new overload
    assert rate.per_second == pytest.approx(10.0 * DECREASE**2) and rate.decreases == 2


def test_the_decrease_starts_from_what_the_server_let_through() -> None:
    rate = Rate(per_second=100.0, ceiling=200.0)  # nominal: slow start overshot
    for n in range(1, 41):
        rate.succeeded(n / 40, held=False)  # but 40 calls went through in the last second
    assert rate.throttle(now=1.0, pause=1.0, sent_at=1.0)
    assert rate.per_second == pytest.approx(40.0 * DECREASE, rel=0.05)
    assert rate.threshold == rate.per_second


def test_parallel_429s_make_one_decrease_and_every_call_goes_through_once() -> None:
    pacing = Pacing("test", {METHOD: (1000.0, 1000.0)}, per_target=0.0)
    gate = threading.Barrier(8)
    made: Counter[int] = Counter()

    def call(n: int) -> Callable[[], int]:
        first = [True]

        def attempt() -> int:
            if first[0]:
                first[0] = False
                gate.wait(5)  # all eight are in flight before any answer
                raise Throttled("429", retry_after=0.3)
            made[n] += 1
            return n

        return attempt

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: pacing.call(METHOD, call(n)), range(8)))
    assert results == list(range(8)) and made == Counter(range(8))
    rate = pacing.rate(METHOD)
    assert rate.limited == 8 and rate.decreases == 1
    assert rate.per_second == pytest.approx(1000.0 * DECREASE, rel=0.01)
    assert time.monotonic() - started >= 0.3


def test_slow_start_doubles_about_every_second_while_the_rate_holds_calls() -> None:
    pacing, fake = paced(start=10.0)
    while fake.now < 1.0:
        pacing.call(METHOD, lambda: None)
    assert 1.8 < pacing.rate(METHOD).per_second / 10.0 < 2.3


def test_after_a_429_the_rate_cruises_and_steps_up_rarely() -> None:
    pacing, fake = paced(start=20.0)
    pacing.call(METHOD, throttled_first(1))
    rate = pacing.rate(METHOD)
    cruise = rate.threshold
    assert cruise == pytest.approx(20.0 * DECREASE)
    resumed = fake.now
    while fake.now < resumed + pacing_module.PROBE_EVERY - 0.1:
        pacing.call(METHOD, lambda: None)
    assert rate.per_second == cruise  # no growth between probes
    while fake.now < resumed + 3 * pacing_module.PROBE_EVERY - 0.1:
        pacing.call(METHOD, lambda: None)
    # Two steps of PROBE_GAIN, each after the rate below it held PROBE_EVERY seconds.
    assert rate.per_second == pytest.approx(cruise * (1 + pacing_module.PROBE_GAIN) ** 2)
    assert rate.threshold == pytest.approx(cruise * (1 + pacing_module.PROBE_GAIN))


def test_a_probe_that_meets_the_limit_goes_back_to_the_cruise_and_probes_less_often() -> None:
    rate = Rate(per_second=50.0, ceiling=200.0, threshold=48.0, set_at=10.0, probe_every=4.0)
    for n in range(50):
        rate.succeeded(10.0 + n / 50, held=True)  # 50/s went through
    assert rate.throttle(now=11.0, pause=1.0, sent_at=11.0)
    assert rate.per_second == rate.threshold == 48.0  # not 10 % under it
    assert rate.probe_every == 8.0 and rate.probe_at == pytest.approx(12.0 + 8.0)


def test_a_429_at_the_cruise_steps_down_one_step_if_it_held_else_decreases() -> None:
    gain = pacing_module.PROBE_GAIN
    held = Rate(per_second=48.0, ceiling=200.0, threshold=48.0, set_at=0.0)
    assert held.throttle(now=30.0, pause=1.0, sent_at=30.0)  # held 30 s: a shade too fast
    assert held.per_second == pytest.approx(48.0 / (1 + gain)) and held.probe_every == 8.0
    fell = Rate(per_second=48.0, ceiling=200.0, threshold=48.0, set_at=0.0, probe_every=16.0)
    assert fell.throttle(now=1.0, pause=1.0, sent_at=1.0)  # at once: the limit fell
    assert fell.per_second == pytest.approx(48.0 * DECREASE)
    assert fell.probe_every == pacing_module.PROBE_EVERY


class Bucket:
    """A server's token bucket on the fake clock: ``rate`` calls/s, ``burst`` banked; a refused
    call raises Throttled with an honest Retry-After (whole seconds until a token, at least 1)."""

    def __init__(self, fake: FakeTime, rate: float, burst: float) -> None:
        self.fake, self.rate, self.burst = fake, rate, burst
        self.tokens, self.at = burst, fake.now
        self.served = self.refused = 0

    def call(self) -> None:
        self.fake.now += 0.002  # the request's own time
        self.tokens = min(self.burst, self.tokens + (self.fake.now - self.at) * self.rate)
        self.at = self.fake.now
        if self.tokens < 1.0:
            self.refused += 1
            wait = (1.0 - self.tokens) / self.rate
            raise Throttled("429", retry_after=max(1, math.ceil(wait)))
        self.tokens -= 1.0
        self.served += 1


def run_for(pacing: Pacing, fake: FakeTime, bucket: Bucket, seconds: float) -> float:
    """Calls one after another for ``seconds``; the calls/s the server served in that time."""
    start, served = fake.now, bucket.served
    while fake.now < start + seconds:
        pacing.call(METHOD, bucket.call)
    return (bucket.served - served) / (fake.now - start)


def test_against_a_bucket_the_rate_settles_under_the_limit_with_few_429s() -> None:
    pacing, fake = paced(start=50.0, ceiling=200.0)
    bucket = Bucket(fake, rate=100.0, burst=10.0)  # a burst of 0.1 s: each 429 idles ~0.9 s
    run_for(pacing, fake, bucket, 30.0)
    found = bucket.refused
    assert 1 <= found <= 3  # slow start's end, and at most a failed probe or two
    served = run_for(pacing, fake, bucket, 300.0)
    rate = pacing.rate(METHOD)
    assert rate.threshold is not None and 90.0 <= rate.threshold <= 101.0
    assert served >= 95.0  # within 5 % of the limit, pauses included
    assert bucket.refused - found <= 300.0 / pacing_module.PROBE_MAX + 3  # probes, backed off


def test_a_limit_that_rises_later_is_found_again_and_one_that_falls_is_followed() -> None:
    pacing, fake = paced(start=50.0, ceiling=1000.0)
    bucket = Bucket(fake, rate=100.0, burst=10.0)
    run_for(pacing, fake, bucket, 120.0)
    bucket.rate = 150.0
    run_for(pacing, fake, bucket, 400.0)
    rate = pacing.rate(METHOD)
    assert 130.0 <= rate.per_second <= 155.0
    assert run_for(pacing, fake, bucket, 60.0) >= 130.0
    bucket.rate = 50.0
    refused = bucket.refused
    run_for(pacing, fake, bucket, 60.0)
    # A third of the limit: one 429 per 10 % decrease (calls after a pause are too few to
    # measure), each free here since 150/s refills the burst within the pause.
    assert rate.per_second <= 52.0 and bucket.refused - refused <= 15
    assert run_for(pacing, fake, bucket, 60.0) >= 45.0


def test_a_late_call_is_made_up_for_but_an_idle_method_starts_its_schedule_afresh() -> None:
    pacing, fake = paced(start=10.0, ceiling=10.0)
    starts: list[float] = []
    for _ in range(5):
        pacing.call(METHOD, lambda: starts.append(fake.now))
    fake.now += 0.25  # the caller was busy: 2.5 intervals late
    for _ in range(10):
        pacing.call(METHOD, lambda: starts.append(fake.now))
    assert starts[5] == starts[6] == pytest.approx(0.65)  # the late call, and one to make it up
    assert starts[-1] == pytest.approx(1.4)  # 15 calls on the 10/s schedule: nothing lost
    fake.now += 0.5  # 5 intervals: too late to make up (and idle methods must not burst)
    begin = len(starts)
    for _ in range(3):
        pacing.call(METHOD, lambda: starts.append(fake.now))
    assert [t - starts[begin] for t in starts[begin:]] == pytest.approx([0.0, 0.1, 0.2])


def test_after_a_long_idle_the_rate_slow_starts_again() -> None:
    pacing, fake = paced(start=20.0)
    pacing.call(METHOD, throttled_first(1))
    rate = pacing.rate(METHOD)
    fake.now += pacing_module.IDLE_RESTART + 1
    before = rate.per_second
    for _ in range(5):
        pacing.call(METHOD, lambda: None)
    assert rate.threshold is None
    assert rate.per_second == pytest.approx(before + 4 * pacing_module.SLOW_START_STEP)


def test_the_rate_stops_at_its_ceiling() -> None:
    pacing, fake = paced(start=10.0, ceiling=15.0)
    while fake.now < 3.0:
        pacing.call(METHOD, lambda: None)
    assert pacing.rate(METHOD).per_second == 15.0


def test_the_rate_grows_only_when_it_held_the_caller() -> None:
    pacing, fake = paced(start=10.0)

    def slow() -> None:
        fake.now += 0.5  # the caller needs longer than the rate's 0.1 s

    for _ in range(10):
        pacing.call(METHOD, slow)
    assert pacing.rate(METHOD).per_second == 10.0 and fake.sleeps == []


def test_a_per_target_429_pauses_that_target_only() -> None:
    fake = FakeTime()
    other: list[float] = []
    asked = []

    def sleep(seconds: float) -> None:
        if not asked:  # while ou_a sleeps its pause, a call to ou_b
            asked.append(seconds)
            pacing.call(METHOD, lambda: other.append(fake.now), target="ou_b")
        fake.sleep(seconds)

    pacing = Pacing("test", {METHOD: (100.0, 100.0)}, per_target=0.0, clock=fake.clock, sleep=sleep)
    assert pacing.call(METHOD, throttled_first(1, target_only=True), target="ou_a") == "ok"
    assert other == [pytest.approx(0.01)]  # ou_b went at the method's rate: no pause
    assert fake.sleeps[-1] == 1.0  # ou_a waited the default pause, then went
    rate = pacing.rate(METHOD)
    assert rate.paused_until == 0.0 and rate.decreases == 0 and rate.limited == 0


def test_a_call_throttled_for_too_long_raises_send_error_with_retry_after() -> None:
    pacing, fake = paced(max_throttled=5.0)
    calls = [0]

    def always() -> None:
        calls[0] += 1
        raise Throttled("429", retry_after=2.0)

    with pytest.raises(Throttled) as caught:
        pacing.call(METHOD, always)
    assert isinstance(caught.value, SendError) and not caught.value.permanent
    assert caught.value.retry_after == 2.0
    assert calls[0] == 3 and fake.now == pytest.approx(4.0)  # 0, 2, 4; a pause to 6 is past 5
    # A new call during a pause longer than the bound does not wait it out either.
    pacing.rate(METHOD).paused_until = fake.now + 60
    with pytest.raises(Throttled):
        pacing.call(METHOD, lambda: None)
    assert calls[0] == 3


def test_close_wakes_every_waiter_at_once() -> None:
    pacing = Pacing("test", {METHOD: (0.01, 1.0), "other": (1.0, 1.0)}, per_target=0.0)
    pacing.call(METHOD, lambda: None)  # the next call of METHOD is 100 s away
    outcomes: list[BaseException] = []

    def run(method: str, call: Callable[[], object]) -> None:
        try:
            pacing.call(method, call)
        except BaseException as exc:
            outcomes.append(exc)

    waiters = [
        threading.Thread(target=run, args=(METHOD, lambda: None)),  # waits for its turn
        threading.Thread(target=run, args=("other", throttled_first(1, retry_after=60))),
    ]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.2)
    assert pacing.rate("other").paused_until > time.monotonic() + 50  # sleeping the pause
    started = time.monotonic()
    pacing.close()
    pacing.close()  # idempotent
    for waiter in waiters:
        waiter.join(5)
    assert time.monotonic() - started < 1.0
    assert len(outcomes) == 2
    assert all(isinstance(e, Stopping) and not e.permanent for e in outcomes)
    assert all("stopping" in str(e) for e in outcomes)
    with pytest.raises(Stopping):
        pacing.call("other", lambda: None)


# --- at the wire: Slack --------------------------------------------------------------------------


def args(request: dict[str, Any]) -> dict[str, Any]:
    """A Web API call's arguments, from the query or the (form or JSON) body."""
    body = request["body"] if isinstance(request["body"], dict) else {}
    return {**request["query"], **body}


def errors(metrics: Metrics, where: str) -> float | None:
    return metrics.registry.get_sample_value("dcml_errors_total", {"where": where})


class ThrottlingSlack(FakeAPI):
    """chat.postMessage limited by a token bucket (429 ``ratelimited`` + Retry-After); the
    other methods unlimited; ``pause_first``: answer the first post 429 whatever the bucket."""

    def __init__(self, bucket: TokenBucket, *, pause_first: bool = False) -> None:
        super().__init__(record=False)
        self.bucket = bucket
        self.pause_first = pause_first
        self.posts: Counter[str] = Counter()
        self.limited = 0
        self.times: dict[str, float] = {}
        self.routes.update(
            {
                "/api/conversations.open": self._open,
                "/api/chat.postMessage": self._post,
                "/api/users.info": self._user,
            }
        )

    def _open(self, request: dict[str, Any]) -> WireReply:
        return 200, {"ok": True, "channel": {"id": "D" + args(request)["users"]}}, {}

    def _user(self, request: dict[str, Any]) -> WireReply:
        return 200, {"ok": True, "user": {"id": args(request)["user"]}}, {}

    def _post(self, request: dict[str, Any]) -> WireReply:
        wait = self.bucket.take()
        with self.lock:
            if self.pause_first:
                self.pause_first, wait = False, 0.5
            if wait:
                self.limited += 1
                retry_after = str(max(1, int(wait + 0.999)))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": retry_after}
            self.posts[args(request)["channel"]] += 1
            self.times.setdefault("first post", time.monotonic())
        return 200, {"ok": True, "ts": f"{time.time():.6f}"}, {}


@pytest.fixture
def slack_fake() -> Iterator[ThrottlingSlack]:
    fake = ThrottlingSlack(TokenBucket(20.0, 10.0)).start()
    yield fake
    fake.stop()


def slack_messenger(fake: FakeAPI, metrics: Metrics | None = None) -> SlackMessenger:
    options = SlackOptions(bot_token="xoxb-test", api_url=fake.base + "/api/")
    return SlackMessenger(make_client(options), metrics=metrics)


def test_slack_posts_every_message_once_through_429s(slack_fake: ThrottlingSlack) -> None:
    metrics = Metrics()
    messenger = slack_messenger(slack_fake, metrics)
    rate = messenger.pacing.rate(METHOD)
    rate.per_second = 100.0  # above the fake's 20/s (burst 10): it must learn
    messenger.pacing.rate("conversations.open").per_second = 1000.0
    users = [f"U0P{i:02d}" for i in range(15)]
    with ThreadPoolExecutor(3) as pool:
        ids = list(pool.map(lambda u: messenger.send_dm(u, Reply(header=u), key=u), users))
    assert len(set(ids)) == len(users)
    assert slack_fake.posts == Counter({"D" + u: 1 for u in users})
    assert slack_fake.limited >= 1
    assert rate.decreases >= 1 and rate.per_second < 100.0 and rate.threshold is not None
    assert rate.limited == slack_fake.limited
    opened = messenger.pacing.rate("conversations.open")
    assert opened.limited == 0 and opened.paused_until == 0.0
    assert errors(metrics, f"slack.rate_limited:{METHOD}") == slack_fake.limited


def test_slack_pause_holds_its_method_only() -> None:
    fake = ThrottlingSlack(TokenBucket(100.0, 100.0), pause_first=True).start()
    try:
        messenger = slack_messenger(fake)
        messenger.channel("U0A")  # opened before: the send is chat.postMessage only
        started = time.monotonic()
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(messenger.send_dm, "U0A", Reply(header="hi"), key="k")
            time.sleep(0.2)  # the post met its 429 and sleeps through Retry-After
            assert not sending.done()
            assert messenger.profile("U0B")["id"] == "U0B"  # users.info: not paused
            asked = time.monotonic()
            assert sending.result(5)
        assert asked - started < 0.5
        assert fake.times["first post"] - started >= 1.0  # after Retry-After: 1
        assert fake.posts == Counter({"DU0A": 1}) and fake.limited == 1
        assert messenger.pacing.rate("users.info").limited == 0
    finally:
        fake.stop()


def test_slack_close_interrupts_a_send_waiting_out_a_pause() -> None:
    fake = ThrottlingSlack(TokenBucket(0.01, 0.0)).start()  # the next token: in 100 s
    try:
        messenger = slack_messenger(fake)
        messenger.channel("U0A")
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(messenger.send_dm, "U0A", Reply(header="hi"), key="k")
            time.sleep(0.3)
            started = time.monotonic()
            messenger.close()
            with pytest.raises(Stopping):
                sending.result(5)
            assert time.monotonic() - started < 1.0
        assert fake.posts == Counter() and fake.limited == 1
    finally:
        fake.stop()


# --- at the wire: Feishu -------------------------------------------------------------------------

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
MESSAGES = "/open-apis/im/v1/messages"
CREATE = "im.message.create"


class ThrottlingFeishu(FakeAPI):
    """Token and message create; the app limited by a bucket (HTTP 429, code 99991400 and
    ``x-ogw-ratelimit-reset``), and ``busy`` receivers answered 230020 once each."""

    def __init__(self, bucket: TokenBucket, busy: tuple[str, ...] = ()) -> None:
        super().__init__(record=False)
        self.bucket = bucket
        self.busy = set(busy)
        self.sent: Counter[str] = Counter()
        self.uuids: set[str] = set()
        self.limited = 0
        self.times: dict[str, float] = {}
        self.routes.update(
            {
                TOKEN_PATH: lambda r: (
                    200,
                    {"code": 0, "msg": "ok", "tenant_access_token": "t-x", "expire": 7200},
                    {},
                ),
                MESSAGES: self._send,
            }
        )

    def _send(self, request: dict[str, Any]) -> WireReply:
        receiver = request["body"]["receive_id"]
        wait = self.bucket.take()
        with self.lock:
            if wait:
                self.limited += 1
                reset = str(max(1, int(wait + 0.999)))
                headers = {"x-ogw-ratelimit-limit": "50", "x-ogw-ratelimit-reset": reset}
                return 429, {"code": 99991400, "msg": "request trigger frequency limit"}, headers
            if receiver in self.busy:
                self.busy.discard(receiver)
                return 400, {"code": 230020, "msg": "This chat is busy"}, {}
            assert request["body"]["uuid"] not in self.uuids
            self.uuids.add(request["body"]["uuid"])
            self.sent[receiver] += 1
            self.times[receiver] = time.monotonic()
            count = sum(self.sent.values())
        return 200, {"code": 0, "msg": "success", "data": {"message_id": f"om_{count}"}}, {}


def feishu_messenger(fake: FakeAPI, metrics: Metrics | None = None) -> FeishuMessenger:
    options = FeishuOptions(
        app_id="cli_" + uuid.uuid4().hex[:12], app_secret="secret", domain=fake.base
    )
    return FeishuMessenger(make_feishu_client(options), metrics=metrics)


def test_feishu_sends_every_message_once_through_app_limits() -> None:
    fake = ThrottlingFeishu(TokenBucket(20.0, 5.0)).start()
    try:
        metrics = Metrics()
        messenger = feishu_messenger(fake, metrics)
        rate = messenger.pacing.rate(CREATE)
        assert rate.per_second == 50.0  # its start: above the fake's 20/s (burst 5)
        users = [f"ou_{i:02d}" for i in range(10)]
        with ThreadPoolExecutor(3) as pool:
            ids = list(pool.map(lambda u: messenger.send_dm(u, Reply(header=u), key=u), users))
        assert len(set(ids)) == len(users)
        assert fake.sent == Counter(dict.fromkeys(users, 1))
        assert fake.limited >= 1 and rate.limited == fake.limited
        assert rate.decreases >= 1 and rate.per_second < rate.ceiling
        assert errors(metrics, f"feishu.rate_limited:{CREATE}") == fake.limited
    finally:
        fake.stop()


def test_feishu_per_user_limit_pauses_that_user_only() -> None:
    fake = ThrottlingFeishu(TokenBucket(100.0, 100.0), busy=("ou_busy",)).start()
    try:
        messenger = feishu_messenger(fake)
        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            busy = pool.submit(messenger.send_dm, "ou_busy", Reply(header="a"), key="a")
            time.sleep(0.2)
            other = pool.submit(messenger.send_dm, "ou_free", Reply(header="b"), key="b")
            assert other.result(5) and busy.result(5)
        assert fake.times["ou_free"] - started < 0.8  # not held by ou_busy's pause
        assert fake.times["ou_busy"] - started >= 1.0  # its own pause: a second by default
        assert fake.sent == Counter({"ou_busy": 1, "ou_free": 1})
        rate = messenger.pacing.rate(CREATE)
        assert rate.decreases == 0 and rate.paused_until == 0.0
    finally:
        fake.stop()
