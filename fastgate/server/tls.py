"""The TLS listener's certificates and settings (Tyk's ``http_server_options``).

``use_ssl`` turns the gateway's listeners (the API port and, when set, the
control port) into HTTP/1.1-over-TLS listeners.  Their certificates come from
``http_server_options.certificates``: ``[{"domain_name", "cert_file",
"key_file"}]``, PEM files (a certificate file may hold the chain after the
leaf), then ``ssl_certificates``: ids of the certificate store
(:mod:`fastgate.certs`, ``/tyk/certs``) with their private keys, read at
start and on every reload (:meth:`ServerTls.load_store`).

Which certificate a handshake gets (Tyk's, which is Go's ``NameToCertificate``):

1. every certificate is known under its subject CN and its DNS names, and
   under its entry's ``domain_name`` (which wins when two claim one name);
2. the SNI name, lower-cased, is looked up as it is, then with its first
   label replaced by ``*`` (``api.example.com`` -> ``*.example.com``);
3. no match, or no SNI: the first certificate configured.

Versions are Tyk's numbers (``769`` TLS 1.0, ``770`` 1.1, ``771`` 1.2,
``772`` 1.3); the default is TLS 1.2 to 1.3.  ``ssl_ciphers`` takes Go's
cipher-suite names (TLS 1.2; TLS 1.3's suites are not configurable, as in
Go); the default is forward-secret AEAD suites only (Mozilla's
"intermediate").  ALPN offers ``http/1.1`` only.

**fastgate differs** from Tyk: a certificate file that cannot be loaded, an
unknown cipher name or a version outside Tyk's numbers stops the gateway at
start with the file and field named (Tyk logs and skips the certificate);
on reload (``/tyk/reload``, SIGHUP) the files are read again, and when one
fails the certificates in service stay (the error is logged and answered).
Connections already open keep the certificate they were made with.

Client certificates (:mod:`fastgate.middleware.mtls`, dynamic mTLS in
:mod:`fastgate.auth.auth_token`): when an API in service needs them, the
gateway calls :meth:`ServerTls.set_client_auth` with the CAs of every
allow-list; each handshake then asks for a certificate, accepts any (or
none) and OpenSSL verifies the chain against those CAs
(:mod:`fastgate.server.openssl`).  A request's middleware reads the result
once per connection (:meth:`ServerTls.client_certificate`) and decides.

A handshake is due within ``read_header_timeout``; a failed one (a plain
HTTP request on the TLS port, an old version, no common cipher) closes that
connection without an answer.  Lowering ``min_version`` below 771 lowers
OpenSSL's security level so that TLS 1.0/1.1 work, and adds ECDHE-CBC suites
to the defaults.  The settings are parsed in :mod:`fastgate.config`
(:class:`fastgate.config.TlsOptions`).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

from fastgate.certs import ClientCertificate, load_into, read_record
from fastgate.config import TLS_VERSIONS, ConfigError, TlsOptions
from fastgate.server.openssl import peer_verification, request_client_certificates
from fastgate.storage.base import Store, StoreError

__all__ = ["ServerTls"]

#: A certificate in service: its context, the names it is known by, its entry's
#: domain_name ("" for none).
_Loaded = tuple[ssl.SSLContext, list[str], str]
#: A certificate-store certificate in service: its record and password (to
#: build its context again when the client CAs change), and its names.
_Stored = tuple[bytes, bytes, list[str]]


def _names(cert_file: str) -> list[str]:
    """The names of the leaf in a PEM file."""
    with open(cert_file, "rb") as f:
        return _leaf_names(x509.load_pem_x509_certificate(f.read()))


def _leaf_names(leaf: x509.Certificate) -> list[str]:
    """The leaf's subject CN and DNS names, lower-cased (Go's BuildNameToCertificate)."""
    names = [attr.value for attr in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
             if isinstance(attr.value, str)]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    return [name.lower() for name in names]


class ServerTls:
    """The certificates in service and the context the listeners use.

    The listeners' context never changes; its SNI callback hands each
    handshake the context of the certificate it gets, looked up in the
    current set, so a reload swaps the set without touching a listener or an
    open connection.
    """

    def __init__(self, options: TlsOptions) -> None:
        self.options = options
        #: The CAs client certificates are verified with (DER), when the
        #: handshake asks for one (some API needs it); None: it does not ask.
        self.client_cas: tuple[bytes, ...] | None = None
        self.context = self._new_context()
        self.context.sni_callback = self._select
        self._default: ssl.SSLContext = self.context
        self._by_name: dict[str, ssl.SSLContext] = {}
        # (context, names, domain_name): the files' certificates, then the store's.
        self._files: list[_Loaded] = self._load()
        self._stored: list[_Loaded] = []
        self._stored_sources: list[_Stored] = []
        self._install()

    def set_client_auth(self, cas: Sequence[bytes] | None) -> str | None:
        """Ask every handshake for a client certificate (accepting any, or
        none: the APIs decide) and verify it with ``cas`` (DER); None: ask
        for none.  The contexts are built again, certificate files re-read,
        when this changes; the error (the contexts in service stay), or None.
        Connections already open keep what they were made with."""
        wanted = tuple(cas) if cas is not None else None
        if wanted == self.client_cas:
            return None
        previous, self.client_cas = self.client_cas, wanted
        try:
            files = self._load()
            stored = [self._stored_context(record, password)
                      for record, password, _ in self._stored_sources]
        except (ConfigError, OSError, ValueError) as exc:
            self.client_cas = previous
            return str(exc)
        if wanted is None:
            self.context.verify_mode = ssl.CERT_NONE
        else:
            self._client_auth(self.context)
        self._files = files
        self._stored = [(context, names, "") for context, (_, _, names)
                        in zip(stored, self._stored_sources, strict=True)]
        self._install()
        return None

    def client_certificate(self, transport: object) -> ClientCertificate | None:
        """The certificate the client of ``transport`` presented, with what
        the handshake's verification found; None when it sent none."""
        get_extra_info = getattr(transport, "get_extra_info", None)
        ssl_object = get_extra_info("ssl_object") if get_extra_info is not None else None
        if not isinstance(ssl_object, ssl.SSLObject):
            return None
        der = ssl_object.getpeercert(binary_form=True)
        if der is None:
            return None
        if self.client_cas:
            error, chain = peer_verification(ssl_object)
        else:
            error, chain = "no CA is trusted for client certificates", []
        return ClientCertificate.read(der, chain, error)

    def reload(self) -> str | None:
        """Read the certificate files again; the error (the set in service
        stays), or None."""
        try:
            loaded = self._load()
        except ConfigError as exc:
            return str(exc)
        self._files = loaded
        self._install()
        return None

    async def load_store(self, store: Store, password: bytes) -> list[str]:
        """Read the ``ssl_certificates`` from the certificate store (at start
        and on reload); what could not be used, said for the log.  A
        certificate missing, without a private key or unreadable is skipped,
        as Tyk skips it; the others are served after the files'."""
        problems: list[str] = []
        loaded: list[_Loaded] = []
        sources: list[_Stored] = []
        for cert_id in self.options.store_ids:
            try:
                record = await store.get_certificate(cert_id)
            except StoreError as exc:
                problems.append(f"ssl_certificates: {cert_id}: the store is unavailable: {exc}")
                return problems  # the set in service stays
            if record is None:
                problems.append(f"ssl_certificates: {cert_id}: not in the certificate store")
                continue
            stored = read_record(cert_id, record)
            if not stored.has_private or stored.leaf is None:
                problems.append(f"ssl_certificates: {cert_id}: has no private key")
                continue
            try:
                context = self._stored_context(record, password)
            except (OSError, ValueError) as exc:
                problems.append(f"ssl_certificates: {cert_id}: cannot be loaded "
                                f"(wrong private_certificate_encoding_secret?): {exc}")
                continue
            names = _leaf_names(stored.leaf)
            loaded.append((context, names, ""))
            sources.append((record, password, names))
        self._stored = loaded
        self._stored_sources = sources
        self._install()
        return problems

    def _stored_context(self, record: bytes, password: bytes) -> ssl.SSLContext:
        """A context serving a certificate-store record; raises OSError or
        ValueError when it cannot be loaded."""
        context = self._new_context()
        load_into(context, record, password)
        return context

    def _client_auth(self, context: ssl.SSLContext) -> None:
        cas = self.client_cas
        if cas is None:
            return
        if cas:
            context.load_verify_locations(cadata=b"".join(cas))
        request_client_certificates(context)

    def _new_context(self) -> ssl.SSLContext:
        options = self.options
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[options.min_version]
        context.maximum_version = TLS_VERSIONS[options.max_version]
        # OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 handshakes) at its default
        # security level: a configured min_version below 771 is honoured.
        context.set_ciphers(options.ciphers + (":@SECLEVEL=0" if options.min_version < 771
                                               else ""))
        context.set_alpn_protocols(["http/1.1"])
        context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
        context.options |= ssl.OP_NO_RENEGOTIATION
        self._client_auth(context)
        return context

    def _load(self) -> list[_Loaded]:
        """Every configured certificate file in its own context; raises
        ConfigError naming the entry and file that fails."""
        loaded: list[_Loaded] = []
        for index, entry in enumerate(self.options.certificates):
            context = self._new_context()
            field = f"http_server_options.certificates[{index}]"
            try:
                names = _names(entry.cert_file)
            except OSError as exc:
                raise ConfigError(self.options.file, field + ".cert_file", (
                    f"cannot read {entry.cert_file}: {exc.strerror or exc}")) from None
            except ValueError:
                raise ConfigError(self.options.file, field + ".cert_file", (
                    f"{entry.cert_file} does not begin with a PEM certificate")) from None
            try:
                context.load_cert_chain(entry.cert_file, entry.key_file)
            except OSError as exc:
                if isinstance(exc, ssl.SSLError):
                    reason = ("its private key does not match the certificate"
                              if exc.reason == "KEY_VALUES_MISMATCH"
                              else f"not a PEM private key ({exc.reason or exc})")
                else:
                    reason = f"cannot read it: {exc.strerror or exc}"
                raise ConfigError(self.options.file, field + ".key_file",
                                  f"{entry.key_file}: {reason}") from None
            loaded.append((context, names, entry.domain_name))
        return loaded

    def _install(self) -> None:
        """Swap in the name map of the certificates loaded (one assignment
        each: a handshake sees the old set or the new one)."""
        by_name: dict[str, ssl.SSLContext] = {}
        claimed: dict[str, ssl.SSLContext] = {}
        every = self._files + self._stored
        for context, names, domain_name in every:
            for name in names:
                by_name.setdefault(name, context)
            if domain_name:
                claimed[domain_name] = context
        by_name.update(claimed)
        self._by_name = by_name
        self._default = every[0][0] if every else self.context

    def select(self, server_name: str | None) -> ssl.SSLContext:
        """The context (certificate) a handshake naming ``server_name`` gets."""
        if server_name:
            name = server_name.lower()
            found = self._by_name.get(name)
            if found is not None:
                return found
            _, dot, rest = name.partition(".")
            if dot:
                found = self._by_name.get("*." + rest)
                if found is not None:
                    return found
        return self._default

    def _select(self, ssl_object: ssl.SSLObject, server_name: str | None,
                _context: ssl.SSLContext) -> None:
        ssl_object.context = self.select(server_name)

    def names(self) -> Sequence[str]:
        """The names certificates are known under (for logs and tests)."""
        return sorted(self._by_name)
