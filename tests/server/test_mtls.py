"""Static mutual TLS (``use_mutual_tls_auth`` + ``client_certificates``):
client certificates checked per API at the HTTP layer, with Tyk's 403s, on
a listener that also serves APIs without mTLS.

Real TLS on both sides: certificates by trustme and ``cryptography``, the
allow-lists uploaded through ``/tyk/certs``, clients requests, curl and
Python's ssl.  Run on the memory store and on a real redis-server.
"""

from __future__ import annotations

import datetime
import hashlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fastgate.certs import ClientCertificate

HOST = "127.0.0.1"
NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def cert_id(pem: bytes, org: str = "") -> str:
    return org + hashlib.sha256(der_of(pem)).hexdigest()


class Client:
    """A client certificate on disk: the chain file sent (leaf first) and its key."""

    def __init__(self, root: Path, name: str, chain: list[bytes], key: bytes) -> None:
        self.leaf = chain[0]
        self.sha256 = hashlib.sha256(der_of(self.leaf)).hexdigest()
        self.cert_file = root / f"{name}.crt"
        self.key_file = root / f"{name}.key"
        self.cert_file.write_bytes(b"".join(chain))
        self.key_file.write_bytes(key)

    @property
    def pair(self) -> tuple[str, str]:
        return str(self.cert_file), str(self.key_file)


def self_signed(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class Pki:
    """Root A (allow-listed as a CA on /m/), an intermediate under it, root B
    (allow-listed on /m2/ only), and the clients."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca_a = trustme.CA()
        self.inter = self.ca_a.create_child_ca()
        self.ca_b = trustme.CA()
        self.ca_file = root / "server-ca.pem"
        self.ca_a.cert_pem.write_to_path(str(self.ca_file))
        server = self.ca_a.issue_cert(HOST, "a.test")
        self.server_crt, self.server_key = root / "server.crt", root / "server.key"
        self.server_crt.write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
        server.private_key_pem.write_to_path(str(self.server_key))
        self.clients: dict[str, Client] = {}
        for name, ca, extra in (
            ("by_a", self.ca_a, {}),
            ("by_inter", self.inter, {}),
            ("listed", self.ca_b, {}),  # allow-listed on /m/ by its own id
            ("stranger", self.ca_b, {}),
            ("expired_by_a", self.ca_a, {"not_before": NOW - 3 * DAY, "not_after": NOW - DAY}),
            ("future_by_a", self.ca_a, {"not_before": NOW + DAY, "not_after": NOW + 3 * DAY}),
        ):
            leaf = ca.issue_cert(f"{name}@clients.test", **extra)
            self.clients[name] = Client(root, name, [p.bytes() for p in leaf.cert_chain_pems],
                                        leaf.private_key_pem.bytes())
        for name in ("pinned_self_signed", "unlisted_self_signed"):
            pem, key = self_signed(name)
            self.clients[name] = Client(root, name, [pem], key)
        stranger, listed = self.clients["stranger"], self.clients["listed"]
        # Chain smuggling: an unlisted leaf, with an allow-listed certificate
        # (or the allow-listed CA) sent behind it as if it were its chain.
        self.clients["smuggle_listed"] = Client(
            root, "smuggle_listed", [stranger.leaf, listed.leaf], stranger.key_file.read_bytes())
        self.clients["smuggle_ca"] = Client(
            root, "smuggle_ca", [stranger.leaf, self.ca_a.cert_pem.bytes()],
            stranger.key_file.read_bytes())

    def pem(self, name: str) -> bytes:
        return self.clients[name].leaf


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("mtls-pki"))


def mtls_api(api_id: str, path: str, upstream: str, ids: list[str], **extra: Any) -> dict:
    return {"api_id": api_id, "name": api_id, "org_id": "", "use_keyless": True,
            "use_mutual_tls_auth": True, "client_certificates": ids,
            "proxy": {"listen_path": path, "target_url": upstream, "strip_listen_path": True},
            "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
            **extra}


@pytest.fixture(scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def gw(request: pytest.FixtureRequest, module_gateway_factory: Any, make_api: Any, echo: Any,
       pki: Pki) -> Iterator[Any]:
    storage: dict[str, Any] = {"type": "memory"}
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        server.ensure_running()
        server.flush()
        storage = {"type": "redis", "host": server.host, "port": server.port}
    on_a = [cert_id(pki.ca_a.cert_pem.bytes()), cert_id(pki.pem("listed")),
            cert_id(pki.pem("pinned_self_signed")), "not-in-the-store"]
    gateway = module_gateway_factory(
        [mtls_api("m", "/m/", echo.base_url, on_a),
         mtls_api("m2", "/m2/", echo.base_url, [cert_id(pki.ca_b.cert_pem.bytes())]),
         make_api("open", "/open/", echo.base_url)],
        http_server_options={"use_ssl": True, "certificates": [
            {"domain_name": "a.test", "cert_file": str(pki.server_crt),
             "key_file": str(pki.server_key)}]},
        tls_verify=str(pki.ca_file), storage=storage)
    for pem in (pki.ca_a.cert_pem.bytes(), pki.ca_b.cert_pem.bytes(), pki.pem("listed"),
                pki.pem("pinned_self_signed")):
        add_certificate(gateway, pem)
    # The "certs" events make the listener trust the CAs now in the store.
    wait_for(lambda: get(gateway, pki, "/m/x", "by_a").status_code == 200)
    yield gateway


def add_certificate(gateway: Any, pem: bytes, org: str = "") -> str:
    resp = requests.post(gateway.url(f"/tyk/certs?org_id={org}"), data=pem,
                         headers={"X-Tyk-Authorization": gateway.secret},
                         verify=gateway.verify, timeout=10)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def get(gateway: Any, pki: Pki, path: str, client: str | None,
        key: str | None = None) -> requests.Response:
    cert = pki.clients[client].pair if client else None
    headers = {"Authorization": key} if key else {}
    return requests.get(gateway.url(path), cert=cert, verify=gateway.verify, timeout=10,
                        headers=headers)


def error_of(resp: requests.Response) -> str:
    return str(resp.json()["error"])


# ---------------------------------------------------------------- who gets in


@pytest.mark.parametrize("client", ["by_a", "by_inter", "listed", "pinned_self_signed"])
def test_an_allowed_certificate_reaches_the_upstream(gw, pki, client):
    """By its own id (self-signed too: pinning), or verified through an
    allow-listed CA (an intermediate sent by the client included)."""
    resp = get(gw, pki, "/m/x", client)
    assert resp.status_code == 200, resp.text
    assert resp.json()["path"] == "/x"


@pytest.mark.parametrize("client", ["stranger", "unlisted_self_signed", "smuggle_listed",
                                    "smuggle_ca"])
def test_a_certificate_not_allowed_gets_tyks_403_naming_the_leaf(gw, pki, client):
    resp = get(gw, pki, "/m/x", client)
    assert resp.status_code == 403
    assert error_of(resp) == f"Certificate with SHA256 {pki.clients[client].sha256} not allowed"


def test_an_allow_listed_certificate_behind_an_unlisted_leaf_does_not_count(gw, pki):
    """Tyk admits this (any certificate sent counts); only the leaf does here."""
    assert get(gw, pki, "/m/x", "listed").status_code == 200
    resp = get(gw, pki, "/m/x", "smuggle_listed")
    assert resp.status_code == 403
    assert pki.clients["stranger"].sha256 in error_of(resp)


def test_no_certificate_gets_tyks_403(gw, pki):
    resp = get(gw, pki, "/m/x", None)
    assert resp.status_code == 403
    assert error_of(resp) == "Client TLS certificate is required"


@pytest.mark.parametrize(("client", "message"), [
    ("expired_by_a", "Certificate has expired"),
    ("future_by_a", "Certificate is not yet valid"),
])
def test_a_certificate_outside_its_validity_is_refused(gw, pki, client, message):
    resp = get(gw, pki, "/m/x", client)
    assert resp.status_code == 403
    assert error_of(resp) == message


def test_each_api_has_its_own_allow_list_on_one_listener(gw, pki):
    # /m2/ trusts root B only: A's client is refused there, B's admitted.
    assert get(gw, pki, "/m2/x", "by_a").status_code == 403
    assert get(gw, pki, "/m2/x", "stranger").status_code == 200
    # An API without mTLS serves everyone, certificate or not, on the same port.
    for client in (None, "stranger", "unlisted_self_signed", "expired_by_a"):
        assert get(gw, pki, "/open/x", client).status_code == 200


def test_curl_with_a_client_certificate(gw, pki):
    curl = shutil.which("curl")
    assert curl, "curl is not installed"
    by_a = pki.clients["by_a"]
    out = subprocess.run(
        [curl, "-sS", "--cacert", str(pki.ca_file), "--cert", str(by_a.cert_file),
         "--key", str(by_a.key_file), "-o", "/dev/null", "-w", "%{http_code}",
         gw.url("/m/curl")], capture_output=True, text=True, timeout=30, check=False)
    assert out.stdout == "200", out.stderr
    out = subprocess.run(
        [curl, "-sS", "--cacert", str(pki.ca_file), gw.url("/m/curl")],
        capture_output=True, text=True, timeout=30, check=False)
    assert "Client TLS certificate is required" in out.stdout


def test_the_verdict_is_per_connection_and_keep_alive_keeps_it(gw, pki):
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(*pki.clients["by_a"].pair)
    with socket.create_connection((HOST, gw.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="a.test") as sock:
        for path in (b"/m/1", b"/open/2", b"/m/3"):
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: a.test\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                assert chunk
                head += chunk
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = head.partition(b"\r\n\r\n")[2]
            while len(body) < length:
                body += sock.recv(65536)


def test_a_certificate_removed_from_the_store_stops_being_allowed(gw, pki):
    listed = cert_id(pki.pem("listed"))
    assert get(gw, pki, "/m/x", "listed").status_code == 200
    resp = requests.delete(gw.url(f"/tyk/certs/{listed}"),
                           headers={"X-Tyk-Authorization": gw.secret},
                           verify=gw.verify, timeout=10)
    assert resp.status_code == 200, resp.text
    try:
        wait_for(lambda: get(gw, pki, "/m/x", "listed").status_code == 403)
    finally:
        add_certificate(gw, pki.pem("listed"))
    wait_for(lambda: get(gw, pki, "/m/x", "listed").status_code == 200)


def test_a_ca_removed_from_the_store_is_no_longer_trusted(gw, pki):
    ca_b = cert_id(pki.ca_b.cert_pem.bytes())
    assert get(gw, pki, "/m2/x", "stranger").status_code == 200
    requests.delete(gw.url(f"/tyk/certs/{ca_b}"), headers={"X-Tyk-Authorization": gw.secret},
                    verify=gw.verify, timeout=10)
    try:
        wait_for(lambda: get(gw, pki, "/m2/x", "stranger").status_code == 403)
    finally:
        add_certificate(gw, pki.ca_b.cert_pem.bytes())
    wait_for(lambda: get(gw, pki, "/m2/x", "stranger").status_code == 200)


def test_missing_allow_list_entries_are_logged(gw):
    wait_for(lambda: "not-in-the-store" in gw.logs())


# ---------------------------------------------------------------- without TLS


def test_over_plain_http_an_mtls_api_answers_tls_not_enabled(gateway_factory, echo):
    gateway = gateway_factory([mtls_api("m", "/m/", echo.base_url, ["x"])])
    resp = requests.get(gateway.url("/m/x"), timeout=10)
    assert resp.status_code == 403
    assert error_of(resp) == "TLS not enabled"
    wait_for(lambda: "http_server_options.use_ssl is off" in gateway.logs())


# ---------------------------------------------------------------- the certificate read


def test_a_client_certificate_is_read_with_its_dates(pki):
    pem = pki.pem("expired_by_a")
    der = der_of(pem)
    cert = ClientCertificate.read(der, [], "certificate has expired")
    assert cert.sha256 == hashlib.sha256(der).hexdigest()
    assert cert.chain_sha256 == frozenset()
    assert cert.validity_error(time.time()) == "Certificate has expired"
    assert cert.validity_error(cert.not_after - 1) is None
    assert cert.validity_error(cert.not_before - 1) == "Certificate is not yet valid"
    ca_der = der_of(pki.ca_a.cert_pem.bytes())
    chained = ClientCertificate.read(der, [der, ca_der], "")
    # The leaf itself never counts as its own issuer.
    assert chained.chain_sha256 == frozenset({hashlib.sha256(ca_der).hexdigest()})


# ---------------------------------------------------------------- keys bound to certificates


@pytest.fixture(scope="module")
def bound(gw: Any, pki: Pki, echo: Any) -> dict[str, str]:
    """An auth-token API with static mTLS (root A) and one without; a key
    bound to by_a's certificate and a key bound to nothing."""
    root_a = cert_id(pki.ca_a.cert_pem.bytes())
    gw.write_api(mtls_api("bound", "/bound/", echo.base_url, [root_a], use_keyless=False))
    gw.write_api({**mtls_api("tok", "/tok/", echo.base_url, []), "use_keyless": False,
                  "use_mutual_tls_auth": False})
    assert gw.reload().status_code == 200
    by_a = add_certificate_or_existing(gw, pki.pem("by_a"))
    keys = {}
    for name, bindings in (("bound", [by_a]), ("free", [])):
        body = {"access_rights": {api: {"api_id": api, "versions": ["Default"]}
                                  for api in ("bound", "tok")},
                "mtls_static_certificate_bindings": bindings, "org_id": ""}
        resp = admin(gw, "POST", "/tyk/keys/create", body)
        assert resp.status_code == 200, resp.text
        keys[name] = resp.json()["key"]
    wait_for(lambda: get(gw, pki, "/bound/x", "by_a", keys["free"]).status_code == 200)
    return keys


def add_certificate_or_existing(gateway: Any, pem: bytes) -> str:
    resp = requests.post(gateway.url("/tyk/certs"), data=pem,
                         headers={"X-Tyk-Authorization": gateway.secret},
                         verify=gateway.verify, timeout=10)
    assert resp.status_code in (200, 403), resp.text
    return cert_id(pem)


def admin(gateway: Any, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, gateway.url(path), json=body, timeout=10,
                            headers={"X-Tyk-Authorization": gateway.secret},
                            verify=gateway.verify)


def test_a_key_bound_to_a_certificate_works_only_with_it(gw, pki, bound):
    assert get(gw, pki, "/bound/x", "by_a", bound["bound"]).status_code == 200
    # by_inter passes the API's allow-list (root A), but the key is not bound to it.
    resp = get(gw, pki, "/bound/x", "by_inter", bound["bound"])
    assert resp.status_code == 401
    assert error_of(resp) == "Access to this API has been disallowed"
    assert get(gw, pki, "/bound/x", "by_inter", bound["free"]).status_code == 200


def test_bindings_are_not_looked_at_without_static_mtls_on_the_api(gw, pki, bound):
    assert get(gw, pki, "/tok/x", None, bound["bound"]).status_code == 200
    assert get(gw, pki, "/tok/x", "stranger", bound["bound"]).status_code == 200


def test_a_binding_must_name_a_stored_certificate_of_the_keys_org(gw, pki, bound):
    rights = {"access_rights": {"tok": {"api_id": "tok", "versions": ["Default"]}}}
    resp = admin(gw, "POST", "/tyk/keys/create",
                 {**rights, "mtls_static_certificate_bindings": ["nosuchcert"]})
    assert resp.status_code == 400
    assert resp.json()["message"] == "certificate not found: nosuchcert"
    by_a = cert_id(pki.pem("by_a"))
    resp = admin(gw, "POST", "/tyk/keys/create",
                 {**rights, "org_id": "org7", "mtls_static_certificate_bindings": [by_a]})
    assert resp.status_code == 400
    assert resp.json()["message"] == f"invalid certificate ID: {by_a}"
    # An update checks the ids it adds; nothing is written when one is refused.
    key = bound["free"]
    before = admin(gw, "GET", f"/tyk/keys/{key}").json()
    resp = admin(gw, "PUT", f"/tyk/keys/{key}",
                 {**before, "mtls_static_certificate_bindings": ["nosuchcert"]})
    assert resp.status_code == 400
    after = admin(gw, "GET", f"/tyk/keys/{key}").json()
    assert after.get("mtls_static_certificate_bindings") in (None, [])


# ---------------------------------------------------------------- dynamic mTLS


@pytest.fixture(scope="module")
def dynamic(gw: Any, pki: Pki, echo: Any) -> dict[str, str]:
    """An API of org1 whose keys are found by the client certificate
    (auth_configs.authToken.use_certificate); by_a's certificate stored for
    org1 and a key made for it."""
    api = {**mtls_api("dyn", "/dyn/", echo.base_url, []), "org_id": "org1",
           "use_keyless": False, "use_mutual_tls_auth": False,
           "auth_configs": {"authToken": {"use_certificate": True}}}
    gw.write_api(api)
    assert gw.reload().status_code == 200
    by_a = add_certificate(gw, pki.pem("by_a"), org="org1")
    inter = add_certificate(gw, pki.pem("by_inter"), org="org1")
    rights = {"access_rights": {"dyn": {"api_id": "dyn", "versions": ["Default"]}},
              "org_id": "org1"}
    keys = {"by_a_cert": by_a, "by_inter_cert": inter}
    for name, cert in (("by_a", by_a), ("by_inter", inter)):
        resp = admin(gw, "POST", "/tyk/keys/create", {**rights, "certificate": cert})
        assert resp.status_code == 200, resp.text
        keys[name] = resp.json()["key"]
    wait_for(lambda: get(gw, pki, "/dyn/x", "by_a").status_code == 200)
    return keys


def test_dynamic_mtls_finds_the_key_by_the_client_certificate(gw, pki, dynamic):
    resp = get(gw, pki, "/dyn/x", "by_a")
    assert resp.status_code == 200, resp.text
    assert resp.json()["path"] == "/x"
    # generateToken(org, cert id): the id already carries the org (Tyk trims it).
    assert dynamic["by_a"] == dynamic["by_a_cert"]


def test_dynamic_mtls_without_a_certificate_is_401_even_with_the_keys_token(gw, pki, dynamic):
    for key in (None, dynamic["by_a"]):
        resp = get(gw, pki, "/dyn/x", None, key)
        assert resp.status_code == 401
        assert error_of(resp) == "Client certificate required"
    # Nor does the token of another certificate's key change who is calling.
    resp = get(gw, pki, "/dyn/x", "stranger", dynamic["by_a"])
    assert resp.status_code == 401


@pytest.mark.parametrize("client", ["stranger", "unlisted_self_signed", "listed"])
def test_dynamic_mtls_a_certificate_without_a_key_is_401(gw, pki, dynamic, client):
    resp = get(gw, pki, "/dyn/x", client)
    assert resp.status_code == 401
    assert error_of(resp) == "Access to this API has been disallowed"


@pytest.mark.parametrize(("client", "message"), [
    ("expired_by_a", "Certificate has expired"),
    ("future_by_a", "Certificate is not yet valid"),
])
def test_dynamic_mtls_a_certificate_outside_its_validity_is_403(gw, pki, dynamic, client,
                                                                message):
    resp = get(gw, pki, "/dyn/x", client)
    assert resp.status_code == 403
    assert error_of(resp) == message


def test_dynamic_mtls_a_key_whose_certificate_left_the_store_is_403(gw, pki, dynamic):
    assert get(gw, pki, "/dyn/x", "by_inter").status_code == 200
    admin(gw, "DELETE", f"/tyk/certs/{dynamic['by_inter_cert']}")
    try:
        wait_for(lambda: get(gw, pki, "/dyn/x", "by_inter").status_code == 403)
        assert error_of(get(gw, pki, "/dyn/x", "by_inter")) == \
            "Access to this API has been disallowed"
    finally:
        add_certificate(gw, pki.pem("by_inter"), org="org1")
    wait_for(lambda: get(gw, pki, "/dyn/x", "by_inter").status_code == 200)


def test_dynamic_mtls_key_creation_follows_tyks_rules(gw, pki, dynamic):
    rights = {"access_rights": {"dyn": {"api_id": "dyn", "versions": ["Default"]}},
              "org_id": "org1"}
    resp = admin(gw, "POST", "/tyk/keys/create", {**rights, "certificate": dynamic["by_a_cert"]})
    assert resp.status_code == 500
    assert resp.json()["message"] == ("Failed to create key - Key with given certificate "
                                      "already found:" + dynamic["by_a"])
    resp = admin(gw, "POST", "/tyk/keys/create", {**rights, "certificate": "org1nosuchcert"})
    assert resp.status_code == 400
    assert resp.json()["message"] == "Key must be used with an existent certificate"
    key = dynamic["by_a"]
    current = admin(gw, "GET", f"/tyk/keys/{key}").json()
    assert current["certificate"] == dynamic["by_a_cert"]
    for certificate, message in (("", "Key cannot be used without a certificate"),
                                 ("org1nosuchcert",
                                  "Key must be used with an existent certificate")):
        resp = admin(gw, "PUT", f"/tyk/keys/{key}", {**current, "certificate": certificate})
        assert resp.status_code == 400
        assert resp.json()["message"] == message
    assert admin(gw, "GET", f"/tyk/keys/{key}").json()["certificate"] == dynamic["by_a_cert"]
    assert get(gw, pki, "/dyn/x", "by_a").status_code == 200


def test_over_plain_http_dynamic_mtls_refuses_the_token(gateway_factory, echo, admin_for):
    api = {**mtls_api("dyn", "/dyn/", echo.base_url, []), "use_keyless": False,
           "use_mutual_tls_auth": False,
           "auth_configs": {"authToken": {"use_certificate": True}}}
    gateway = gateway_factory([api])
    key = admin_for(gateway).add_key("plainkey1", {
        "access_rights": {"dyn": {"api_id": "dyn", "versions": ["Default"]}}})["key"]
    # Tyk admits the key's token here (no TLS, so no certificate check).
    resp = requests.get(gateway.url("/dyn/x"), headers={"Authorization": key}, timeout=10)
    assert resp.status_code == 401
    assert error_of(resp) == "Client certificate required"


# ---------------------------------------------------------------- what later steps see


def test_the_admitting_certificate_reaches_the_exchange_hook(tmp_path, pki, echo, free_port):
    """Static mTLS records the allow-list entry that admitted the request (the
    CA here), dynamic mTLS the key's certificate; the hook also sees the
    certificate itself (plain HTTP: none)."""
    import json

    from .test_exchange_hook import SECRET, InProcessGateway

    root_a = cert_id(pki.ca_a.cert_pem.bytes())
    dyn = {**mtls_api("dyn", "/dyn/", echo.base_url, []), "org_id": "org1",
           "use_keyless": False, "use_mutual_tls_auth": False,
           "auth_configs": {"authToken": {"use_certificate": True}}}
    (tmp_path / "apps").mkdir()
    for api in (mtls_api("m", "/m/", echo.base_url, [root_a]), dyn):
        (tmp_path / "apps" / f"{api['api_id']}.json").write_text(json.dumps(api))
    port = free_port()
    (tmp_path / "gateway.json").write_text(json.dumps({
        "listen_address": HOST, "listen_port": port, "secret": SECRET, "app_path": "apps",
        "storage": {"type": "memory"}, "graceful_shutdown_timeout_duration": 1,
        "http_server_options": {"use_ssl": True, "certificates": [
            {"domain_name": "a.test", "cert_file": str(pki.server_crt),
             "key_file": str(pki.server_key)}]}}))
    gateway = InProcessGateway(tmp_path, port)
    try:
        def call(method: str, path: str, **kwargs: Any) -> requests.Response:
            return requests.request(method, gateway.url(path), verify=str(pki.ca_file),
                                    timeout=10, **kwargs)

        admin_headers = {"X-Tyk-Authorization": SECRET}
        assert call("POST", "/tyk/certs", data=pki.ca_a.cert_pem.bytes(),
                    headers=admin_headers).status_code == 200
        by_a = call("POST", "/tyk/certs?org_id=org1", data=pki.pem("by_a"),
                    headers=admin_headers).json()["id"]
        assert call("POST", "/tyk/keys/create", headers=admin_headers, json={
            "org_id": "org1", "certificate": by_a,
            "access_rights": {"dyn": {"api_id": "dyn", "versions": ["Default"]}}},
        ).status_code == 200
        cert = pki.clients["by_a"].pair
        wait_for(lambda: call("GET", "/m/x", cert=cert).status_code == 200)
        gateway.records.clear()
        assert call("GET", "/m/x", cert=cert).status_code == 200
        assert call("GET", "/dyn/x", cert=cert).status_code == 200
        static, dynamic = gateway.take(2)
        assert static["certificate_id"] == root_a
        assert dynamic["certificate_id"] == by_a
        assert static["client_certificate"].sha256 == pki.clients["by_a"].sha256
    finally:
        gateway.stop()


def test_dynamic_mtls_chains_with_basic_auth_and_can_be_the_base_identity(gw, pki, dynamic,
                                                                          echo):
    """Both methods must pass; with base_identity_provided_by auth_token the
    certificate's key decides access (the Basic user has no right to this API)."""
    api = {**mtls_api("chain", "/chain/", echo.base_url, []), "org_id": "org1",
           "use_keyless": False, "use_mutual_tls_auth": False, "use_basic_auth": True,
           "use_standard_auth": True, "base_identity_provided_by": "auth_token",
           "auth_configs": {"authToken": {"use_certificate": True}}}
    gw.write_api(api)
    assert gw.reload().status_code == 200
    resp = admin(gw, "POST", "/tyk/keys/chainuser1", {
        "org_id": "org1", "basic_auth_data": {"password": "pw-chain-1"},
        "access_rights": {"tok": {"api_id": "tok", "versions": ["Default"]}}})
    assert resp.status_code == 200, resp.text
    key = dynamic["by_a"]
    current = admin(gw, "GET", f"/tyk/keys/{key}").json()
    rights = {**current["access_rights"],
              "chain": {"api_id": "chain", "versions": ["Default"]}}
    assert admin(gw, "PUT", f"/tyk/keys/{key}",
                 {**current, "access_rights": rights}).status_code == 200
    cert = pki.clients["by_a"].pair

    def call(client_cert: Any, auth: Any) -> requests.Response:
        return requests.get(gw.url("/chain/x"), cert=client_cert, auth=auth,
                            verify=gw.verify, timeout=10)

    wait_for(lambda: call(cert, ("chainuser1", "pw-chain-1")).status_code == 200)
    assert call(cert, None).status_code == 401  # Basic auth missing
    resp = call(None, ("chainuser1", "pw-chain-1"))
    assert resp.status_code == 401
    assert error_of(resp) == "Client certificate required"
    assert call(pki.clients["by_inter"].pair, ("chainuser1", "pw-chain-1")).status_code == 403


# ---------------------------------------------------------------- the REST API


def test_control_api_mutual_tls_guards_the_rest_api(gateway_factory, make_api, echo, pki):
    """security.control_api_use_mutual_tls with security.certificates.control_api
    (here a PEM file, as Tyk's certificate manager takes them): /tyk/ needs an
    allowed client certificate as well as the secret; /hello and the APIs
    do not.  An allow-list entry may be a file for an API too."""
    listed_file = pki.root / "listed-only.pem"
    listed_file.write_bytes(pki.pem("listed"))
    gateway = gateway_factory(
        [make_api("open", "/open/", echo.base_url),
         mtls_api("byfile", "/byfile/", echo.base_url, [str(listed_file)])],
        http_server_options={"use_ssl": True, "certificates": [
            {"domain_name": "a.test", "cert_file": str(pki.server_crt),
             "key_file": str(pki.server_key)}]},
        tls_verify=str(pki.ca_file),
        security={"control_api_use_mutual_tls": True,
                  "certificates": {"control_api": [str(pki.ca_file)]}})

    def rest(client: str | None, secret: str | None = None) -> requests.Response:
        cert = pki.clients[client].pair if client else None
        return requests.get(gateway.url("/tyk/apis"), cert=cert, verify=gateway.verify,
                            headers={"X-Tyk-Authorization": secret or gateway.secret},
                            timeout=10)

    assert rest("by_a").status_code == 200
    resp = rest(None)
    assert resp.status_code == 403
    assert error_of(resp) == "Client TLS certificate is required"
    resp = rest("stranger")
    assert resp.status_code == 403
    assert "not allowed" in error_of(resp)
    # The certificate does not replace the secret.
    assert rest("by_a", secret="wrong").status_code == 403
    assert requests.get(gateway.url("/hello"), verify=gateway.verify,
                        timeout=10).status_code == 200
    assert get(gateway, pki, "/open/x", None).status_code == 200
    assert get(gateway, pki, "/byfile/x", "listed").status_code == 200
    assert get(gateway, pki, "/byfile/x", "stranger").status_code == 403
