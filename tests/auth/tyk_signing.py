"""A client for Tyk's request signatures, written from Tyk's documentation
("Sign Requests with HMAC") and the draft-cavage HTTP Signatures text --
independently of fastgate's own code, so that tests compare two readings of
the scheme, not one with itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from email.utils import formatdate
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

_HASHES = {"hmac-sha1": hashlib.sha1, "hmac-sha256": hashlib.sha256,
           "hmac-sha384": hashlib.sha384, "hmac-sha512": hashlib.sha512}


def http_date(when: float | None = None) -> str:
    """An IMF-fixdate (``Mon, 02 Jan 2006 15:04:05 GMT``)."""
    return formatdate(when, usegmt=True)


def signing_string(method: str, target: str, headers: dict[str, str],
                   signed: list[str]) -> str:
    """One ``name: value`` line per signed header, ``\\n``-joined."""
    lower = {name.lower(): value for name, value in headers.items()}
    lines = []
    for name in signed:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        else:
            lines.append(f"{name}: {lower.get(name, '').strip()}")
    return "\n".join(lines)


def sign(key_id: str, secret: str | None, method: str, target: str, headers: dict[str, str],
         signed: list[str] | None = None, algorithm: str = "hmac-sha256", *,
         private_key: Any = None, escape: bool = True,
         extra: str = "") -> str:
    """The ``Authorization`` value for a request: ``Signature keyId=..,...``.

    HMAC: base64 of the MAC, URL query-escaped (``escape``), as Tyk documents;
    RSA (``rsa-sha256`` with ``private_key``): plain base64 of a PKCS#1 v1.5
    signature.  ``extra`` is appended verbatim (for malformed-header tests).
    """
    signed = signed or ["date"]
    message = signing_string(method, target, headers, signed).encode()
    if algorithm.startswith("rsa"):
        raw = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        encoded = base64.b64encode(raw).decode()
    else:
        assert secret is not None
        mac = hmac.new(secret.encode(), message, _HASHES[algorithm]).digest()
        encoded = base64.b64encode(mac).decode()
        if escape:
            encoded = urllib.parse.quote(encoded, safe="")
    return (f'Signature keyId="{key_id}",algorithm="{algorithm}",'
            f'headers="{" ".join(signed)}",signature="{encoded}"{extra}')
