"""Signed requests: Tyk's HMAC / RSA scheme and RFC 9421 HTTP Message Signatures.

* :mod:`.tyk` -- Tyk's ``enable_signature_checking`` (draft-cavage HTTP
  Signatures: ``hmac-sha1/256/384/512`` with the session's ``hmac_string``,
  ``rsa-sha256`` with the public key its ``rsa_certificate_id`` names); the
  header parsing, signing string and MAC check are compiled
  (:mod:`fastgate._core.signing`);
* :mod:`.message_signatures` -- RFC 9421, fastgate's
  ``http_message_signatures`` section;
* :mod:`.digest` -- ``Content-Digest`` / ``Digest`` checked against the body
  as it streams through;
* :mod:`.request_signing` -- Tyk's ``request_signing``: the gateway signs
  what it sends upstream.
"""

from __future__ import annotations

from fastgate.auth.hmac.tyk import METHOD, HmacAuth, HmacConfig

__all__ = ["METHOD", "HmacAuth", "HmacConfig"]
