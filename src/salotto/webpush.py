"""Web Push on the wire: the VAPID key, payload encryption, and the POST to the push service.

RFC 8030 (the push), RFC 8291 (the payload encrypted for the subscriber: ``aes128gcm``, by http_ece),
RFC 8292 (VAPID: a JWT signed with the server's P-256 key, by cryptography). No hand-written crypto.

The key is made on first start in ``<data_dir>/vapid-key.pem`` (mode 0600) and loaded afterwards: its
public half is what browsers subscribed with, so it must not change. Pushes go from a small thread pool
(``webpush_max_concurrent``) with a bounded queue (``webpush_max_queued``) and a timeout
(``webpush_timeout_s``); every outcome comes back on the loop thread. An endpoint is a URL the server
POSTs to, named by whoever registered it: only ``https`` (``webpush_allow_http``), and never to a host
that resolves to a loopback, private, link-local or otherwise non-public address
(``webpush_allow_private_addresses``); the name is resolved once per push, checked, and the connection
goes to the address that was checked (a second lookup could answer otherwise).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

import http_ece  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from salotto.config import Config, ConfigError, bad_value
from salotto.storage.base import PushSubscription

__all__ = ["VAPID_KEY_FILE", "WebPushSender", "load_vapid_key", "public_key_b64", "vapid_authorization"]

log = logging.getLogger("salotto.push")

VAPID_KEY_FILE = "vapid-key.pem"
# How long a VAPID token is valid (RFC 8292 allows at most 24 hours); reused until an hour before.
_TOKEN_LIFETIME_S = 12 * 3600
# Threads that look up REGISTER's endpoint hosts (a few registrations a day, each one look-up).
_LOOKUP_THREADS = 2
# The most of a push service's answer read (its body says nothing we use; some of it goes in the log).
_MAX_ANSWER_BYTES = 4096


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_vapid_key(config: Config) -> ec.EllipticCurvePrivateKey:
    """The server's VAPID key from ``<data_dir>/vapid-key.pem``, made (mode 0600) when there is none. A file
    that is not a P-256 private key in PEM is a startup error naming it."""
    path = os.path.join(config.data_dir, VAPID_KEY_FILE)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
        except OSError as exc:
            raise _key_error(config, path, f"cannot write it: {exc.strerror}") from None
        log.debug("made the Web Push (VAPID) key %s", path)
        return key
    except OSError as exc:
        raise _key_error(config, path, f"cannot read it: {exc.strerror}") from None
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise _key_error(config, path, f"not a private key in PEM ({exc})") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(loaded.curve, ec.SECP256R1):
        raise _key_error(config, path, "not a P-256 (prime256v1) key")
    return loaded


def _key_error(config: Config, path: str, why: str) -> ConfigError:
    return bad_value("data_dir", config.data_dir,
                     f"the Web Push key {path}: {why}; restore it, or move it away to make a new one (every "
                     "device then subscribes again), or set webpush = false", config.origin("data_dir"))


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as ISUPPORT VAPID= and the Authorization header's ``k`` give it: URL-safe base64 of
    the uncompressed point."""
    return _b64(key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint))


def origin_of(endpoint: str) -> str:
    """The endpoint's origin (scheme://host[:port]), the VAPID token's audience."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port is not None else "")


def vapid_authorization(key: ec.EllipticCurvePrivateKey, audience: str, subject: str, expires: int) -> str:
    """``vapid t=<JWT>, k=<public key>`` (RFC 8292 section 3): an ES256 JWT for ``audience``."""
    header = _b64(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
    claims = _b64(json.dumps({"aud": audience, "exp": expires, "sub": subject}, separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}"
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    signature = _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return f"vapid t={signing_input}.{signature}, k={public_key_b64(key)}"


# IPv6 prefixes whose addresses carry an IPv4 address that a translator or tunnel on the way may reach:
# NAT64's well-known prefix (RFC 6052, the IPv4 address in the last 32 bits) and IPv4-compatible addresses
# (deprecated, the same); NAT64's local-use prefix (RFC 8215) is the operator's own network, never public.
_IPV4_INSIDE: Final = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("::/96"))
_LOCAL_NAT64: Final = ipaddress.IPv6Network("64:ff9b:1::/48")


def is_public_address(ip: str) -> bool:
    """Whether pushes may go to ``ip``: a global unicast address (not loopback, private, link-local,
    shared, reserved, multicast; an IPv6 address that carries an IPv4 one, IPv4-mapped, NAT64, 6to4 or
    IPv4-compatible, as that IPv4 one)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return False
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.sixtofour is not None:
            address = address.sixtofour
        elif any(address in prefix for prefix in _IPV4_INSIDE):
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.is_global and not address.is_multicast


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to ``host`` at the address already resolved and checked."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``host`` (its certificate checked for that name) at the address already resolved and checked."""

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _abort(connection: http.client.HTTPConnection, fired: threading.Event) -> None:
    """The exchange took too long: its blocked read or write ends (an error in the sending thread)."""
    fired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class WebPushSender:
    """The server's :class:`salotto.server.push.Sender`: encrypts, signs and POSTs on its own threads."""

    def __init__(self, config: Callable[[], Config], key: ec.EllipticCurvePrivateKey,
                 call_soon: Callable[[Callable[[], None]], Any]) -> None:
        self._config = config
        self._key = key
        self.public_key = public_key_b64(key)
        self._call_soon = call_soon
        self._pool = ThreadPoolExecutor(max_workers=config().webpush_max_concurrent, thread_name_prefix="salotto-push")
        self._waiting = 0  # queued or being sent (counted on the loop thread)
        # REGISTER's look-ups of endpoint hosts: threads of their own (a slow resolver must not hold pushes up).
        self._lookups = ThreadPoolExecutor(max_workers=_LOOKUP_THREADS, thread_name_prefix="salotto-push-dns")
        self._resolving = 0
        self._tokens: dict[tuple[str, str], tuple[int, str]] = {}  # (audience, subject) -> (expires, header)
        self._tls = ssl.create_default_context()

    # -- on the loop -----------------------------------------------------------------------------

    def check(self, endpoint: str, p256dh: bytes, auth: bytes) -> str | None:
        config = self._config()
        try:
            parts = urlsplit(endpoint)
            port = parts.port
        except ValueError:
            return "The endpoint is not a URL"
        schemes = ("https", "http") if config.webpush_allow_http else ("https",)
        if parts.scheme not in schemes:
            return "The endpoint must be an https:// URL"
        host = parts.hostname
        if not host or parts.username is not None or parts.password is not None or port == 0:
            return "The endpoint must be a URL with a host (and no user name)"
        if not config.webpush_allow_private_addresses:
            if host == "localhost" or host.endswith(".localhost"):
                return "The endpoint's host is this machine"
            try:
                ipaddress.ip_address(host)
            except ValueError:
                pass  # a name: resolve() looks it up, and each push again
            else:
                if not is_public_address(host):
                    return "The endpoint's address is not a public one"
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
        except ValueError:
            return "p256dh is not a P-256 public key (uncompressed point)"
        if len(auth) != 16:
            return "auth must be a 16-byte secret"
        return None

    def resolve(self, endpoint: str, done: Callable[[tuple[str, str] | None], None]) -> None:
        config = self._config()
        if config.webpush_allow_private_addresses:
            done(None)
            return
        if self._resolving >= config.webpush_max_queued:
            done(("INTERNAL_ERROR", "Too many endpoints are being looked up; try again"))
            return

        def run() -> None:
            refusal: tuple[str, str] | None
            try:
                problem = self._refusal(urlsplit(endpoint))
                refusal = None if problem is None else ("INVALID_PARAMS", problem)
            except OSError as exc:  # (socket.gaierror: no such name)
                refusal = ("INVALID_PARAMS", f"The endpoint's host does not resolve ({exc.strerror or exc})")
            except ValueError:  # (UnicodeError: a label the IDNA codec refuses, over 63 characters or empty)
                refusal = ("INVALID_PARAMS", "The endpoint's host is not a valid host name")
            except Exception:  # our bug; the client is still answered, and its next commands run
                log.exception("looking up a Web Push endpoint's host failed")
                refusal = ("INTERNAL_ERROR", "Could not look the endpoint's host up; try again")
            self._call_soon(lambda: self._resolved(done, refusal))

        self._resolving += 1
        try:
            self._lookups.submit(run)
        except RuntimeError:  # shut down
            self._resolving -= 1
            done(("INTERNAL_ERROR", "The server is stopping"))

    def _resolved(self, done: Callable[[tuple[str, str] | None], None], refusal: tuple[str, str] | None) -> None:
        self._resolving -= 1
        done(refusal)

    @staticmethod
    def _refusal(parts: SplitResult) -> str | None:
        """Why the endpoint's host is refused by its addresses (resolved now), or None."""
        host = parts.hostname or ""
        for info in socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM):
            if not is_public_address(str(info[4][0])):
                return f"The endpoint's host resolves to {info[4][0]}, not a public address"
        return None

    def send(self, subscription: PushSubscription, payload: bytes, urgency: str,
             done: Callable[[int, str], None]) -> bool:
        config = self._config()
        if self._waiting >= config.webpush_max_concurrent + config.webpush_max_queued:
            return False
        self._waiting += 1
        try:
            self._pool.submit(self._run, subscription, payload, urgency, config, done)
        except RuntimeError:  # shut down
            self._waiting -= 1
            return False
        return True

    def _finished(self, done: Callable[[int, str], None], status: int, error: str) -> None:
        self._waiting -= 1
        done(status, error)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._lookups.shutdown(wait=False, cancel_futures=True)

    # -- on the pool's threads -------------------------------------------------------------------

    def _run(self, subscription: PushSubscription, payload: bytes, urgency: str, config: Config,
             done: Callable[[int, str], None]) -> None:
        try:
            status, error = self._post(subscription, payload, urgency, config)
        except Exception as exc:  # (network errors, timeouts, TLS: the push failed, the server goes on)
            status, error = 0, f"{type(exc).__name__}: {exc}"
        self._call_soon(lambda: self._finished(done, status, error))

    def _post(self, subscription: PushSubscription, payload: bytes, urgency: str, config: Config) -> tuple[int, str]:
        parts = urlsplit(subscription.endpoint)
        host = parts.hostname or ""
        https = parts.scheme == "https"
        if not https and not config.webpush_allow_http:  # (registered while it was allowed)
            return 0, f"refused: {parts.scheme}:// endpoints are not allowed (webpush_allow_http)"
        port = parts.port or (443 if https else 80)
        addresses = [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
        if not addresses:
            return 0, f"{host} has no address"
        if not config.webpush_allow_private_addresses:
            for address in addresses:
                if not is_public_address(str(address)):
                    return 0, f"refused: {host} resolves to {address}, not a public address"
        body = self.encrypt(payload, subscription)
        headers = {
            "TTL": str(config.webpush_ttl_s),
            "Urgency": urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Authorization": self._authorization(origin_of(subscription.endpoint), self._subject(config)),
        }
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        address = str(addresses[0])
        connection: http.client.HTTPConnection = (
            _PinnedHTTPSConnection(host, port, address, config.webpush_timeout_s, self._tls) if https
            else _PinnedHTTPConnection(host, port, address, config.webpush_timeout_s))
        # webpush_timeout_s bounds each socket operation, and this the whole exchange: a push service that
        # answers a byte at a time must not hold one of the few threads for long.
        fired = threading.Event()
        deadline = threading.Timer(config.webpush_timeout_s, _abort, (connection, fired))
        deadline.start()
        try:
            connection.request("POST", path, body, headers)
            answer = connection.getresponse()
            text = answer.read(_MAX_ANSWER_BYTES)
            return answer.status, f"{answer.status} {answer.reason}: {text[:200]!r}"
        except Exception:
            if fired.is_set():
                raise TimeoutError(f"no whole answer within {config.webpush_timeout_s} s (webpush_timeout_s)") from None
            raise
        finally:
            deadline.cancel()
            connection.close()

    def encrypt(self, payload: bytes, subscription: PushSubscription) -> bytes:
        """``payload`` encrypted for the subscriber (RFC 8291, aes128gcm; a fresh key and salt each time)."""
        ephemeral = ec.generate_private_key(ec.SECP256R1())
        data: bytes = http_ece.encrypt(payload, salt=os.urandom(16), private_key=ephemeral,
                                       dh=_unb64(subscription.p256dh), auth_secret=_unb64(subscription.auth),
                                       version="aes128gcm")
        return data

    def _subject(self, config: Config) -> str:
        if config.webpush_vapid_subject:
            return config.webpush_vapid_subject
        if config.admin_email:
            return "mailto:" + config.admin_email
        return "https://" + config.server_name

    def _authorization(self, audience: str, subject: str) -> str:
        now = int(time.time())
        cached = self._tokens.get((audience, subject))
        if cached is not None and cached[0] - now > 3600:
            return cached[1]
        expires = now + _TOKEN_LIFETIME_S
        header = vapid_authorization(self._key, audience, subject, expires)
        if len(self._tokens) > 1000:  # (one per push service in use: a handful)
            self._tokens.clear()
        self._tokens[(audience, subject)] = (expires, header)
        return header
