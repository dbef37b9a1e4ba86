"""The sink is exactly once across crashes.

The emulator keeps posting while a sink daemon (small flush size, short flush interval, so objects
are being written all the time) is SIGKILLed several times at random moments and restarted each
time. A final `sink --until-caught-up` then drains the rest. The landing zone must hold every
record exactly once: the landed row multisets equal CPython's draws, and each partition's objects
chain from offset 0 to its end offset with no gap and no overlap.
"""

from __future__ import annotations

import collections
import random
import time

from conftest import (
    BOOTSTRAP,
    TABLES,
    Landing,
    check_contiguous,
    counter_diff,
    create_topics,
    drawn_rows,
    landed_rows,
    read_landing,
    run_sink_until_caught_up,
    wait_for,
)

EVENTS = 1500
SEED = 4242
KILLS = 5
FLUSH_SIZE = 7
FLUSH_INTERVAL = "0.3"


def test_sink_survives_sigkill_exactly_once(uid, bucket, procs):
    create_topics(uid, partitions=2)
    gw = procs.gateway(uid)
    emulator = procs.start(
        "emulator", "emulate", "batch", "--user-id", uid, "--gateway", gw.url, "--events", EVENTS,
        "--seed", SEED, "--no-sleep", "--concurrency", 2, "--quiet", "--json",
    )
    landing_url = f"s3://{bucket}"
    landing = Landing(landing_url)
    chooser = random.Random()  # the kill moments: printed, so a failing run can be reasoned about
    kills = []
    for i in range(KILLS + 1):
        sink = procs.start(
            "sink", "sink", "--user-id", uid, "--bootstrap-servers", BOOTSTRAP, "--landing", landing_url,
            "--flush-size", FLUSH_SIZE, "--flush-interval", FLUSH_INTERVAL, "--json",
        )
        before = landing.count()

        # Wait until this sink is writing (it has joined the group and created an object), then
        # kill it a random moment later. No timing is asserted: the deadline only bounds the wait.
        def writing():
            if not sink.running():
                raise AssertionError(f"the sink exited on its own\n{sink.report()}")
            return landing.count() > before or (not emulator.running() and _sink_idle(sink))

        wait_for(writing, 120, interval=0.1, what=f"sink #{i + 1} to write an object")
        if i == KILLS:
            # The last daemon is stopped cleanly (SIGTERM: it writes what it holds and exits 0).
            assert sink.stop(timeout=60) == 0, sink.report()
            break
        delay = chooser.uniform(0.0, 1.5)
        time.sleep(delay)
        sink.kill()
        kills.append((round(delay, 2), landing.count(), emulator.running()))
    print(f"kills (delay after first new object, objects at kill, emulator still running): {kills}")
    assert len(kills) == KILLS

    assert emulator.wait(timeout=600) == 0, emulator.report()
    summary = emulator.json()
    assert summary["events_sent"] == EVENTS and summary["events_failed"] == 0, summary

    final = run_sink_until_caught_up(uid, landing_url, FLUSH_SIZE)
    print(f"final sink: {final}")

    objects = read_landing(landing)
    ends = check_contiguous(objects, uid)
    assert sum(ends.values()) == 3 * EVENTS
    want = collections.Counter(drawn_rows(SEED, EVENTS))
    got = landed_rows(objects, uid)
    for t in TABLES:
        assert got[t] == want, f"{uid}.{t}: {counter_diff(got[t], want)}"


def _sink_idle(sink) -> bool:
    """The emulator is done and the sink has had time to join: nothing new may ever come, so do
    not wait for an object that will not be written (the kill then hits an idle sink)."""
    return "partition assigned" in sink.stderr()
