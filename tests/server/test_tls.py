"""The TLS listener (``http_server_options.use_ssl``): certificates by SNI,
versions and ciphers, HTTP/1.1 over TLS as on the plain listener, refusals
that harm no other connection, and certificates reloaded in service.

Certificates are made by trustme; clients are requests, curl, openssl
s_client and Python's ssl over real sockets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from fastgate.config import ConfigError, parse_gateway_config

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    # RSA keys: then every TLS 1.2 suite (RSA key exchange included) could be
    # negotiated, and only the gateway's cipher list refuses the weak ones.
    return trustme.CA(key_type=trustme.KeyType.RSA)


@pytest.fixture(scope="module")
def pki(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PEM files: the CA, a certificate for a.test (the first, the default;
    also valid for 127.0.0.1, what clients without SNI connect to), one for
    *.b.test, and another one for a.test (for reloads)."""
    root = tmp_path_factory.mktemp("pki")
    files: dict[str, Path] = {"ca": root / "ca.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    for name, hosts in (("a", ("a.test", HOST)), ("b", ("*.b.test",)),
                        ("a2", ("a.test", HOST))):
        cert = ca.issue_cert(*hosts, common_name=hosts[0], key_type=trustme.KeyType.RSA)
        files[f"{name}.crt"] = root / f"{name}.crt"
        files[f"{name}.key"] = root / f"{name}.key"
        files[f"{name}.crt"].write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(files[f"{name}.key"]))
    return files


def tls_options(pki: dict[str, Path], **extra: Any) -> dict[str, Any]:
    return {"use_ssl": True, "certificates": [
        {"domain_name": "a.test", "cert_file": str(pki["a.crt"]),
         "key_file": str(pki["a.key"])},
        {"domain_name": "", "cert_file": str(pki["b.crt"]), "key_file": str(pki["b.key"])},
    ], **extra}


@pytest.fixture(scope="module")
def gw(module_gateway_factory: Any, make_api: Any, echo: Any, pki: dict[str, Path]) -> Any:
    return module_gateway_factory(
        [make_api("t", "/t/", echo.base_url)],
        http_server_options=tls_options(pki), tls_verify=str(pki["ca"]))


def client_context(ca_file: Path | None = None, **settings: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if ca_file is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    for name, value in settings.items():
        setattr(context, name, value)
    return context


def connect(port: int, context: ssl.SSLContext, server_name: str | None) -> ssl.SSLSocket:
    raw = socket.create_connection((HOST, port), timeout=10)
    return context.wrap_socket(raw, server_hostname=server_name)


def peer_names(sock: ssl.SSLSocket) -> list[str]:
    cert = sock.getpeercert()
    assert cert, "the gateway presented no certificate"
    return [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with Content-Length (what the echo upstream sends)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-head: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return status, headers, rest[:length]


def upstream_headers(body: bytes) -> dict[str, str]:
    return {name.lower(): value for name, value in json.loads(body)["headers"]}


# ---------------------------------------------------------------- serving over TLS


def test_requests_over_tls_reach_the_upstream_with_forwarded_proto_https(gw, pki):
    resp = requests.get(f"https://{HOST}:{gw.port}/t/x", verify=str(pki["ca"]), timeout=10,
                        headers={"Host": "a.test"})
    assert resp.status_code == 200, resp.text
    assert upstream_headers(resp.content)["x-forwarded-proto"] == "https"


def test_keep_alive_and_pipelining_over_one_tls_connection(gw, pki):
    with connect(gw.port, client_context(pki["ca"]), "a.test") as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert sock.selected_alpn_protocol() in (None, "http/1.1")
        request = b"GET /t/%d HTTP/1.1\r\nHost: a.test\r\n\r\n"
        sock.sendall(request % 1)
        assert read_response(sock)[0] == 200
        # Two requests in one write: answered in order on the same connection.
        sock.sendall(request % 2 + request % 3)
        first, second = read_response(sock), read_response(sock)
        assert (first[0], second[0]) == (200, 200)
        assert json.loads(first[2])["path"].endswith("/2")
        assert json.loads(second[2])["path"].endswith("/3")


def test_alpn_chooses_http_1_1_over_h2(gw, pki):
    context = client_context(pki["ca"])
    context.set_alpn_protocols(["h2", "http/1.1"])
    with connect(gw.port, context, "a.test") as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"


def test_a_large_upload_without_expect_streams_through(gw, pki):
    body = os.urandom(3 * 1024 * 1024)
    resp = requests.post(f"https://{HOST}:{gw.port}/t/up", data=body, verify=str(pki["ca"]),
                         headers={"Host": "a.test"}, timeout=30)
    assert resp.status_code == 200
    assert resp.json()["body_length"] == len(body)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_verifies_the_gateway_certificate(gw, pki):
    done = subprocess.run(
        ["curl", "-sS", "--cacert", str(pki["ca"]), "--resolve", f"x.b.test:{gw.port}:{HOST}",
         f"https://x.b.test:{gw.port}/t/curl"], capture_output=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["path"].endswith("/curl")


def test_framing_refusals_hold_over_tls(gw, pki):
    with connect(gw.port, client_context(pki["ca"]), "a.test") as sock:
        sock.sendall(b"POST /t/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        status, headers, _ = read_response(sock)
        assert status == 400
        assert headers.get("connection") == "close"


# ---------------------------------------------------------------- certificates by SNI


@pytest.mark.parametrize(("server_name", "names"), [
    ("a.test", ["a.test"]),
    ("A.TEST", ["a.test"]),          # SNI names match case-insensitively
    ("x.b.test", ["*.b.test"]),      # a wildcard certificate, by its DNS name
    ("y.x.b.test", ["a.test"]),      # a wildcard covers one label only: the default
    ("unknown.test", ["a.test"]),    # no match: the first certificate
    (None, ["a.test"]),              # no SNI: the first certificate
])
def test_sni_picks_the_certificate(gw, pki, server_name, names):
    with connect(gw.port, client_context(pki["ca"], check_hostname=False), server_name) as sock:
        assert peer_names(sock) == names


def test_domain_name_wins_over_the_names_in_the_certificates(module_gateway_factory, make_api,
                                                            echo, pki):
    # The *.b.test certificate claims "a.test" through its entry's domain_name.
    options = tls_options(pki)
    options["certificates"][1]["domain_name"] = "a.test"
    gw = module_gateway_factory([make_api("t", "/t/", echo.base_url)],
                                http_server_options=options, tls_verify=str(pki["ca"]))
    with connect(gw.port, client_context(pki["ca"], check_hostname=False), "a.test") as sock:
        assert peer_names(sock) == ["*.b.test"]


# ---------------------------------------------------------------- versions and ciphers


#: How a handshake the gateway refuses ends for the client: an alert, or (uvloop
#: aborts the transport before flushing it) an EOF.
REFUSED = ("TLSV1_ALERT_PROTOCOL_VERSION", "SSLV3_ALERT_HANDSHAKE_FAILURE",
           "UNEXPECTED_EOF_WHILE_READING")


def old_client(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client offering exactly ``version`` (Python deprecates naming the old ones)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = client_context(minimum_version=version, maximum_version=version)
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_1_0_and_1_1_are_refused_by_default(gw, version):
    with pytest.raises(ssl.SSLError) as caught, \
            connect(gw.port, old_client(getattr(ssl.TLSVersion, version)), "a.test"):
        pass
    # The gateway's refusal (uvloop closes without sending the alert), not the
    # client's own: the client offered the version (see the test below).
    assert caught.value.reason in REFUSED, caught.value


@pytest.mark.parametrize("cipher", ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA",
                                    "ECDHE-RSA-AES256-SHA384"])
def test_weak_tls_1_2_ciphers_are_refused_by_default(gw, cipher):
    """No RSA key exchange, no CBC: forward-secret AEAD suites only."""
    context = client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    context.set_ciphers(cipher + ":@SECLEVEL=0")
    with pytest.raises(ssl.SSLError) as caught, connect(gw.port, context, "a.test"):
        pass
    assert caught.value.reason in REFUSED, caught.value


def test_a_strong_tls_1_2_cipher_and_tls_1_3_are_served(gw, pki):
    context = client_context(pki["ca"], maximum_version=ssl.TLSVersion.TLSv1_2)
    context.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256")
    with connect(gw.port, context, "a.test") as sock:
        assert sock.version() == "TLSv1.2"
    with connect(gw.port, client_context(pki["ca"]), "a.test") as sock:
        assert sock.version() == "TLSv1.3"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_openssl_s_client_sees_the_version_floor(gw):
    def handshake(flag: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"{HOST}:{gw.port}", "-servername", "a.test",
             flag], input=b"", capture_output=True, timeout=20)

    assert handshake("-tls1_2").returncode == 0
    assert handshake("-tls1_3").returncode == 0
    refused = handshake("-tls1_1")
    assert refused.returncode != 0
    assert b"Cipher is (NONE)" in refused.stdout or b"alert" in refused.stderr


def test_configured_versions_and_ciphers_are_the_only_ones(module_gateway_factory, make_api,
                                                          echo, pki):
    options = tls_options(pki, min_version=771, max_version=771,
                          ssl_ciphers=["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                                       "TLS_RSA_WITH_AES_128_CBC_SHA"])
    gw = module_gateway_factory([make_api("t", "/t/", echo.base_url)],
                                http_server_options=options, tls_verify=str(pki["ca"]))
    with connect(gw.port, client_context(pki["ca"]), "a.test") as sock:
        assert sock.version() == "TLSv1.2"  # max_version 771
        assert sock.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"
    # A suite refused by default is served when configured (the default's
    # refusal above is the gateway's choice, not the client's inability).
    context = client_context(pki["ca"])
    context.set_ciphers("AES128-SHA:@SECLEVEL=0")
    with connect(gw.port, context, "a.test") as sock:
        assert sock.cipher()[0] == "AES128-SHA"
    context = client_context(pki["ca"], maximum_version=ssl.TLSVersion.TLSv1_2)
    context.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError), connect(gw.port, context, "a.test"):
        pass


def test_tls_1_1_is_served_when_configured(module_gateway_factory, make_api, echo, pki):
    gw = module_gateway_factory([make_api("t", "/t/", echo.base_url)],
                                http_server_options=tls_options(pki, min_version=770),
                                tls_verify=str(pki["ca"]))
    with connect(gw.port, old_client(ssl.TLSVersion.TLSv1_1), "a.test") as sock:
        assert sock.version() == "TLSv1.1"
        sock.sendall(b"GET /t/old HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert read_response(sock)[0] == 200


# ---------------------------------------------------------------- refusals harm no one


def test_plain_http_and_garbage_on_the_tls_port_close_only_that_connection(gw, pki):
    with connect(gw.port, client_context(pki["ca"]), "a.test") as kept:
        kept.sendall(b"GET /t/before HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert read_response(kept)[0] == 200
        for junk in (b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", os.urandom(512)):
            with socket.create_connection((HOST, gw.port), timeout=10) as plain:
                plain.sendall(junk)
                # Closed (EOF or reset), never answered in plain HTTP.
                assert b"HTTP/1.1" not in drain(plain)
        # A client that connects and never handshakes is not served either,
        # and does not hold up the others.
        with socket.create_connection((HOST, gw.port), timeout=10):
            kept.sendall(b"GET /t/after HTTP/1.1\r\nHost: a.test\r\n\r\n")
            assert read_response(kept)[0] == 200


def drain(sock: socket.socket) -> bytes:
    """What the peer sends until it closes (a reset counts as closing)."""
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def test_the_control_api_is_served_over_tls_too(gw, pki):
    resp = requests.get(f"https://{HOST}:{gw.port}/tyk/apis", verify=str(pki["ca"]),
                        headers={"Host": "a.test", "X-Tyk-Authorization": gw.secret},
                        timeout=10)
    assert resp.status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{HOST}:{gw.port}/hello", timeout=5)


# ---------------------------------------------------------------- reloads


def test_reload_swaps_the_certificate_and_keeps_open_connections(gateway_factory, make_api,
                                                                 echo, pki, tmp_path):
    cert, key = tmp_path / "a.crt", tmp_path / "a.key"
    shutil.copy(pki["a.crt"], cert)
    shutil.copy(pki["a.key"], key)
    options = {"use_ssl": True, "certificates": [
        {"domain_name": "a.test", "cert_file": str(cert), "key_file": str(key)}]}
    gw = gateway_factory([make_api("t", "/t/", echo.base_url)], http_server_options=options,
                         tls_verify=str(pki["ca"]))
    context = client_context(pki["ca"])

    def serial(sock: ssl.SSLSocket) -> int:
        der = sock.getpeercert(binary_form=True)
        from cryptography import x509

        return x509.load_der_x509_certificate(der).serial_number

    with connect(gw.port, context, "a.test") as kept:
        before = serial(kept)
        shutil.copy(pki["a2.crt"], cert)
        shutil.copy(pki["a2.key"], key)
        assert gw.reload().status_code == 200
        with connect(gw.port, context, "a.test") as fresh:
            after = serial(fresh)
        assert after != before
        # The connection made before the reload still serves requests.
        kept.sendall(b"GET /t/kept HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert read_response(kept)[0] == 200
        # SIGHUP reloads as /tyk/reload does.
        shutil.copy(pki["a.crt"], cert)
        shutil.copy(pki["a.key"], key)
        gw.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            with connect(gw.port, context, "a.test") as fresh:
                if serial(fresh) == before:
                    break
            assert time.monotonic() < deadline, "SIGHUP did not reload the certificate"
            time.sleep(0.05)


def test_a_bad_certificate_on_reload_keeps_the_one_in_service(gateway_factory, make_api, echo,
                                                             pki, tmp_path):
    cert, key = tmp_path / "a.crt", tmp_path / "a.key"
    shutil.copy(pki["a.crt"], cert)
    shutil.copy(pki["a.key"], key)
    options = {"use_ssl": True, "certificates": [
        {"domain_name": "a.test", "cert_file": str(cert), "key_file": str(key)}]}
    gw = gateway_factory([make_api("t", "/t/", echo.base_url)], http_server_options=options,
                         tls_verify=str(pki["ca"]))
    cert.write_text("not a certificate")
    resp = gw.reload()
    assert "http_server_options.certificates[0].cert_file" in resp.text, resp.text
    assert f"{cert} does not begin with a PEM certificate" in resp.text
    # A key that is not the certificate's: said so.
    shutil.copy(pki["a.crt"], cert)
    shutil.copy(pki["b.key"], key)
    resp = gw.reload()
    assert "http_server_options.certificates[0].key_file" in resp.text, resp.text
    assert "its private key does not match the certificate" in resp.text
    resp = requests.get(f"https://{HOST}:{gw.port}/t/still", verify=str(pki["ca"]),
                        headers={"Host": "a.test"}, timeout=10)
    assert resp.status_code == 200


def test_a_certificate_that_cannot_load_stops_the_start_naming_it(gateway_factory, pki,
                                                                  tmp_path):
    missing = tmp_path / "missing.crt"
    options = {"use_ssl": True, "certificates": [
        {"domain_name": "a.test", "cert_file": str(missing), "key_file": str(pki["a.key"])}]}
    gw = gateway_factory(http_server_options=options, start=False)
    gw.start(wait=False)
    assert gw.proc is not None
    assert gw.proc.wait(30) == 2
    gw.expected_exit = None
    assert (f"http_server_options.certificates[0].cert_file: cannot read {missing}: "
            "No such file or directory") in gw.logs()


# ---------------------------------------------------------------- configuration


def parse(options: dict[str, Any], tmp_path: Path) -> Any:
    return parse_gateway_config({"secret": "s", "http_server_options": options},
                                str(tmp_path / "tyk.conf"))


@pytest.mark.parametrize(("options", "field", "message"), [
    ({"use_ssl": True}, "http_server_options.use_ssl", "needs a certificate"),
    ({"min_version": 700}, "http_server_options.min_version", "must be one of 769, 770"),
    ({"min_version": 772, "max_version": 771}, "http_server_options.min_version", "above"),
    ({"ssl_ciphers": ["TLS_NOPE"]}, "http_server_options.ssl_ciphers", "unknown cipher"),
    ({"certificates": [{"cert_file": "c.pem"}]}, "http_server_options.certificates[0].key_file",
     "PEM file"),
    ({"certificates": {}}, "http_server_options.certificates", "array"),
    ({"ssl_certificates": "id"}, "http_server_options.ssl_certificates", "array"),
])
def test_bad_tls_settings_name_the_field(tmp_path, options, field, message):
    with pytest.raises(ConfigError) as caught:
        parse(options, tmp_path)
    assert caught.value.field == field
    assert message in caught.value.message


def test_tls_settings_are_read_as_tyk_writes_them(tmp_path):
    config = parse({"use_ssl": True, "min_version": 772, "ssl_ciphers": [
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], "certificates": [
        {"domain_name": "API.Example.com", "cert_file": "certs/c.pem",
         "key_file": "/etc/k.pem"}]}, tmp_path)
    tls = config.http_server_options.tls
    assert tls.use_ssl and tls.min_version == 772 and tls.max_version == 772
    assert tls.ciphers == "ECDHE-ECDSA-AES128-GCM-SHA256"
    (entry,) = tls.certificates
    assert entry.domain_name == "api.example.com"
    assert entry.cert_file == str(tmp_path / "certs" / "c.pem")  # relative to the file
    assert entry.key_file == "/etc/k.pem"
    assert "http_server_options.use_ssl" not in config.ignored_fields


# ---------------------------------------------------------------- the plain listener's behaviour


def test_a_refusal_before_the_body_is_read_reaches_the_client_over_tls(gateway_factory,
                                                                       make_api, echo, pki):
    """Lingering close without TLS's half-close: the answer is read, not reset."""
    gw = gateway_factory([make_api("k", "/k/", echo.base_url, use_keyless=False,
                                   use_standard_auth=True)],
                         http_server_options=tls_options(pki), tls_verify=str(pki["ca"]))
    body = os.urandom(2 * 1024 * 1024)
    with connect(gw.port, client_context(pki["ca"]), "a.test") as sock:
        sock.sendall(b"POST /k/ HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body)
        status, headers, answer = read_response(sock)
        assert status == 401, answer
        assert headers.get("connection") == "close"


def test_a_slow_reader_downloads_a_large_response_over_tls(gw, pki):
    size = 8 * 1024 * 1024
    with connect(gw.port, client_context(pki["ca"]), "a.test") as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /t/bytes/%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % size)
        time.sleep(1.0)  # the gateway fills what the socket takes, then waits
        rss = gw.rss_kib()
        status, _, data = read_response(sock)
        assert status == 200 and len(data) == size
    assert rss < 200 * 1024, f"gateway RSS {rss} KiB while a client read slowly"


def test_a_slow_reader_gets_all_of_a_response_the_gateway_closes_after(gw, pki):
    """Connection: close: the TLS close waits for the answer to be read."""
    size = 8 * 1024 * 1024
    with connect(gw.port, client_context(pki["ca"]), "a.test") as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /t/bytes/%d HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
                     % size)
        time.sleep(3)  # longer than the gateway waits for a close_notify
        status, headers, data = read_response(sock)
        assert status == 200 and len(data) == size
        assert headers.get("connection") == "close"


def test_a_client_that_never_handshakes_is_closed_after_read_header_timeout(
        gateway_factory, make_api, echo, pki):
    gw = gateway_factory([make_api("t", "/t/", echo.base_url)],
                         http_server_options=tls_options(pki, read_header_timeout=1),
                         tls_verify=str(pki["ca"]))
    with socket.create_connection((HOST, gw.port), timeout=10) as silent:
        started = time.monotonic()
        assert drain(silent) == b""
        assert time.monotonic() - started < 5
    # As on the plain listener: a handshaken client that says nothing is
    # closed, one whose head does not complete in time gets 408.
    with connect(gw.port, client_context(pki["ca"]), "a.test") as idle:
        started = time.monotonic()
        assert drain(idle) == b""
        assert time.monotonic() - started < 5
    with connect(gw.port, client_context(pki["ca"]), "a.test") as slow:
        slow.sendall(b"GET /t/ HTTP/1.1\r\nHost: a.test\r\n")
        status, _, _ = read_response(slow)
        assert status == 408


# ---------------------------------------------------------------- the certificate store


def test_ssl_certificates_are_served_from_the_certificate_store(gateway_factory, make_api,
                                                                echo, pki, ca, storage):
    """Tyk's ssl_certificates: certificate store ids, served after the files'
    certificates, read again on reload (every node sees the store)."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    stored = ca.issue_cert("store.test", common_name="store.test",
                           key_type=trustme.KeyType.RSA)
    chain = b"".join(p.bytes() for p in stored.cert_chain_pems)
    leaf_der = x509.load_pem_x509_certificate(chain).public_bytes(serialization.Encoding.DER)
    cert_id = "org9" + hashlib.sha256(leaf_der).hexdigest()
    options = {**tls_options(pki), "ssl_certificates": [cert_id, "org9missing"]}
    gw = gateway_factory([make_api("t", "/t/", echo.base_url)], http_server_options=options,
                         tls_verify=str(pki["ca"]), storage=storage,
                         security={"private_certificate_encoding_secret": "enc-secret"})
    context = client_context(pki["ca"], check_hostname=False)
    # Not in the store yet: the default certificate.
    with connect(gw.port, context, "store.test") as sock:
        assert peer_names(sock) == ["a.test"]
    resp = requests.post(f"https://{HOST}:{gw.port}/tyk/certs?org_id=org9",
                         data=chain + stored.private_key_pem.bytes(), verify=str(pki["ca"]),
                         headers={"X-Tyk-Authorization": gw.secret}, timeout=10)
    assert resp.json()["id"] == cert_id, resp.text
    assert gw.reload().status_code == 200
    deadline = time.monotonic() + 10
    while True:
        with connect(gw.port, context, "store.test") as sock:
            if peer_names(sock) == ["store.test"]:
                sock.sendall(b"GET /t/s HTTP/1.1\r\nHost: store.test\r\n\r\n")
                assert read_response(sock)[0] == 200
                break
        assert time.monotonic() < deadline, "the stored certificate was not served"
        time.sleep(0.05)
    # The files' certificates still come first.
    with connect(gw.port, context, None) as sock:
        assert peer_names(sock) == ["a.test"]
    assert "ssl_certificates: org9missing: not in the certificate store" in gw.logs()
