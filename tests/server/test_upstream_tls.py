"""TLS to upstreams: ``https://`` targets verified by default, SNI and host
names, keep-alive TLS connections, client certificates presented to an
upstream that requires one (Tyk's host-pattern precedence), public-key
pinning, versions -- and a 502 naming the reason when any of it fails.

The upstream is a real HTTPS server (Python's ssl) made with trustme
certificates; it answers what it saw (the path, its connection, the client
certificate's subject, the TLS version).
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fastgate.server.upstream_tls import for_host

HOST = "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        peer = self.connection.getpeercert()  # type: ignore[attr-defined]
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        body = json.dumps({
            "path": self.path, "connection": self.client_address[1],
            "client_cn": subject.get("commonName"),
            "version": self.connection.version(),  # type: ignore[attr-defined]
            "sni": getattr(self.server, "last_sni", None),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


class TlsUpstream:
    """An HTTPS server on a free port; ``client_ca``: require a client
    certificate issued by it."""

    def __init__(self, cert: trustme.LeafCert, client_ca: trustme.CA | None = None,
                 max_version: ssl.TLSVersion | None = None) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        if client_ca is not None:
            client_ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        if max_version is not None:
            context.maximum_version = max_version
        self.server = ThreadingHTTPServer((HOST, 0), _Handler)
        self.server.daemon_threads = True

        def remember_sni(sslobj: Any, name: str | None, _ctx: Any) -> None:
            self.server.last_sni = name  # type: ignore[attr-defined]

        context.sni_callback = remember_sni
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Pki:
    def __init__(self, root: Path) -> None:
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()
        self.client_ca = trustme.CA()
        self.ca_file = root / "upstream-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.server = self.ca.issue_cert("localhost")
        self.clients = {name: self.client_ca.issue_cert(f"{name}.clients.test",
                                                        common_name=name)
                        for name in ("gateway-wide", "api-own", "from-file")}
        self.client_file = root / "from-file.pem"
        chosen = self.clients["from-file"]
        self.client_file.write_bytes(b"".join(p.bytes() for p in chosen.cert_chain_pems)
                                     + chosen.private_key_pem.bytes())

    def leaf_key_sha256(self, cert: trustme.LeafCert) -> str:
        leaf = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
        return key_sha256(leaf)

    def ca_key_sha256(self, ca: trustme.CA) -> str:
        return key_sha256(x509.load_pem_x509_certificate(ca.cert_pem.bytes()))


def key_sha256(cert: x509.Certificate) -> str:
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("upstream-pki"))


@pytest.fixture(scope="module")
def upstream(pki: Pki) -> Iterator[TlsUpstream]:
    server = TlsUpstream(pki.server)
    yield server
    server.close()


@pytest.fixture(scope="module")
def mtls_upstream(pki: Pki) -> Iterator[TlsUpstream]:
    server = TlsUpstream(pki.server, client_ca=pki.client_ca)
    yield server
    server.close()


def https_api(api_id: str, port: int, host: str = "localhost", **extra: Any) -> dict[str, Any]:
    transport = extra.pop("transport", None)
    proxy: dict[str, Any] = {"listen_path": f"/{api_id}/", "strip_listen_path": True,
                             "target_url": f"https://{host}:{port}"}
    if transport is not None:
        proxy["transport"] = transport
    return {"api_id": api_id, "name": api_id, "org_id": "", "use_keyless": True,
            "proxy": proxy,
            "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
            **extra}


def error_of(resp: requests.Response) -> str:
    return str(resp.json()["error"])


# ---------------------------------------------------------------- verification


def test_a_verified_upstream_is_reached_over_kept_alive_tls(gateway_factory, pki, upstream):
    gw = gateway_factory([https_api("up", upstream.port)], proxy_ssl_ca_file=str(pki.ca_file))
    answers = [requests.get(gw.url(f"/up/{i}"), timeout=10) for i in range(5)]
    assert [a.status_code for a in answers] == [200] * 5, answers[0].text
    seen = [a.json() for a in answers]
    assert seen[0]["path"] == "/0" and seen[0]["sni"] == "localhost"
    assert seen[0]["version"] in ("TLSv1.2", "TLSv1.3")
    # One TLS connection, kept alive across the requests.
    assert len({s["connection"] for s in seen}) == 1


def test_an_upstream_whose_certificate_does_not_verify_is_a_502_naming_why(
        gateway_factory, upstream):
    gw = gateway_factory([https_api("up", upstream.port)])  # the system's CAs only
    resp = requests.get(gw.url("/up/x"), timeout=10)
    assert resp.status_code == 502
    assert "certificate verify failed" in error_of(resp)
    assert "unable to get local issuer certificate" in error_of(resp)
    # The gateway keeps serving.
    assert requests.get(gw.url("/hello"), timeout=10).status_code == 200


def test_the_host_name_is_checked_against_the_certificate(gateway_factory, pki, upstream):
    # The certificate names localhost, not 127.0.0.1.
    gw = gateway_factory([https_api("ip", upstream.port, host=HOST)],
                         proxy_ssl_ca_file=str(pki.ca_file))
    resp = requests.get(gw.url("/ip/x"), timeout=10)
    assert resp.status_code == 502
    assert "mismatch" in error_of(resp)


@pytest.mark.parametrize("where", ["api", "gateway"])
def test_insecure_skip_verify_reaches_an_unverifiable_upstream(gateway_factory, upstream,
                                                               where):
    if where == "api":
        gw = gateway_factory([https_api("up", upstream.port,
                                        transport={"ssl_insecure_skip_verify": True})])
    else:
        gw = gateway_factory([https_api("up", upstream.port)],
                             proxy_ssl_insecure_skip_verify=True)
    resp = requests.get(gw.url("/up/x"), timeout=10)
    assert resp.status_code == 200, resp.text


def test_an_api_ca_file_is_added_to_the_systems(gateway_factory, pki, upstream):
    gw = gateway_factory([https_api("up", upstream.port,
                                    transport={"ssl_ca_file": str(pki.ca_file)})])
    assert requests.get(gw.url("/up/x"), timeout=10).status_code == 200


def test_a_minimum_version_the_upstream_lacks_is_a_502(gateway_factory, pki):
    old = TlsUpstream(pki.server, max_version=ssl.TLSVersion.TLSv1_2)
    try:
        gw = gateway_factory([https_api("new", old.port, transport={"ssl_min_version": 772}),
                              https_api("any", old.port)],
                             proxy_ssl_ca_file=str(pki.ca_file))
        resp = requests.get(gw.url("/new/x"), timeout=10)
        assert resp.status_code == 502
        assert "upstream TLS handshake failed" in error_of(resp)
        resp = requests.get(gw.url("/any/x"), timeout=10)
        assert resp.status_code == 200 and resp.json()["version"] == "TLSv1.2"
    finally:
        old.close()


# ---------------------------------------------------------------- client certificates


def add_certificate(gw: Any, cert: trustme.LeafCert) -> str:
    body = b"".join(p.bytes() for p in cert.cert_chain_pems) + cert.private_key_pem.bytes()
    resp = requests.post(gw.url("/tyk/certs"), data=body, timeout=10,
                         headers={"X-Tyk-Authorization": gw.secret})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def leaf_id(cert: trustme.LeafCert) -> str:
    leaf = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_an_upstream_requiring_a_client_certificate_gets_the_one_its_host_maps_to(
        gateway_factory, pki, mtls_upstream):
    wide, own = pki.clients["gateway-wide"], pki.clients["api-own"]
    port = mtls_upstream.port
    gw = gateway_factory(
        [https_api("wide", port), https_api("own", port,
                                            upstream_certificates={f"localhost:{port}":
                                                                   leaf_id(own)}),
         https_api("none", port, upstream_certificates_disabled=True),
         https_api("file", port, upstream_certificates={"localhost": str(pki.client_file)})],
        proxy_ssl_ca_file=str(pki.ca_file),
        security={"certificates": {"upstream": {"*": leaf_id(wide)}},
                  "private_certificate_encoding_secret": "enc-secret-1"})
    add_certificate(gw, wide)
    add_certificate(gw, own)
    resp = requests.get(gw.url("/wide/x"), timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["client_cn"] == "gateway-wide"
    # The API's map wins over the gateway's.
    assert requests.get(gw.url("/own/x"), timeout=10).json()["client_cn"] == "api-own"
    assert requests.get(gw.url("/file/x"), timeout=10).json()["client_cn"] == "from-file"
    # upstream_certificates_disabled: only the gateway's map, which "*" covers.
    assert requests.get(gw.url("/none/x"), timeout=10).json()["client_cn"] == "gateway-wide"


def test_a_client_certificate_missing_from_the_store_is_a_502_naming_it(gateway_factory, pki,
                                                                        mtls_upstream):
    gw = gateway_factory([https_api("up", mtls_upstream.port,
                                    upstream_certificates={"*": "org1missing"})],
                         proxy_ssl_ca_file=str(pki.ca_file))
    resp = requests.get(gw.url("/up/x"), timeout=10)
    assert resp.status_code == 502
    assert error_of(resp) == "upstream certificate org1missing is not in the certificate store"


def test_without_a_client_certificate_the_upstream_refuses(gateway_factory, pki,
                                                           mtls_upstream):
    gw = gateway_factory([https_api("up", mtls_upstream.port)],
                         proxy_ssl_ca_file=str(pki.ca_file))
    assert requests.get(gw.url("/up/x"), timeout=10).status_code == 502


@pytest.mark.parametrize(("maps", "host", "port", "expected"), [
    ([{"*": "a"}], "api.example.com", 443, "a"),
    ([{"*": "a", "*.example.com": "b"}], "api.example.com", 443, "b"),
    ([{"*.example.com": "b", "*.example.com:8443": "c"}], "api.example.com", 8443, "c"),
    ([{"*.example.com:8443": "c", "api.example.com": "d"}], "api.example.com", 8443, "d"),
    ([{"api.example.com": "d", "api.example.com:8443": "e"}], "api.example.com", 8443, "e"),
    ([{"api.example.com:8443": "e"}], "api.example.com", 443, ""),
    ([{"*.example.com": "b"}], "example.com", 443, ""),
    # Later maps (the API's) win, even with a less specific pattern.
    ([{"api.example.com": "gw"}, {"*": "api"}], "api.example.com", 443, "api"),
    ([{"api.example.com": "gw"}, {}], "api.example.com", 443, "gw"),
])
def test_host_patterns_follow_tyks_precedence(maps, host, port, expected):
    assert for_host(host, port, maps) == expected


# ---------------------------------------------------------------- pinning


def test_a_pinned_key_admits_the_upstream_and_another_refuses_it(gateway_factory, pki,
                                                                 upstream):
    right = pki.leaf_key_sha256(pki.server)
    ca_key = pki.ca_key_sha256(pki.ca)
    wrong = pki.ca_key_sha256(pki.other_ca)
    gw = gateway_factory(
        [https_api("right", upstream.port, pinned_public_keys={"localhost": f"{wrong},{right}"}),
         https_api("ca", upstream.port, pinned_public_keys={"*": ca_key}),
         https_api("wrong", upstream.port, pinned_public_keys={"localhost": wrong}),
         https_api("off", upstream.port, pinned_public_keys={"localhost": wrong},
                   certificate_pinning_disabled=True),
         https_api("ca_unverified", upstream.port, pinned_public_keys={"*": ca_key},
                   transport={"ssl_insecure_skip_verify": True})],
        proxy_ssl_ca_file=str(pki.ca_file))
    assert requests.get(gw.url("/right/x"), timeout=10).status_code == 200
    # The CA's key is in the verified chain.
    assert requests.get(gw.url("/ca/x"), timeout=10).status_code == 200
    resp = requests.get(gw.url("/wrong/x"), timeout=10)
    assert resp.status_code == 502
    assert error_of(resp) == ("https://localhost certificate public key pinning error. "
                              "Public keys do not match.")
    assert requests.get(gw.url("/off/x"), timeout=10).status_code == 200
    # Without verification nothing proves the CA signed the leaf: the leaf's
    # key must be pinned (Tyk accepts any key the upstream sends).
    assert requests.get(gw.url("/ca_unverified/x"), timeout=10).status_code == 502


def test_a_pin_may_name_a_public_key_in_the_certificate_store(gateway_factory, pki, upstream):
    leaf = x509.load_pem_x509_certificate(pki.server.cert_chain_pems[0].bytes())
    public_pem = leaf.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    gw = gateway_factory([https_api("up", upstream.port,
                                    pinned_public_keys={"localhost": "org5" + "0" * 64})],
                         proxy_ssl_ca_file=str(pki.ca_file))
    # An id not in the store pins nothing that could match.
    assert requests.get(gw.url("/up/x"), timeout=10).status_code == 502
    resp = requests.post(gw.url("/tyk/certs?org_id=org5"), data=public_pem, timeout=10,
                         headers={"X-Tyk-Authorization": gw.secret})
    stored = resp.json()["id"]
    gw.write_api(https_api("up", upstream.port, pinned_public_keys={"localhost": stored}))
    assert gw.reload().status_code == 200
    assert requests.get(gw.url("/up/x"), timeout=10).status_code == 200


# ---------------------------------------------------------------- the settings, read


@pytest.mark.parametrize(("config", "field"), [
    ({"proxy_ssl_min_version": 999}, "proxy_ssl_min_version"),
    ({"proxy_ssl_min_version": 772, "proxy_ssl_max_version": 771}, "proxy_ssl_min_version"),
    ({"proxy_ssl_ciphers": ["TLS_NOPE"]}, "proxy_ssl_ciphers"),
    ({"security": {"certificates": {"upstream": {"*": 1}}}}, "security.certificates.upstream.*"),
    ({"security": {"pinned_public_keys": ["x"]}}, "security.pinned_public_keys"),
])
def test_bad_gateway_upstream_tls_settings_name_the_field(config, field):
    from fastgate.config import ConfigError, parse_gateway_config

    with pytest.raises(ConfigError) as caught:
        parse_gateway_config({"secret": "s", "app_path": ".", **config}, "/etc/tyk.conf")
    assert caught.value.field == field


def test_gateway_upstream_tls_settings_are_read():
    from fastgate.config import parse_gateway_config

    config = parse_gateway_config({
        "secret": "s", "app_path": ".", "proxy_ssl_insecure_skip_verify": True,
        "proxy_ssl_min_version": 772, "proxy_ssl_ca_file": "ca.pem",
        "proxy_ssl_ciphers": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        "security": {"certificates": {"upstream": {"*": "org1abc", "h": "certs/h.pem"}},
                     "pinned_public_keys": {"h": "k1,k2"}}}, "/etc/tyk/tyk.conf")
    tls = config.upstream_tls
    assert tls.insecure_skip_verify and tls.min_version == 772 and tls.max_version == 0
    assert tls.ca_file == "/etc/tyk/ca.pem" and tls.ciphers == "ECDHE-RSA-AES128-GCM-SHA256"
    assert tls.certificates == {"*": "org1abc", "h": "/etc/tyk/certs/h.pem"}
    assert tls.pinned_public_keys == {"h": "k1,k2"}
    assert "proxy_ssl_insecure_skip_verify" not in config.ignored_fields


def test_api_upstream_tls_settings_are_read_and_the_rest_of_transport_reported():
    from fastgate.apidef import parse_api_definition
    from fastgate.config import ConfigError

    spec = parse_api_definition(https_api(
        "a", 443, upstream_certificates={"*": "c1", "h": "./h.pem"},
        pinned_public_keys={"*": "p"},
        transport={"ssl_insecure_skip_verify": True, "ssl_max_version": 771,
                   "ssl_ca_file": "ca.pem", "proxy_url": "http://proxy:3128"}),
        "/etc/tyk/apps/a.json")
    tls = spec.upstream_tls
    assert tls.insecure_skip_verify and tls.max_version == 771
    assert tls.ca_file == "/etc/tyk/apps/ca.pem"
    assert tls.certificates == {"*": "c1", "h": "/etc/tyk/apps/./h.pem"}
    assert tls.pinned_public_keys == {"*": "p"}
    assert spec.ignored_fields == ("proxy.transport.proxy_url",)
    disabled = parse_api_definition(https_api(
        "a", 443, upstream_certificates={"*": "c1"}, upstream_certificates_disabled=True,
        pinned_public_keys={"*": "p"}, certificate_pinning_disabled=True), "a.json")
    assert disabled.upstream_tls.certificates == {}
    assert disabled.upstream_tls.pinned_public_keys == {}
    with pytest.raises(ConfigError) as caught:
        parse_api_definition(https_api("a", 443, transport={"ssl_ciphers": ["RC4"]}), "a.json")
    assert caught.value.field == "proxy.transport.ssl_ciphers"
