"""What a TLS listener needs of OpenSSL that CPython's ``ssl`` does not expose.

Client certificates are checked at the HTTP layer (static mTLS answers 403
with Tyk's messages, dynamic mTLS 401), so the handshake must *request* a
certificate and accept whatever the client sends -- CPython's
``CERT_OPTIONAL`` fails the handshake on a certificate that does not verify,
and it has no verify callback.  nginx's ``ssl_verify_client optional_no_ca``
is the same design: a verify callback that always accepts, then
``SSL_get_verify_result`` tells whether the chain verified against the
trusted CAs.  This module is that, through ``ctypes``, against the very
libssl CPython's ``_ssl`` is linked with:

* :func:`request_client_certificates` -- ``SSL_CTX_set_verify(ctx,
  SSL_VERIFY_PEER, accept)`` on an :class:`ssl.SSLContext`;
* :func:`peer_verification` -- after a handshake, ``SSL_get_verify_result``
  and the DER of ``SSL_get0_verified_chain`` (the chain OpenSSL built from
  the client's certificates to a trusted CA, when it verified).

The ``SSL_CTX *`` and ``SSL *`` are read from CPython's objects (the first
field after the object header, and the second of ``_ssl._SSLSocket``); each
pointer is checked against what ``ssl`` itself reports through it before it
is used (:class:`OpenSslUnavailable` otherwise, and the gateway refuses to
start a listener that needs client certificates rather than guess).
"""

from __future__ import annotations

import _ssl
import ctypes
import ssl
from typing import Any

__all__ = ["OpenSslUnavailable", "peer_verification", "request_client_certificates"]

_SSL_VERIFY_PEER = 0x01
_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_SESS_CACHE_OFF = 0
_X509_V_OK = 0

_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept(_preverify_ok: int, _store: int) -> int:
    # Every certificate is accepted here; the HTTP layer decides, reading the
    # verification's result (SSL_get_verify_result keeps the first error).
    return 1


_ACCEPT = _VERIFY_CALLBACK(_accept)


class OpenSslUnavailable(RuntimeError):
    """The running CPython's ssl objects could not be reached safely."""


class _Lib:
    """The libssl/libcrypto functions used, resolved through ``_ssl``'s own
    dependencies (so they are the library CPython's ssl runs on)."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(_ssl.__file__)
        vp, c_int, c_long = ctypes.c_void_p, ctypes.c_int, ctypes.c_long

        def fn(name: str, restype: Any, *argtypes: Any) -> Any:
            f = getattr(lib, name)
            f.restype = restype
            f.argtypes = argtypes
            return f

        self.ctx_set_verify = fn("SSL_CTX_set_verify", None, vp, c_int, _VERIFY_CALLBACK)
        self.ctx_get_verify_mode = fn("SSL_CTX_get_verify_mode", c_int, vp)
        self.ctx_get_options = fn("SSL_CTX_get_options", ctypes.c_uint64, vp)
        self.ctx_ctrl = fn("SSL_CTX_ctrl", c_long, vp, c_int, c_long, vp)
        self.get_ssl_ctx = fn("SSL_get_SSL_CTX", vp, vp)
        self.get_verify_result = fn("SSL_get_verify_result", c_long, vp)
        self.get0_verified_chain = fn("SSL_get0_verified_chain", vp, vp)
        self.sk_num = fn("OPENSSL_sk_num", c_int, vp)
        self.sk_value = fn("OPENSSL_sk_value", vp, vp, c_int)
        self.i2d_x509 = fn("i2d_X509", c_int, vp, ctypes.POINTER(ctypes.c_char_p))
        self.error_string = fn("X509_verify_cert_error_string", ctypes.c_char_p, c_long)


_lib: _Lib | None = None


def _library() -> _Lib:
    global _lib
    if _lib is None:
        try:
            _lib = _Lib()
        except (OSError, AttributeError) as exc:
            raise OpenSslUnavailable(f"libssl functions not found: {exc}") from None
    return _lib


def _field(obj: object, index: int) -> int:
    """The ``index``-th pointer field after ``obj``'s object header."""
    return ctypes.c_void_p.from_address(id(obj) + object.__basicsize__
                                        + index * ctypes.sizeof(ctypes.c_void_p)).value or 0


def _ctx_pointer(context: ssl.SSLContext) -> int:
    lib = _library()
    pointer = _field(context, 0)
    # What ssl reports must be what OpenSSL says of the pointer: else it is not one.
    if not pointer or lib.ctx_get_options(pointer) != int(context.options) \
            or lib.ctx_get_verify_mode(pointer) != int(context.verify_mode):
        raise OpenSslUnavailable("this CPython's SSLContext layout is not the one expected")
    return pointer


def request_client_certificates(context: ssl.SSLContext) -> None:
    """Make handshakes on ``context`` ask for a client certificate and accept
    any (or none); the trusted CAs (``load_verify_locations``) only decide
    what :func:`peer_verification` reports.

    Sessions are not resumed on such a context (no tickets, no session
    cache): a resumed session carries the client's certificate but not the
    chain OpenSSL verified, and every connection must be judged on both."""
    lib = _library()
    context.verify_mode = ssl.CERT_OPTIONAL  # SSL_VERIFY_PEER, checked below
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    pointer = _ctx_pointer(context)
    lib.ctx_set_verify(pointer, _SSL_VERIFY_PEER, _ACCEPT)
    lib.ctx_ctrl(pointer, _SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_OFF, None)
    if lib.ctx_get_verify_mode(pointer) != _SSL_VERIFY_PEER:
        raise OpenSslUnavailable("SSL_CTX_set_verify did not take")


def peer_verification(ssl_object: ssl.SSLObject) -> tuple[str, list[bytes]]:
    """After the handshake: ``("", chain)`` when the client's certificate
    verified against the context's trusted CAs -- ``chain`` the DER of the
    verified chain, leaf first, trust anchor last -- else ``(reason, [])``."""
    lib = _library()
    inner = ssl_object._sslobj  # type: ignore[attr-defined]
    pointer = _field(inner, 1)
    if not pointer or lib.get_ssl_ctx(pointer) != _field(ssl_object.context, 0):
        raise OpenSslUnavailable("this CPython's SSLObject layout is not the one expected")
    result = lib.get_verify_result(pointer)
    if result != _X509_V_OK:
        return (lib.error_string(result) or b"unknown").decode("ascii", "replace"), []
    stack = lib.get0_verified_chain(pointer)
    if not stack:
        return "no verified chain", []
    chain = []
    for index in range(lib.sk_num(stack)):
        x509 = lib.sk_value(stack, index)
        size = lib.i2d_x509(x509, None)
        if size <= 0:
            return "unreadable certificate in the chain", []
        buffer = ctypes.create_string_buffer(size)
        cursor = ctypes.c_char_p(ctypes.addressof(buffer))
        lib.i2d_x509(x509, ctypes.byref(cursor))
        chain.append(buffer.raw)
    return "", chain
