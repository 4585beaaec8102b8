"""Pre-publish N events to a peer's queue through the peer's own API, then exit.

    BENCH_PEER_QUEUE=q python -m bench.peers.produce celery|dramatiq [--start S] --count N --key K

Prints one JSON line: {"published": N, "seconds": S}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from bench.payload import document


def produce_celery(start: int, count: int, key: str) -> None:
    from bench.peers.celery_app import app, incr_task

    with app.producer_or_acquire() as producer:
        for seq in range(start, start + count):
            incr_task.apply_async(args=(document(key, seq),), producer=producer)


def produce_dramatiq(start: int, count: int, key: str) -> None:
    from bench.peers.dramatiq_app import broker, incr_actor

    for seq in range(start, start + count):
        incr_actor.send(document(key, seq))
    broker.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("peer", choices=("celery", "dramatiq"))
    parser.add_argument("--start", type=int, default=0, help="the first event's seq")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    produce = produce_celery if args.peer == "celery" else produce_dramatiq
    produce(args.start, args.count, args.key)
    seconds = time.perf_counter() - started
    print(json.dumps({"published": args.count, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
