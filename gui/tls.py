"""Self-signed servers: fetch the certificate without trusting it, show its fingerprint, keep it if accepted.

An accepted certificate is saved as PEM in the config directory and the profile then verifies against it
(``MgmtClient(verify=path)``) — the connection is still verified, only against what the user accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from balancedesk.gui.profiles import config_dir


class CertificateProblem(Exception):
    """The certificate could not be fetched; ``str()`` says why."""


@dataclass(frozen=True)
class Certificate:
    host: str
    port: int
    der: bytes

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    @property
    def subject(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pem(self) -> str:
        return ssl.DER_cert_to_PEM_cert(self.der)


async def fetch_certificate(url: str, deadline_s: float = 10.0) -> Certificate:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(deadline_s):
            _, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    except (OSError, TimeoutError) as exc:
        raise CertificateProblem(f"Could not read the certificate of {host}:{port}: {exc}") from exc
    try:
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    finally:
        writer.close()
    if not der:
        raise CertificateProblem(f"{host}:{port} sent no certificate.")
    return Certificate(host, port, der)


def save_certificate(cert: Certificate, folder: Path | None = None) -> Path:
    folder = (folder or config_dir()) / "certs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cert.host}_{cert.port}.pem"
    path.write_text(cert.pem, encoding="ascii")
    return path
