"""The outbound HTTP client (JWKS, introspection, notifications) against real servers:
``fastgate echo``, a stdlib server that drops idle connections, and TLS."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fastgate.echo import pattern
from fastgate.outbound import HttpClient, OutboundError


@pytest.fixture
def client(run) -> Iterator[HttpClient]:
    http = HttpClient()
    yield http
    run(http.close())


def test_get_and_post(run, client, echo):
    got = run(client.request("GET", echo.url("/hello?x=1"), headers={"X-A": "b"}))
    assert got.status == 200
    body = json.loads(got.body)
    assert body["query"] == "x=1"
    assert ["X-A", "b"] in body["headers"]
    assert got.header("content-type") == "application/json"
    posted = run(client.request("POST", echo.url("/p"), body=b"token=abc"))
    assert json.loads(posted.body)["body"] == "token=abc"


@pytest.mark.parametrize("kind", ["bytes", "chunked", "close"])
def test_every_framing(run, client, echo, kind):
    got = run(client.request("GET", echo.url(f"/{kind}/300000")))
    assert got.body == pattern(300000)


def test_keep_alive_reuses_the_connection(run, client, echo_factory):
    server = echo_factory()
    for _ in range(5):
        assert run(client.request("GET", server.url("/x"))).status == 200
    assert server.count()["connections"] <= 2  # ours, and count()'s own


def test_a_body_over_the_limit_is_an_error(run, client, echo):
    with pytest.raises(OutboundError, match="larger than 1000 bytes"):
        run(client.request("GET", echo.url("/bytes/5000"), max_body=1000))


def test_timeout(run, client, echo):
    with pytest.raises(OutboundError, match=r"no answer within 0\.3 s"):
        run(client.request("GET", echo.url("/delay/2"), timeout=0.3))


def test_unreachable(run, client, free_port):
    with pytest.raises(OutboundError, match="cannot connect"):
        run(client.request("GET", f"http://127.0.0.1:{free_port()}/"))


def test_secrets_in_the_url_stay_out_of_messages(run, client, free_port):
    url = f"http://user:hunter2@127.0.0.1:{free_port()}/jwks?token=s3cret"
    with pytest.raises(OutboundError) as raised:
        run(client.request("GET", url, timeout=2))
    assert "hunter2" not in str(raised.value) and "s3cret" not in str(raised.value)


def test_header_injection_refused(run, client, echo):
    with pytest.raises(OutboundError, match="line break"):
        run(client.request("GET", echo.url("/"), headers={"X-A": "1\r\nX-B: 2"}))


class _Closer(BaseHTTPRequestHandler):
    """Answers keep-alive, then closes the connection as soon as it is idle."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True  # without saying so: the client learns on reuse

    def log_message(self, *args: object) -> None:
        pass


def test_a_connection_closed_while_idle_is_replaced(run, client):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Closer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        for _ in range(3):
            assert run(client.request("GET", url)).body == b"ok"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[tuple[int, ssl.SSLContext]]:
    """A TLS server on a self-signed certificate for 127.0.0.1; (port, a client
    context trusting it)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    folder: Path = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)

    class Handler(_Closer):
        def do_GET(self) -> None:
            body = b'{"keys": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(cert_path))
    yield server.server_address[1], client_context
    server.shutdown()
    server.server_close()


def test_https(run, tls_server):
    port, context = tls_server
    http = HttpClient(ssl_context=context)
    try:
        got = run(http.request("GET", f"https://127.0.0.1:{port}/.well-known/jwks.json"))
        assert (got.status, got.body) == (200, b'{"keys": []}')
    finally:
        run(http.close())


def test_https_refuses_an_untrusted_certificate(run, client, tls_server):
    port, _context = tls_server
    with pytest.raises(OutboundError, match="cannot connect"):
        run(client.request("GET", f"https://127.0.0.1:{port}/", timeout=5))


def test_plain_socket_speaking_nonsense(run, client):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        with pytest.raises(OutboundError, match="invalid answer"):
            run(client.request("GET", f"http://127.0.0.1:{listener.getsockname()[1]}/"))
    finally:
        listener.close()
