"""TLS for irtgate's gRPC port, with certificates re-read from their files when they change.

grpc's dynamic server credentials ask :meth:`CertificateFiles.fetch` for the configuration
at the start of every new connection; it answers None (keep the current one) unless a file
changed since the last load. A rotation is checked before it is used: a certificate and key
that do not belong together (say, caught half-way through a copy) keep the previous pair in
force, with a warning, until the files agree. Connections already open keep the certificate
they were opened with; Envoy's long-lived connection picks up a new one when it reconnects.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from irtgate.server.settings import ServerTls

log = logging.getLogger(__name__)

_Stamp = tuple[tuple[int, int, int], ...]


class CertificateFiles:
    """The server certificate, key and (for mTLS) client CA, loaded and kept current."""

    def __init__(self, tls: ServerTls) -> None:
        self.tls = tls
        self._lock = threading.Lock()  # grpc calls fetch from its own threads
        self._stamp = self._read_stamp()
        self.initial = self._load()  # raises at start-up: a broken pair must not serve
        self._rejected: _Stamp | None = None
        self._unreadable = False
        self.reloads = 0

    @property
    def paths(self) -> tuple[Path, ...]:
        ca = (self.tls.client_ca,) if self.tls.client_ca is not None else ()
        return (self.tls.cert, self.tls.key, *ca)

    def _read_stamp(self) -> _Stamp:
        out = []
        for path in self.paths:
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        cert = self.tls.cert.read_bytes()
        key = self.tls.key.read_bytes()
        check_pair(cert, key)
        ca = self.tls.client_ca.read_bytes() if self.tls.client_ca is not None else None
        if ca is not None:
            x509.load_pem_x509_certificates(ca)  # raises on a file that is not PEM
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by grpc for each new connection: a new configuration, or None for no change."""
        with self._lock:
            try:
                stamp = self._read_stamp()
            except OSError as e:  # mid-rotation (a file briefly missing): keep what we have
                if not self._unreadable:  # once, not at every connection
                    log.warning("TLS files unreadable (%s); keeping the current certificate", e)
                self._unreadable = True
                return None
            self._unreadable = False
            if stamp == self._stamp or stamp == self._rejected:
                return None
            try:
                config = self._load()
            except (OSError, ValueError) as e:
                log.warning("TLS files changed but do not load (%s); keeping the current ones", e)
                self._rejected = stamp
                return None
            self._stamp, self._rejected = stamp, None
            self.reloads += 1
            log.info("TLS certificate reloaded from %s", self.tls.cert)
            return config


def check_pair(cert_pem: bytes, key_pem: bytes) -> None:
    """Raise ValueError unless the first certificate in ``cert_pem`` is for ``key_pem``."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = load_pem_private_key(key_pem, password=None)
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if cert.public_key().public_bytes(enc, fmt) != key.public_key().public_bytes(enc, fmt):
        raise ValueError("the certificate and the private key do not belong together")


def server_credentials(files: CertificateFiles) -> grpc.ServerCredentials:
    return grpc.dynamic_ssl_server_credentials(
        files.initial,
        files.fetch,
        require_client_authentication=files.tls.client_ca is not None,
    )
