"""Logging in with SASL PLAIN from two IRC libraries, unchanged: ``irc`` (jaraco) and pydle.

The account is registered first over a raw socket (REGISTER); each library then connects with its
own SASL support and must end up logged in: WHOIS, asked by a raw peer, shows the account (330).
"""

from __future__ import annotations

import asyncio
import threading

import irc.client
import pydle

from tests.conftest import RunningServer
from tests.interop.accounts import PASSWORD, logged_in_as, register_account
from tests.interop.waiting import WAIT_S, Inbox
from tests.irc_client import RawClient

REACTOR_TURN_S = 0.05




def test_jaraco_irc_logs_in_with_sasl_plain(salotto_server: RunningServer) -> None:
    register_account(salotto_server, "jaracoacct")
    inbox = Inbox()
    reactor = irc.client.Reactor()
    reactor.add_global_handler("all_events", lambda c, e: inbox.add(e.type, list(e.arguments)))
    connection = reactor.server().connect(
        salotto_server.host, salotto_server.port, "jaraco_sasl", password=PASSWORD, sasl_login="jaracoacct"
    )
    stop = threading.Event()
    thread = threading.Thread(target=lambda: [reactor.process_once(REACTOR_TURN_S) for _ in iter(stop.is_set, True)],
                              daemon=True)
    thread.start()
    try:
        inbox.wait_for(lambda event: event[0] == "saslsuccess", "903 from the server")
        inbox.wait_for(lambda event: event[0] == "welcome", "001 after CAP END")
        assert logged_in_as(salotto_server, "jaraco_sasl") == "jaracoacct"
    finally:
        connection.quit("done")
        stop.set()
        thread.join(timeout=5)
        connection.close()


class _SaslPydle(pydle.Client):
    def __init__(self, inbox: Inbox) -> None:
        super().__init__("pydle_sasl", sasl_username="pydleacct", sasl_password=PASSWORD)
        self.inbox = inbox

    async def on_raw_903(self, message: object) -> None:
        self.inbox.add("903")
        await super().on_raw_903(message)

    async def on_connect(self) -> None:
        await super().on_connect()
        self.inbox.add("connect")


def test_pydle_logs_in_with_sasl_plain(salotto_server: RunningServer) -> None:
    register_account(salotto_server, "pydleacct")
    inbox = Inbox()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    client = _SaslPydle(inbox)
    try:
        asyncio.run_coroutine_threadsafe(
            client.connect(salotto_server.host, salotto_server.port, tls=False), loop
        ).result(WAIT_S)
        inbox.wait_for(lambda event: event[0] == "903", "903 from the server")
        inbox.wait_for(lambda event: event[0] == "connect", "registration")
        assert logged_in_as(salotto_server, "pydle_sasl") == "pydleacct"
    finally:
        asyncio.run_coroutine_threadsafe(client.disconnect(expected=True), loop).result(WAIT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def test_wrong_password_from_a_raw_client_gets_904(salotto_server: RunningServer) -> None:
    register_account(salotto_server, "rawacct")
    client = RawClient(salotto_server.host, salotto_server.port)
    client.send("CAP LS 302")
    client.send("CAP REQ sasl")
    client.expect("CAP", p1="ACK")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    import base64

    client.send("AUTHENTICATE " + base64.b64encode(b"\0rawacct\0not-it").decode())
    client.expect("904")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0rawacct\0{PASSWORD}".encode()).decode())
    assert client.expect("900").params[2] == "rawacct"
    client.expect("903")
    client.close()
