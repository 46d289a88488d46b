"""The Redis link on its own, against a real redis-server: what it promises its callers when Redis fails."""

from __future__ import annotations

import asyncio
from typing import Any

from salotto.cluster.link import LinkDown, RedisLink
from tests.redis_server import RedisServer


def test_a_command_in_flight_when_redis_dies_is_answered_link_down(redis_server: RedisServer) -> None:
    """A pipeline already sent when the connection breaks: each of its callbacks still runs, once, with
    LinkDown (a JOIN waiting on it would otherwise never be answered, and its client's input held for ever)."""

    async def scenario() -> list[Any]:
        answers: list[Any] = []
        downs: list[str] = []
        link = RedisLink(redis_server.url, on_message=lambda c, d: None, on_up=lambda: None,
                         on_down=downs.append, before_send=lambda: None)
        await link.connect()
        try:
            # Blocks Redis's answer for 5 s: the pipeline is in flight when the server dies.
            link.command(("BLPOP", "salotto:test:never", 5), answers.append)
            await asyncio.sleep(0.3)
            assert answers == []
            await asyncio.to_thread(redis_server.kill)
            for _ in range(100):
                if answers and downs:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # nothing more comes
        finally:
            await link.close()
        return answers

    answers = asyncio.run(scenario())
    assert len(answers) == 1
    assert isinstance(answers[0], LinkDown)


def test_a_queued_command_is_answered_once_when_the_subscribed_connection_breaks(redis_server: RedisServer) -> None:
    """The subscribed connection fails while the command connection is busy: what was queued behind the
    busy pipeline is answered LinkDown, once, and not sent afterwards (its callback would run twice)."""
    import redis

    async def scenario() -> tuple[list[Any], list[Any]]:
        busy: list[Any] = []
        queued: list[Any] = []
        link = RedisLink(redis_server.url, on_message=lambda c, d: None, on_up=lambda: None,
                         on_down=lambda why: None, before_send=lambda: None)
        await link.connect()
        try:
            link.subscribe(["salotto:test:channel"])
            await asyncio.sleep(0.2)
            link.command(("BLPOP", "salotto:test:never", 1), busy.append)
            await asyncio.sleep(0.2)
            link.command(("INCR", "salotto:test:counter"), queued.append)
            with redis.Redis.from_url(redis_server.url) as other:
                other.client_kill_filter(_type="pubsub")
            await asyncio.sleep(2.0)  # the BLPOP times out meanwhile; the writer would go on
            with redis.Redis.from_url(redis_server.url) as other:
                counter = other.get("salotto:test:counter")
        finally:
            await link.close()
        return queued, [counter]

    queued, counter = asyncio.run(scenario())
    assert len(queued) == 1 and isinstance(queued[0], LinkDown)
    assert counter == [None]  # never sent


def test_a_loop_that_was_busy_for_a_while_does_not_take_redis_for_broken(redis_server: RedisServer) -> None:
    """The event loop held for longer than the keepalive's allowance (a store opening, a big reload): the
    PONGs are there, unread; the link must not count Redis as broken because of its own loop (a false
    'lost Redis' makes the node fail every pending change and reload the whole network)."""
    import time

    async def scenario() -> list[str]:
        downs: list[str] = []
        link = RedisLink(redis_server.url, on_message=lambda c, d: None, on_up=lambda: None,
                         on_down=downs.append, before_send=lambda: None)
        await link.connect()
        try:
            await asyncio.sleep(1.2)  # a keepalive PING on its way
            time.sleep(4.5)  # the loop held, as by a long synchronous step
            await asyncio.sleep(2.5)
        finally:
            await link.close()
        return downs

    assert asyncio.run(scenario()) == []


def test_a_redis_that_stops_answering_is_taken_for_broken(redis_server: RedisServer) -> None:
    """Redis frozen (no FIN, no RST: a machine gone): no PONG for KEEPALIVE_MISSES PINGs, and the link
    says so (the loop's own stalls are told apart, the silence of Redis is not)."""
    import os
    import signal

    async def scenario() -> list[str]:
        downs: list[str] = []
        link = RedisLink(redis_server.url, on_message=lambda c, d: None, on_up=lambda: None,
                         on_down=downs.append, before_send=lambda: None)
        await link.connect()
        os.kill(redis_server.pid, signal.SIGSTOP)
        try:
            for _ in range(80):
                await asyncio.sleep(0.1)
                if downs:
                    break
        finally:
            os.kill(redis_server.pid, signal.SIGCONT)
            await link.close()
        return downs

    assert asyncio.run(scenario()) == ["no answer to PING on the subscribed connection"]


def test_a_subscription_in_flight_when_redis_dies_is_answered_link_down(redis_server: RedisServer) -> None:
    """A SUBSCRIBE sent and not yet confirmed when Redis goes: its callback is told LinkDown at once (a node
    resynchronising waited for it until its own 10 s timeout, doing nothing)."""
    import os
    import signal
    import time

    async def scenario() -> tuple[list[Any], float]:
        answers: list[Any] = []
        link = RedisLink(redis_server.url, on_message=lambda c, d: None, on_up=lambda: None,
                         on_down=lambda why: None, before_send=lambda: None)
        await link.connect()
        try:
            os.kill(redis_server.pid, signal.SIGSTOP)  # the SUBSCRIBE goes out and is not answered
            link.subscribe(["salotto:test:channel"], answers.append)
            await asyncio.sleep(0.3)
            started = time.monotonic()
            await asyncio.to_thread(redis_server.kill)
            while not answers and time.monotonic() - started < 8:
                await asyncio.sleep(0.05)
            return answers, time.monotonic() - started
        finally:
            await link.close()

    answers, waited = asyncio.run(scenario())
    assert len(answers) == 1 and isinstance(answers[0], LinkDown), answers
    assert waited < 2
