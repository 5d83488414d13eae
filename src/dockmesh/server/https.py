"""TLS for the UI/API listener: the operator's certificate, or one our CA issues for the server's names.

One ``ssl.SSLContext`` serves the listener for its whole life; `reload` loads a new chain into it, which
every later handshake uses (SIGHUP after the operator renews a certificate: no restart, no dropped links).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.spki import spki_pin
from dockmesh.pki.trust import publicly_trusted
from dockmesh.pki.webcert import ensure_web_cert
from dockmesh.server.config import ConfigError, ServerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedCert:
    """What install commands need to know about the certificate currently served."""

    pin: str  # curl's sha256//… form, of the leaf's public key
    publicly_trusted: bool  # whether plain `curl https://…` verifies it with the system roots


class WebTls:
    """The UI listener's SSL context and the pin of the key it presents."""

    def __init__(
        self,
        cert_path: Path,
        key_path: Path,
        *,
        operator: bool,
        host: str,
        reissue: Callable[[], bool] | None = None,
    ) -> None:
        self.cert_path = cert_path
        self.key_path = key_path
        self.operator = operator
        self._host = host
        self._reissue = reissue
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.served = self._load()

    def reload(self) -> None:
        """Load the certificate files again; a broken pair keeps the old one serving (and says so)."""
        try:
            self.served = self._load()
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error("keeping the old UI certificate: cannot load %s: %s", self.cert_path, exc)
            return
        log.info("UI certificate reloaded from %s (pin %s)", self.cert_path, self.served.pin)

    def refresh(self) -> None:
        """Re-issue a self-issued certificate that nears expiry (same key, so pins hold) and serve it."""
        if self._reissue is not None and self._reissue():
            self.reload()

    async def keep_fresh(self, interval: float = 86400.0) -> None:
        """Daily: a server that runs for a year must not serve an expired certificate."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.refresh()
            except (OSError, ValueError) as exc:
                log.error("cannot re-issue the UI certificate: %s", exc)

    def _load(self) -> ServedCert:
        chain = x509.load_pem_x509_certificates(self.cert_path.read_bytes())
        # load_cert_chain checks that key and certificate match; on failure the old pair keeps serving.
        self.context.load_cert_chain(certfile=self.cert_path, keyfile=self.key_path)
        # Only an operator's certificate can be publicly trusted; ours chains to our private CA.
        trusted = self.operator and publicly_trusted(chain, self._host)
        return ServedCert(pin=spki_pin(chain[0]), publicly_trusted=trusted)


def web_names(config: ServerConfig) -> list[str]:
    """Names the self-issued certificate must carry (the CA adds localhost, loopback and the hostname)."""
    names = [*config.agent_sans]
    public_host = urlsplit(config.public_url).hostname
    if public_host:
        names.append(public_host)
    if config.http_host not in ("0.0.0.0", "::"):  # noqa: S104 - the wildcard is not a name
        names.append(config.http_host)
    return [n for n in names if n]


def web_tls(config: ServerConfig, ca: CertificateAuthority) -> WebTls | None:
    """The listener's TLS, or None when it serves plain HTTP (insecure-http or loopback only)."""
    if not config.https:
        return None
    host = urlsplit(config.public_url).hostname or ""
    if config.tls_cert is not None and config.tls_key is not None:
        try:
            return WebTls(config.tls_cert, config.tls_key, operator=True, host=host)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(f"--tls-cert/--tls-key: cannot load {config.tls_cert}: {exc}") from None
    names = web_names(config)
    cert_path, key_path, _ = ensure_web_cert(ca, names)
    return WebTls(
        cert_path, key_path, operator=False, host=host, reissue=lambda: ensure_web_cert(ca, names)[2]
    )
