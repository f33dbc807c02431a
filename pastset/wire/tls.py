"""TLS for a run's connections: a key pair and self-signed certificate per server, pinned.

Nothing to set up: a server started with TLS makes a fresh P-256 key pair and a
self-signed certificate (:func:`new_certificate`), held only in memory (OpenSSL reads it
from an anonymous memory file). Clients do not check it against any authority: they pin
it, comparing the SHA-256 fingerprint of the certificate the server shows with the one the
run gave them (:func:`check_fingerprint`), as they compare the authkey's HMAC. The
fingerprint travels the way the authkey does (the environment of a local child, the stdin
of ssh, a 0600 file) and is not secret, but a wrong one would let another server pass.

The wire: a TLS server first sends one plain message,
:data:`pastset.wire.connection.TLS_NOTICE` (a transport message:
a 4-byte length, then the text), so a client without the certificate learns at once why it
cannot go on, and a stock ``multiprocessing`` client fails on it with the text in its
error; then TLS 1.3, and inside it the usual HMAC handshake, frames and batches unchanged.

A TLS connection (:class:`TLSConnection`) reads and writes its socket as a plain one does,
one system call per message each way, and encrypts and decrypts through memory (an
``ssl.SSLObject`` over two ``ssl.MemoryBIO``): an ``ssl.SSLSocket`` reads a record's header
and its body with two calls, and passes every message through more Python code. The
server runs TLS's handshake the same way on its non-blocking sockets.

``ssl`` and ``cryptography`` are slow to import, and most processes of a run never need
them: they are imported only here, and this module only where TLS is used.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import re
import socket
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional, Tuple

from ..errors import ConnectError
from .connection import _HIGHEST, _SIZE, FIRST_READ, Connection, _dumps, write_all

_read = os.read
_write = os.write
#: what a TLS read or write raises when it needs more bytes from the peer
WantRead = ssl.SSLWantReadError

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Certificate:
    """A server's key pair and self-signed certificate (PEM), and the certificate's fingerprint."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    fingerprint: str  #: SHA-256 of the certificate (DER), 64 lower-case hex digits


def new_certificate() -> Certificate:
    """A fresh P-256 key pair and a self-signed certificate for it.

    Clients pin the certificate rather than check it, so its name and dates only have to
    be valid: it names no host and is valid for ten years from an hour ago.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pastset run")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return Certificate(cert.public_bytes(serialization.Encoding.PEM),
                       key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()),
                       fingerprint_of(der))


def fingerprint_of(der: bytes) -> str:
    """The fingerprint of a certificate in DER form: SHA-256, lower-case hex."""
    return hashlib.sha256(der).hexdigest()


def parse_fingerprint(text: str, source: str = "the certificate fingerprint") -> str:
    """A SHA-256 fingerprint as 64 lower-case hex digits; colons and case are forgiven.

    Raises ValueError naming ``source`` for anything else.
    """
    if not isinstance(text, str):
        raise TypeError(f"{source} must be a string of 64 hex digits, not {type(text).__name__}: {text!r:.80}")
    value = text.strip().replace(":", "").lower()
    if not _FINGERPRINT.match(value):
        raise ValueError(f"{source} is not a SHA-256 fingerprint (64 hex digits): {text!r}")
    return value


def check_fingerprint(tls: ssl.SSLObject, expected: str) -> Optional[str]:
    """None if the certificate the peer of ``tls`` showed has fingerprint ``expected``,
    else the fingerprint it has (or a word saying it showed none)."""
    der = tls.getpeercert(binary_form=True)
    if not der:
        return "none"
    found = fingerprint_of(der)
    return None if found == expected else found


def server_context(certificate: Certificate) -> ssl.SSLContext:
    """The TLS 1.3 server context of ``certificate``. No session tickets: clients do not
    resume sessions, so tickets would only cost a message per connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.num_tickets = 0
    _load_chain(context, certificate)
    return context


_client_context: Optional[ssl.SSLContext] = None


def client_context() -> ssl.SSLContext:
    """The client context (one per process): TLS 1.3, the server's certificate pinned by
    fingerprint after the handshake instead of checked against an authority or a name."""
    global _client_context
    if _client_context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _client_context = context
    return _client_context


def _load_chain(context: ssl.SSLContext, certificate: Certificate) -> None:
    """Give OpenSSL the certificate and key, which it reads only from a file: an anonymous
    memory file (memfd) where there is one, else a 0600 file in a private temporary
    directory, removed as soon as it is read."""
    pem = certificate.cert_pem + certificate.key_pem
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("pastset-tls", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
            return
        except OSError:
            pass  # no /proc: the file below
        finally:
            os.close(fd)
    with tempfile.TemporaryDirectory(prefix="pastset-tls-") as directory:  # mode 0700
        path = os.path.join(directory, "server.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        context.load_cert_chain(path)


def server_side(context: ssl.SSLContext) -> Tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A server-side TLS object over two memory buffers: (tls, incoming, outgoing). The
    caller moves bytes between the buffers and the socket (see :class:`TLSConnection`)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    return context.wrap_bio(incoming, outgoing, server_side=True), incoming, outgoing


def client_connection(sock: socket.socket, where: str, fingerprint: str, timeout: float) -> "TLSConnection":
    """TLS 1.3 with the server on ``sock`` (blocking; its reads bounded by the caller), the
    server's certificate checked against ``fingerprint``; the connection, which owns the
    socket's descriptor from then on. Raises ConnectError on a certificate of another
    fingerprint, OSError/EOFError when the handshake fails or takes longer than ``timeout``."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing)
    deadline = time.monotonic() + timeout
    fd = sock.fileno()
    while True:
        try:
            tls.do_handshake()
            break
        except WantRead:
            pass
        write_all(fd, outgoing.read())
        if time.monotonic() > deadline:
            raise OSError(f"the TLS handshake took longer than {timeout:g} s")
        data = _read(fd, 65536)
        if not data:
            raise EOFError("the server closed the connection in the TLS handshake")
        incoming.write(data)
    write_all(fd, outgoing.read())  # our Finished
    if check_fingerprint(tls, fingerprint) is not None:
        raise ConnectError(f"the PastSet server at {where} shows a certificate other than the run's "
                           "(its fingerprint differs): a server of another run on that address, or "
                           "something in between")
    return TLSConnection(sock.detach(), tls, incoming, outgoing)


class TLSConnection(Connection):
    """A :class:`~pastset.wire.connection.Connection` over TLS: the same messages, encrypted.

    ``tls`` is a TLS object whose handshake is done, over ``incoming`` (bytes read from
    descriptor ``fd`` not yet decrypted) and ``outgoing`` (encrypted bytes not yet
    written); ``plain`` is what was decrypted already and not yet read.
    """

    def __init__(self, fd: int, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 plain: bytes = b""):
        super().__init__(fd)
        # the C object under ssl.SSLObject, whose read and write are Python calls around it
        core = getattr(tls, "_sslobj", tls)
        self._incoming = incoming
        self._feed = incoming.write
        self._sealed = outgoing.read
        self._encrypt = core.write
        self._decrypt = core.read
        self._tls = tls
        self._rbuf = plain

    def send(self, obj) -> None:
        if self._handle is None:
            self._check_closed()
        buf = _dumps(obj, _HIGHEST)
        if len(buf) > 16384:  # big: no copy to join the header on
            self._send_bytes(buf)
            return
        self.send_message(_SIZE.pack(len(buf)) + buf)

    def send_message(self, message: bytes) -> None:
        handle = self._handle
        if handle is None:
            self._check_closed()
        self._encrypt(message)
        sealed = self._sealed()
        sent = _write(handle, sealed)
        if sent < len(sealed):
            write_all(handle, sealed[sent:])

    def _send(self, buf: bytes, write: object = None) -> None:
        view = memoryview(buf)
        for start in range(0, len(view), _SEAL_CHUNK):  # never more than a chunk sealed at once
            self._encrypt(view[start:start + _SEAL_CHUNK])
            write_all(self._handle, self._sealed())

    def recv_message(self) -> bytes:
        handle = self._handle
        if handle is None:
            self._check_closed()
        buf = self._rbuf
        if not buf and not self._incoming.pending:  # the common case: one read, one record, one message
            data = _read(handle, FIRST_READ)
            if not data:
                raise EOFError
            self._feed(data)
            buf = self._decrypted(_RECORD)
            if len(buf) >= 4 and 4 + _SIZE.unpack_from(buf)[0] == len(buf) and not self._incoming.pending:
                return buf[4:]
            self._rbuf = buf
        return self._read_message(None)

    def _decrypted(self, n: int) -> bytes:
        """Up to ``n`` bytes of plain text from what was fed in; b"" when a record is not
        whole yet; EOFError when the peer closed TLS."""
        try:
            return self._decrypt(n)
        except WantRead:
            return b""
        except ssl.SSLZeroReturnError:
            raise EOFError from None

    def _read_some(self, n: int) -> bytes:
        while True:
            if self._incoming.pending or self._tls.pending():
                chunk = self._decrypted(n)
                if chunk:
                    return chunk
            data = _read(self._handle, max(n, 65536))
            if not data:
                raise EOFError
            self._feed(data)


#: plaintext sealed (encrypted into records) at a time before it is written out
_SEAL_CHUNK = 1 << 20
#: the most plaintext one TLS record holds: what one decryption gives at most
_RECORD = 16384
