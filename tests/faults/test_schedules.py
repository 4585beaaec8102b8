"""Schedule triggers under faults, with several replicas of one namespace: every tick fires
once, whichever replicas live, and ticks due while none did follow the trigger's policy.

Each test prints its ledger: ticks due, fired, lost, duplicated, missed.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from tests.conftest import Router, unique
from tests.faults.conftest import Service


def fired_ticks(router: Router, function: str) -> Counter[int]:
    """How many times each tick ran, from the Scheduled Events the handler recorded."""
    times = (run["event"]["time"] for run in router.ledger(function))
    return Counter(
        int(datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
        for t in times
    )


def claimed(router: Router, trigger: str) -> range:
    """The ticks from the schedule's first to the latest some replica claimed or passed."""
    state = router.redis.hmget(f"{router.namespace}:schedule:{trigger}", "anchor", "cursor")
    anchor, cursor = (int(value or 0) for value in state)
    return range(anchor, cursor + 1)


def wait_settled(router: Router, function: str, trigger: str, due: range) -> Counter[int]:
    """Until every tick in `due` ran or was counted missed (a claim whose replica died is
    taken over once its lease runs out, ~10 s), or 30 s are up."""
    deadline = time.monotonic() + 30
    while True:
        runs = fired_ticks(router, function)
        missed = router.metric("router_schedule_ticks_missed_total", trigger=trigger)
        if len(set(due) & set(runs)) + missed >= len(due) or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)


def report(name: str, due: range, runs: Counter[int], missed: float) -> tuple[int, int]:
    """Lost: neither fired nor counted as missed."""
    lost = len(set(due) - set(runs)) - int(missed)
    duplicated = sum(count - 1 for tick, count in runs.items() if tick in due and count > 1)
    print(
        f"\n[{name}] ticks={len(due)} fired={sum(runs[t] for t in due)} lost={lost} "
        f"duplicated={duplicated} missed={missed:.0f}"
    )
    return lost, duplicated


def test_three_replicas_one_killed_halfway_fire_every_second_once(replicas: list[Service]) -> None:
    routers = [service.start() for service in replicas]
    function, trigger = unique("tick"), unique("every-second")
    routers[0].put_function(function, handler="testfns:record", isolation="thread")
    routers[0].put_trigger(trigger, function=function, type="schedule", schedule="rate(1 second)")
    time.sleep(7.5)
    replicas[1].kill()  # SIGKILL: whatever it had claimed and not yet queued is left behind
    time.sleep(7.5)
    due = claimed(routers[0], trigger)
    runs = wait_settled(routers[0], function, trigger, due)
    survivors = (routers[0], routers[2])
    missed = sum(r.metric("router_schedule_ticks_missed_total", trigger=trigger) for r in survivors)
    lost, duplicated = report("schedule, 3 replicas, 1 killed", due, runs, missed)
    assert len(due) >= 14  # 15 s of rate(1 second)
    assert lost == 0
    assert duplicated == 0
    assert missed == 0
    assert all(r.metric("router_schedule_ticks_fired_total", trigger=trigger) for r in survivors)


def test_ticks_due_while_every_replica_was_down_are_missed_or_fired_never_both(
    replicas: list[Service],
) -> None:
    """The only replica killed for 8 s on rate(1 second): when one is back, ticks older than
    their grace (5 s) count as missed, the newer ones fire, once; none is lost silently."""
    router = replicas[0].start()
    function, trigger = unique("tick"), unique("every-second")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(trigger, function=function, type="schedule", schedule="rate(1 second)")
    time.sleep(3)
    replicas[0].kill()
    time.sleep(8)
    router = replicas[1].start()
    time.sleep(3)
    due = claimed(router, trigger)
    runs = wait_settled(router, function, trigger, due)
    missed = router.metric("router_schedule_ticks_missed_total", trigger=trigger)
    lost, duplicated = report("schedule, every replica down 8 s", due, runs, missed)
    assert missed > 0
    assert lost == 0  # every tick fired, or counted as missed
    assert duplicated == 0
