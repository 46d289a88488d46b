"""Test certificates made with the openssl command (no Python package needed): self-signed, for 127.0.0.1."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

__all__ = ["client_context", "der_of", "make_certificate", "needs_openssl"]

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="the openssl command is needed to make test certificates")


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (P-256: quick to make), as ``name.pem`` and
    ``name.key`` in ``directory``; its subject's CN is ``name``."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


def der_of(cert: Path) -> bytes:
    """The certificate in ``cert`` (PEM) as DER, what ``getpeercert(binary_form=True)`` returns."""
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def client_context(*trusted: Path) -> ssl.SSLContext:
    """A client context that trusts exactly these certificates (and checks the host name)."""
    context = ssl.create_default_context()
    context.load_verify_locations(cadata="".join(path.read_text() for path in trusted))
    return context
