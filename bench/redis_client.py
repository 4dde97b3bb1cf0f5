"""
The cost per registry lookup of the Redis client: spectroreg's own
(Twisted-native, on the reactor) against redis-py (Debian's python3-redis)
called through a thread pool, as it would have to be.

    python3 bench/redis_client.py [--calls 2000] [--concurrency 1,16]

Starts Debian's redis-server on a free port, then for each client runs
CALLS lookups shaped like a blob HEAD's (a pipeline of GET + HMGET), CONCURRENCY
at a time, and prints microseconds per lookup and the process CPU time per lookup.
redis-py is skipped when it is not installed.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from twisted.internet import defer, reactor, task, threads  # noqa: E402
from twisted.python.threadpool import ThreadPool  # noqa: E402

from spectroreg.config.redis_settings import RedisSettings  # noqa: E402
from spectroreg.registry.redisclient import RedisClient  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

KEY = "blobs::sha256:" + "0" * 64


async def measure(name, lookup, calls, concurrency):
    semaphore = defer.DeferredSemaphore(concurrency)
    cpu, wall = time.process_time(), time.perf_counter()
    await defer.gatherResults([semaphore.run(lambda: defer.ensureDeferred(lookup())) for _ in range(calls)])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print("{:<28} concurrency {:>3}: {:>7.1f} µs/lookup wall, {:>7.1f} µs/lookup CPU".format(
        name, concurrency, wall / calls * 1e6, cpu / calls * 1e6))


async def main(options):
    workdir = tempfile.mkdtemp(prefix="spectroreg-bench-redis-")
    server = RedisServer(workdir)
    server.start()
    try:
        server.command("HSET", KEY, "digest", KEY[7:], "size", "4", "mediatype", "application/octet-stream")
        ours = RedisClient(RedisSettings(addr=server.addr), reactor)

        async def native():
            await ours.pipeline([("GET", "gen"), ("HMGET", KEY, "digest", "size", "mediatype")])

        try:
            import redis
        except ImportError:
            redis = None
        pool = ThreadPool(1, 10)
        pool.start()
        if redis is not None:
            blocking = redis.Redis(host="127.0.0.1", port=server.port)

            def call():
                pipe = blocking.pipeline(transaction=False)
                pipe.get("gen")
                pipe.hmget(KEY, "digest", "size", "mediatype")
                return pipe.execute()

            async def threaded():
                await threads.deferToThreadPool(reactor, pool, call)

        for concurrency in options.concurrency:
            await measure("spectroreg (reactor)", native, options.calls, concurrency)
            if redis is not None:
                await measure("redis-py (thread pool)", threaded, options.calls, concurrency)
        if redis is None:
            print("redis-py is not installed (apt-get install python3-redis): not compared")
        pool.stop()
        await ours.close()
    finally:
        server.stop()
        shutil.rmtree(workdir, True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=lambda text: [int(n) for n in text.split(",")], default=[1, 16])
    options = parser.parse_args()
    task.react(lambda _: defer.ensureDeferred(main(options)))
