"""The once-only primitive: claim, reconcile a recovered claim, send, confirm or fail."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from dcml_bot.core.once import (
    DROPPED,
    ELSEWHERE,
    FAILED,
    GONE,
    NEVER,
    NO_PLATFORM,
    RECOVERED,
    RUNNING,
    SENT,
    TAKEN,
    UNKNOWN,
    Letter,
    OnceOnly,
    Parcel,
    Retry,
    holder_state,
)
from dcml_bot.core.outbound import SendError
from dcml_bot.core.reply import Reply
from dcml_bot.store import Claim, MemberRecord, Store
from support import Recorder

T0 = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=5)


class Ledger:
    """A prepare callback that records what it was asked and what was confirmed."""

    def __init__(self, once: OnceOnly, now: dt.datetime, *, give: bool = True) -> None:
        self.once, self.now, self.give = once, now, give
        self.claims: list[Claim] = []
        self.confirmed: list[str] = []
        self.rendered = 0

    def __call__(self, claim: Claim) -> Parcel | None:
        self.claims.append(claim)
        if not self.give:
            return None

        def reply() -> Reply:
            self.rendered += 1
            return Reply(header=f"hello {claim.key}")

        def confirm(message_id: str) -> None:
            self.confirmed.append(message_id)
            self.once.mark_sent(claim.key, message_id, self.now)

        return Parcel(reply=reply, confirm=confirm)


@pytest.fixture
def member(store: Store) -> MemberRecord:
    return store.upsert_member("local", "ann", now=T0)


def make(store: Store, recorder: Recorder, worker: str = "w1") -> OnceOnly:
    return OnceOnly(store=store, messengers={"local": recorder}, worker=worker, lease=LEASE)


def test_sends_once_and_a_second_call_finds_the_key_taken(
    store: Store, member: MemberRecord
) -> None:
    recorder = Recorder()
    once = make(store, recorder)
    letter = Letter(key="notice:x:local:ann", kind="notice", member=member)
    ledger = Ledger(once, T0)
    assert once.send(letter, T0, ledger) == SENT
    assert once.send(letter, T0 + dt.timedelta(days=9), ledger) == TAKEN
    assert recorder.keys("ann") == ["notice:x:local:ann"]
    assert ledger.confirmed == ["m1"] and len(ledger.claims) == 1
    row = store.get_outbox(letter.key)
    assert row is not None and (row.status, row.platform_message_id) == ("sent", "m1")


def test_a_live_claim_of_another_worker_is_left_alone(store: Store, member: MemberRecord) -> None:
    recorder = Recorder()
    letter = Letter(key="welcome:local:ann", kind="welcome", member=member)
    assert store.claim(letter.key, member_id=member.id, kind="welcome", worker="w0", now=T0)
    ledger = Ledger(make(store, recorder), T0)
    assert make(store, recorder).send(letter, T0 + dt.timedelta(minutes=1), ledger) == TAKEN
    assert recorder.attempts == [] and ledger.claims == []


def test_a_recovered_claim_already_sent_is_reconciled_not_sent_again(
    store: Store, member: MemberRecord
) -> None:
    recorder = Recorder()
    letter = Letter(key="weekly:local:ann:2026-W49", kind="weekly", member=member, week="W")
    # A run that claimed, sent, then died before confirming.
    store.claim(letter.key, member_id=member.id, kind="weekly", worker="dead", now=T0)
    recorder.send_dm("ann", Reply(header="the paper"), key=letter.key)
    later = T0 + LEASE + dt.timedelta(seconds=1)
    once = make(store, recorder)
    ledger = Ledger(once, later)
    assert once.send(letter, later, ledger) == RECOVERED
    assert recorder.find_calls == [("ann", letter.key)]
    assert len(recorder.sent) == 1 and ledger.rendered == 0
    assert ledger.confirmed == ["m1"] and ledger.claims[0].recovered


def test_a_recovered_claim_never_sent_is_sent_now(store: Store, member: MemberRecord) -> None:
    recorder = Recorder()
    letter = Letter(key="welcome:local:ann", kind="welcome", member=member)
    store.claim(letter.key, member_id=member.id, kind="welcome", worker="dead", now=T0)
    later = T0 + LEASE + dt.timedelta(seconds=1)
    once = make(store, recorder)
    assert once.send(letter, later, Ledger(once, later)) == SENT
    assert recorder.find_calls == [("ann", letter.key)]
    assert recorder.keys("ann") == [letter.key]


def test_a_fresh_claim_does_not_ask_the_platform(store: Store, member: MemberRecord) -> None:
    recorder = Recorder()
    once = make(store, recorder)
    letter = Letter(key="welcome:local:ann", kind="welcome", member=member)
    assert once.send(letter, T0, Ledger(once, T0)) == SENT
    assert recorder.find_calls == []


@pytest.mark.parametrize(
    ("retry", "attempt", "retry_after", "wait"),
    [
        (Retry(first=dt.timedelta(minutes=5)), 1, None, dt.timedelta(minutes=5)),
        (Retry(first=dt.timedelta(minutes=5)), 3, None, dt.timedelta(minutes=5)),
        (
            Retry(dt.timedelta(minutes=2), factor=2, cap=dt.timedelta(hours=6)),
            3,
            None,
            dt.timedelta(minutes=8),
        ),
        (
            Retry(dt.timedelta(minutes=2), factor=2, cap=dt.timedelta(hours=6)),
            12,
            None,
            dt.timedelta(hours=6),
        ),
        (Retry(first=dt.timedelta(minutes=2)), 1, 900.0, dt.timedelta(minutes=15)),
    ],
)
def test_retry_delays(
    retry: Retry, attempt: int, retry_after: float | None, wait: dt.timedelta
) -> None:
    assert retry.delay(attempt, retry_after) == wait
    assert NEVER.delay(attempt, retry_after) is None


def test_a_temporary_failure_is_retried_later_then_sent(store: Store, member: MemberRecord) -> None:
    recorder = Recorder()
    once = make(store, recorder)
    told: list[str] = []
    once.on_unreachable = lambda who, error: told.append(error)
    letter = Letter(key="welcome:local:ann", kind="welcome", member=member)
    recorder.fail["ann"] = SendError("timeout", retry_after=600)
    retry = Retry(first=dt.timedelta(minutes=5))
    assert once.send(letter, T0, Ledger(once, T0), retry=retry) == FAILED
    row = store.get_outbox(letter.key)
    assert row is not None and (row.status, row.last_error) == ("failed", "timeout")
    assert row.retry_at == T0 + dt.timedelta(minutes=10)  # Retry-After beats 5 minutes
    early = T0 + dt.timedelta(minutes=9)
    assert once.send(letter, early, Ledger(once, early), retry=retry) == TAKEN
    del recorder.fail["ann"]
    due = T0 + dt.timedelta(minutes=10)
    assert once.send(letter, due, Ledger(once, due), retry=retry) == SENT
    assert recorder.attempts == [("ann", letter.key)] * 2 and told == []


def test_a_permanent_failure_is_dead_and_the_admins_are_told(
    store: Store, member: MemberRecord
) -> None:
    recorder = Recorder()
    once = make(store, recorder)
    told: list[tuple[str, str]] = []
    once.on_unreachable = lambda who, error: told.append((who.user_id, error))
    recorder.fail["ann"] = SendError("account_inactive", permanent=True)
    letter = Letter(key="weekly:local:ann:W", kind="weekly", member=member, week="W")
    retry = Retry(first=dt.timedelta(minutes=2))
    assert once.send(letter, T0, Ledger(once, T0), retry=retry) == FAILED
    row = store.get_outbox(letter.key)
    assert row is not None and (row.status, row.retry_at) == ("dead", None)
    assert told == [("ann", "account_inactive")]
    later = T0 + dt.timedelta(days=30)
    assert once.send(letter, later, Ledger(once, later), retry=retry) == TAKEN
    assert len(recorder.attempts) == 1


def test_without_retries_a_temporary_failure_is_final_and_unreachable_can_stay_quiet(
    store: Store, member: MemberRecord
) -> None:
    recorder = Recorder()
    once = make(store, recorder)
    told: list[str] = []
    once.on_unreachable = lambda who, error: told.append(error)
    recorder.fail["ann"] = SendError("gone", permanent=True)
    letter = Letter(key="notice:a:local:ann", kind="notice", member=member)
    assert once.send(letter, T0, Ledger(once, T0), tell_unreachable=False) == FAILED
    recorder.fail["ann"] = SendError("timeout")
    other = Letter(key="notice:b:local:ann", kind="notice", member=member)
    assert once.send(other, T0, Ledger(once, T0)) == FAILED
    statuses = [store.get_outbox(k).status for k in (letter.key, other.key)]  # type: ignore[union-attr]
    assert statuses == ["dead", "dead"] and told == []


def test_nothing_to_send_closes_the_claim(store: Store, member: MemberRecord) -> None:
    recorder = Recorder()
    once = make(store, recorder)
    letter = Letter(key="weekly:local:ann:W", kind="weekly", member=member, item_id="gone")
    ledger = Ledger(once, T0, give=False)
    assert once.send(letter, T0, ledger, dropped="paper left the guide") == DROPPED
    row = store.get_outbox(letter.key)
    assert row is not None and (row.status, row.last_error) == (
        "dead",
        "dropped: paper left the guide",
    )
    assert ledger.claims[0].item_id == "gone" and recorder.attempts == []


def test_a_member_of_a_platform_not_running_is_not_claimed(store: Store) -> None:
    slack_member = store.upsert_member("slack", "U1", now=T0)
    once = make(store, Recorder())
    letter = Letter(key="welcome:slack:U1", kind="welcome", member=slack_member)
    assert once.send(letter, T0, Ledger(once, T0)) == NO_PLATFORM
    assert store.get_outbox(letter.key) is None


def race(store: Store, recorder: Recorder, letter: Letter, *, workers: int) -> list[str]:
    """``workers`` OnceOnly senders of one letter, released together; their outcomes."""
    outcomes: list[str] = []
    barrier = threading.Barrier(workers)

    def run(n: int) -> None:
        once = make(store, recorder, worker=f"w{n}")
        barrier.wait()
        outcomes.append(once.send(letter, T0, Ledger(once, T0)))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_workers_racing_send_once(store: Store, member: MemberRecord) -> None:
    recorder = Recorder()
    letter = Letter(key="welcome:local:ann", kind="welcome", member=member)
    assert sorted(race(store, recorder, letter, workers=6)) == [SENT] + [TAKEN] * 5
    assert recorder.keys("ann") == [letter.key]


# --- claims whose holder has ended ---------------------------------------------------------------

HOST = socket.gethostname()


@pytest.fixture(scope="module")
def ended_pid() -> int:
    """The pid of a process of this host that has run and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("already_sent", [True, False])
def test_a_claim_of_a_process_that_ended_is_recovered_at_once(
    store: Store, member: MemberRecord, ended_pid: int, already_sent: bool
) -> None:
    recorder = Recorder()
    letter = Letter(key="weekly:local:ann:2026-W49", kind="weekly", member=member, week="W")
    dead = f"{HOST}:{ended_pid}"
    assert holder_state(dead) == GONE
    assert store.claim(letter.key, member_id=member.id, kind="weekly", worker=dead, now=T0)
    if already_sent:  # it died after sending, before confirming
        recorder.send_dm("ann", Reply(header="the paper"), key=letter.key)
    soon = T0 + dt.timedelta(seconds=1)  # the lease has 4:59 to go
    once = make(store, recorder)
    ledger = Ledger(once, soon)
    assert once.send(letter, soon, ledger) == (RECOVERED if already_sent else SENT)
    assert ledger.claims[0].recovered and ledger.claims[0].attempts == 2
    assert recorder.find_calls == [("ann", letter.key)]  # asked before any send
    assert recorder.keys("ann") == [letter.key] and ledger.rendered == (0 if already_sent else 1)
    row = store.get_outbox(letter.key)
    assert row is not None and (row.status, row.claimed_by) == ("sent", "w1")


@pytest.fixture(scope="module")
def live_pid() -> Iterator[int]:
    """The pid of another process of this host, running for the module's tests."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    ("holder", "state"),
    [
        (lambda ended, live: f"{HOST}:{os.getpid()}", RUNNING),  # this very process
        (lambda ended, live: f"{HOST}:{live}", RUNNING),  # another live process here
        (lambda ended, live: f"{HOST}:1", RUNNING),  # init: alive (PermissionError unless root)
        (lambda ended, live: f"elsewhere-{HOST}:{ended}", ELSEWHERE),  # ended here, not there
        (lambda ended, live: "ghost", UNKNOWN),
        (lambda ended, live: f"{HOST}:0", UNKNOWN),  # os.kill(0, 0) would ask about our group
        (lambda ended, live: f"{HOST}:-1", UNKNOWN),
        (lambda ended, live: f"{HOST}:{2**40}", UNKNOWN),
    ],
    ids=["self", "live", "init", "other-host", "no-pid", "pid-0", "negative", "huge"],
)
def test_a_claim_of_a_live_or_unknown_holder_waits_for_its_lease(
    store: Store,
    member: MemberRecord,
    ended_pid: int,
    live_pid: int,
    holder: Callable[[int, int], str],
    state: str,
) -> None:
    worker = holder(ended_pid, live_pid)
    assert holder_state(worker) == state
    recorder = Recorder()
    letter = Letter(key="welcome:local:ann", kind="welcome", member=member)
    assert store.claim(letter.key, member_id=member.id, kind="welcome", worker=worker, now=T0)
    once = make(store, recorder)
    early = T0 + LEASE - dt.timedelta(seconds=1)
    assert once.send(letter, early, Ledger(once, early)) == TAKEN
    assert recorder.attempts == [] and recorder.find_calls == []
    row = store.get_outbox(letter.key)
    assert row is not None and (row.status, row.claimed_by) == ("claimed", worker)
    expired = T0 + LEASE
    assert once.send(letter, expired, Ledger(once, expired)) == SENT
    assert recorder.find_calls == [("ann", letter.key)]


def test_own_claims_are_never_taken_as_orphaned(
    store: Store, member: MemberRecord, ended_pid: int
) -> None:
    # Even when this worker's id reads as an ended process (it is a name, not a pid here).
    worker = f"{HOST}:{ended_pid}"
    recorder = Recorder()
    letter = Letter(key="welcome:local:ann", kind="welcome", member=member)
    assert store.claim(letter.key, member_id=member.id, kind="welcome", worker=worker, now=T0)
    once = make(store, recorder, worker=worker)
    assert once.send(letter, T0, Ledger(once, T0)) == TAKEN
    without = OnceOnly(
        store=store, messengers={"local": recorder}, worker="w2", lease=LEASE, holder_gone=None
    )
    assert without.send(letter, T0, Ledger(without, T0)) == TAKEN
    assert recorder.attempts == [] and recorder.find_calls == []


def test_workers_racing_over_an_ended_holder_recover_it_once(
    store: Store, member: MemberRecord, ended_pid: int
) -> None:
    recorder = Recorder()
    letter = Letter(key="weekly:local:ann:2026-W49", kind="weekly", member=member, week="W")
    dead = f"{HOST}:{ended_pid}"
    assert store.claim(letter.key, member_id=member.id, kind="weekly", worker=dead, now=T0)
    assert sorted(race(store, recorder, letter, workers=6)) == [SENT] + [TAKEN] * 5
    assert recorder.find_calls == [("ann", letter.key)]
    assert recorder.keys("ann") == [letter.key]
    row = store.get_outbox(letter.key)
    assert row is not None and row.status == "sent" and row.attempts == 2
