"""The server's TLS certificate, re-read without a restart (certbot renews the files in place).

Every TLS listener (IRC and web) is bound once, with :attr:`ServerCertificate.context`. A reload
loads the files into a fresh :class:`ssl.SSLContext`; nothing changes if they cannot be loaded (missing,
unreadable, a key that does not match), so a failed renewal keeps the certificate in use. Once loaded,
the listening context's SNI callback, which OpenSSL runs early in every handshake (whether or not the
client sent a server name), hands each new handshake to the newest context: new connections get the new
certificate without re-binding, and connections already open keep the one they started with.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl

from salotto.config import Config, bad_value

__all__ = ["TLS_HANDSHAKE_TIMEOUT_S", "ServerCertificate", "load_context"]

log = logging.getLogger("salotto")

# Seconds a new connection has to finish its TLS handshake (asyncio's default is 60 s: a peer that
# opens connections and never says hello would hold each that long).
TLS_HANDSHAKE_TIMEOUT_S = 15.0

# OpenSSL's errors end in " (_ssl.c:3926)": where in CPython, nothing the reader can use.
_SOURCE_LINE = re.compile(r" \(_ssl\.c:\d+\)$")
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def load_context(config: Config, *, renewing: bool = False) -> ssl.SSLContext:
    """A server-side context holding ``tls_cert_file`` and ``tls_key_file``; ConfigError saying why not."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else _SOURCE_LINE.sub("", str(exc))
        if renewing:
            why += "; new connections still get the certificate loaded before"
        raise bad_value("tls_cert_file", config.tls_cert_file, f"with tls_key_file {config.tls_key_file!r}: {why}",
                        config.origin("tls_cert_file")) from None
    return context


def fingerprint(path: str) -> str:
    """SHA-256 of the first certificate in a PEM file, as ``ab:cd:...`` (what ``openssl x509 -fingerprint``
    shows), or ``?`` when the file cannot be read: for the log, to see which certificate is in use."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            match = _PEM_CERTIFICATE.search(f.read())
        if match is None:
            return "?"
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(match.group(0))).hexdigest()
    except (OSError, ValueError):
        return "?"
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)).upper()


class ServerCertificate:
    """The certificate every TLS listener presents; :meth:`load` then :meth:`use` renew it.

    Raises ConfigError (from the constructor) when the files cannot be loaded at start.
    """

    def __init__(self, config: Config) -> None:
        self.context = load_context(config)
        self.context.sni_callback = self._select
        self._current = self.context
        self.fingerprint = fingerprint(config.tls_cert_file)
        log.info("TLS certificate from %s: SHA-256 %s", config.tls_cert_file, self.fingerprint)

    def _select(self, ssl_object: ssl.SSLObject, _server_name: str | None, context: ssl.SSLContext) -> None:
        current = self._current
        if current is not context:
            ssl_object.context = current

    def load(self, config: Config) -> ssl.SSLContext:
        """Read the files again, without using them yet; ConfigError when they cannot be loaded."""
        return load_context(config, renewing=True)

    def use(self, context: ssl.SSLContext, config: Config) -> None:
        """New handshakes get ``context`` from now on; open connections keep theirs."""
        self._current = context
        previous, self.fingerprint = self.fingerprint, fingerprint(config.tls_cert_file)
        if self.fingerprint == previous:
            log.info("TLS certificate re-read from %s: unchanged (SHA-256 %s)", config.tls_cert_file, self.fingerprint)
        else:
            log.info("TLS certificate renewed from %s: new connections get SHA-256 %s (was %s)",
                     config.tls_cert_file, self.fingerprint, previous)
