"""An IPv4 client of a dual-stack IPv6 socket (``IPV6_V6ONLY`` off) shows as ``::ffff:a.b.c.d``: the
transports take it as ``a.b.c.d``, so its limits are its own (not the IPv6 /64 every such address is in)
and IPv4 entries of throttle_exempt and trusted_proxies match it. (salotto's own listeners on ``::`` are
IPv6 only, as asyncio and uvloop bind them; a socket made otherwise is what this guards.)"""

from __future__ import annotations

import asyncio
import socket

import pytest

from salotto.config import load_config
from salotto.server.state import Server
from salotto.transport.flusher import Flusher
from salotto.transport.stream import IrcStreamProtocol

LOOPS = pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])


def dual_stack_listener() -> socket.socket:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", 0))
        sock.listen()
    except OSError as exc:
        sock.close()
        pytest.skip(f"no dual-stack IPv6 socket on this host: {exc}")
    return sock


@LOOPS
def test_an_ipv4_client_of_a_dual_stack_socket_is_its_ipv4_address(event_loop: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        # One new connection per address per window, except from 127.0.0.3.
        config = load_config(None, {"connect_attempts_per_ip": 1, "throttle_exempt": ["127.0.0.3"],
                                    "max_connections_per_ip": 10})
        server = Server(config)
        flusher = Flusher(server, loop)
        listener = await loop.create_server(lambda: IrcStreamProtocol(server, "tcp", flusher),
                                            sock=dual_stack_listener())
        port = listener.sockets[0].getsockname()[1]
        writers = []
        try:
            def seen() -> int:
                return server.stats.connections_accepted + server.stats.connections_refused

            for count, source in enumerate(("127.0.0.2", "127.0.0.4", "127.0.0.3", "127.0.0.3", "127.0.0.2"), 1):
                _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
                writers.append(writer)
                for _ in range(500):
                    if seen() == count:
                        break
                    await asyncio.sleep(0.01)
                assert seen() == count
            assert listener.sockets[0].family == socket.AF_INET6
            assert sorted(client.ip for client in server.clients) == [
                "127.0.0.2", "127.0.0.3", "127.0.0.3", "127.0.0.4"]
            assert server.stats.connections_refused == 1  # 127.0.0.2's second: its own bucket, not ::/64's
        finally:
            for writer in writers:
                writer.close()
            listener.close()

    if event_loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
