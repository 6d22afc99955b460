"""Plugin bundles as Tyk delivers them: ZIPs built here the way ``tyk bundle
build`` builds them, served by a real HTTP(S) server in a thread, downloaded,
verified (MD5 checksum, RSA signature) and unpacked by
:class:`fastgate.plugins.bundles.BundleCache`, and by a real gateway process
at start and on reload."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.server
import io
import json
import os
import ssl
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fastgate.config import ConfigError, PluginConfig
from fastgate.plugins.bundles import (
    MAX_UNPACKED_BYTES,
    BundleCache,
    BundleError,
    BundleFetchError,
    bundle_names,
    bundle_url,
    wanted_bundle,
)

PLUGIN = b"from tyk.decorators import *\n\n@Hook\ndef MyPreHook(request, session, spec):\n" \
         b"    return request, session\n"
HELPER = b"GREETING = 'hello'\n"
MIDDLEWARE = {"driver": "python", "pre": [{"name": "MyPreHook", "path": "plugin.py"}]}


# --------------------------------------------------------------------------- building


def build_bundle(files: dict[str, bytes], custom_middleware: dict[str, Any] | None = None, *,
                 key: rsa.RSAPrivateKey | None = None, checksum: str | None = None,
                 signature: str | None = None,
                 extra: dict[str, bytes] | None = None) -> bytes:
    """A bundle as ``tyk bundle build [-k key]`` writes it: the listed files,
    then manifest.json with the MD5 of their concatenation and, with a key,
    the base64 RSA-SHA256 (PKCS #1 v1.5) signature of that concatenation."""
    joined = b"".join(files.values())
    manifest: dict[str, Any] = {
        "file_list": list(files),
        "custom_middleware": MIDDLEWARE if custom_middleware is None else custom_middleware,
        "checksum": hashlib.md5(joined).hexdigest() if checksum is None else checksum,
        "signature": "",
    }
    if key is not None:
        manifest["signature"] = base64.b64encode(
            key.sign(joined, padding.PKCS1v15(), hashes.SHA256())).decode()
    if signature is not None:
        manifest["signature"] = signature
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in {**files, **(extra or {})}.items():
            archive.writestr(name, data)
        archive.writestr("manifest.json", json.dumps(manifest))
    return out.getvalue()


def good_bundle(**kwargs: Any) -> bytes:
    return build_bundle({"plugin.py": PLUGIN, "lib/helper.py": HELPER}, **kwargs)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def public_key_path(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> str:
    path = tmp_path / "bundle-key.pub"
    path.write_bytes(signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(path)


# --------------------------------------------------------------------------- serving


class BundleServer:
    """An HTTP(S) server in a thread serving ``files`` by path, counting requests."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.statuses: dict[str, int] = {}
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                server.authorizations.append(self.headers.get("Authorization"))
                status = server.statuses.get(self.path)
                body = server.files.get(self.path)
                if status is None:
                    status = 200 if body is not None else 404
                payload = body if status == 200 and body is not None else b"no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}/bundles/"

    def put(self, name: str, data: bytes) -> None:
        self.files["/bundles/" + name] = data

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[BundleServer]:
    srv = BundleServer()
    yield srv
    srv.stop()


def cache_for(tmp_path: Path, server: BundleServer | None, **fields: Any) -> BundleCache:
    settings: dict[str, Any] = {"enable_bundle_downloader": True,
                                "middleware_path": str(tmp_path / "middleware")}
    if server is not None:
        settings["bundle_base_url"] = server.base_url
    settings.update(fields)
    cache = BundleCache(PluginConfig(**settings))
    cache.retry_delays = (0.01, 0.01)
    return cache


def md5_dir(tmp_path: Path, name: str) -> Path:
    return tmp_path / "middleware" / "bundles" / hashlib.md5(name.encode()).hexdigest()


def bundles_dir_listing(tmp_path: Path) -> list[str]:
    root = tmp_path / "middleware" / "bundles"
    return sorted(os.listdir(root)) if root.is_dir() else []


def fetch(cache: BundleCache, name: str, api_id: str = "api1") -> None:
    asyncio.run(cache.fetch(api_id, name))


# --------------------------------------------------------------------------- names and URLs


@pytest.mark.parametrize(("base", "name", "url"), [
    ("http://b.example/bundles/", "bundle.zip", "http://b.example/bundles/bundle.zip"),
    ("http://b.example/bundles", "bundle.zip", "http://b.example/bundles/bundle.zip"),
    ("http://b.example", "bundle.zip", "http://b.example/bundle.zip"),
    ("http://b.example/", "team/v 2.zip", "http://b.example/team/v%202.zip"),
    ("https://b.example/a/?token=x", "b.zip", "https://b.example/a/b.zip?token=x"),
    ("file:///srv/bundles", "b.zip", "file:///srv/bundles/b.zip"),
])
def test_the_name_is_joined_to_the_url_path_as_tyk_does(base: str, name: str, url: str) -> None:
    assert bundle_url(base, name) == url


def test_bundle_names_and_what_a_definition_wants() -> None:
    assert bundle_names("a.zip") == ["a.zip"]
    assert bundle_names(" a.zip , ,b.zip") == ["a.zip", "b.zip"]
    assert bundle_names(" , ") == []
    assert wanted_bundle({"custom_middleware_bundle": "a.zip"}) == "a.zip"
    assert wanted_bundle({"custom_middleware_bundle": "a.zip",
                          "custom_middleware_bundle_disabled": True}) == ""
    assert wanted_bundle({"custom_middleware_bundle": ""}) == ""
    assert wanted_bundle({}) == ""


# --------------------------------------------------------------------------- the cache


def test_a_good_bundle_is_downloaded_verified_and_unpacked(tmp_path: Path,
                                                           server: BundleServer) -> None:
    server.put("bundle-v1.zip", good_bundle())
    cache = cache_for(tmp_path, server)
    assert not cache.is_cached("bundle-v1.zip")
    fetch(cache, "bundle-v1.zip")
    # Tyk's layout: <middleware_path>/bundles/<md5 of the name>/
    where = md5_dir(tmp_path, "bundle-v1.zip")
    assert (where / "plugin.py").read_bytes() == PLUGIN
    assert (where / "lib" / "helper.py").read_bytes() == HELPER
    assert bundles_dir_listing(tmp_path) == [where.name]  # no temporary left
    bundle = cache.get("api1", "bundle-v1.zip", "/apps/api1.json")
    assert bundle.name == "bundle-v1.zip"
    assert bundle.directory == str(where)
    assert bundle.parts == (str(where),)
    assert bundle.manifest["custom_middleware"] == MIDDLEWARE
    assert bundle.manifest["file_list"] == ["plugin.py", "lib/helper.py"]
    # Once on disk it is never downloaded again.
    fetch(cache, "bundle-v1.zip")
    assert server.requests == ["/bundles/bundle-v1.zip"]


def test_a_dead_process_s_temporary_directory_is_removed(tmp_path: Path,
                                                        server: BundleServer) -> None:
    root = tmp_path / "middleware" / "bundles"
    (root / ".tmp-dead").mkdir(parents=True)
    (root / ".tmp-dead" / "plugin.py").write_bytes(b"half")
    (root / ".tmp-busy").mkdir()  # another worker's download in progress
    two_hours_ago = time.time() - 7200
    os.utime(root / ".tmp-dead", (two_hours_ago, two_hours_ago))
    server.put("b.zip", good_bundle())
    fetch(cache_for(tmp_path, server), "b.zip")
    assert bundles_dir_listing(tmp_path) == [".tmp-busy", md5_dir(tmp_path, "b.zip").name]


def test_a_bad_checksum_is_refused_and_nothing_is_left(tmp_path: Path,
                                                       server: BundleServer) -> None:
    server.put("bad.zip", good_bundle(checksum="0" * 32))
    cache = cache_for(tmp_path, server)
    with pytest.raises(BundleFetchError) as caught:
        fetch(cache, "bad.zip")
    assert "invalid checksum" in str(caught.value)
    assert caught.value.url == server.base_url + "bad.zip"
    assert server.base_url + "bad.zip" in str(caught.value)
    assert bundles_dir_listing(tmp_path) == []
    with pytest.raises(ConfigError) as missing:
        cache.get("api1", "bad.zip", "/apps/api1.json")
    assert (missing.value.file, missing.value.field) == ("/apps/api1.json",
                                                         "custom_middleware_bundle")
    assert "has not been downloaded" in missing.value.message


@pytest.mark.parametrize(("case", "message"), [
    ("good", None),
    ("unsigned", "Bundle isn't signed"),
    ("other key", "crypto/rsa: verification error"),
    ("tampered", "crypto/rsa: verification error"),
    ("not base64", "signature is not base64"),
])
def test_signed_bundles(tmp_path: Path, server: BundleServer, signing_key: rsa.RSAPrivateKey,
                        public_key_path: str, case: str, message: str | None) -> None:
    if case == "good":
        data = good_bundle(key=signing_key)
    elif case == "unsigned":
        data = good_bundle()
    elif case == "other key":
        data = good_bundle(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    elif case == "tampered":
        # Signed over other contents, whose checksum was then fixed up.
        joined = PLUGIN + b"# changed\n" + HELPER
        data = build_bundle({"plugin.py": PLUGIN + b"# changed\n", "lib/helper.py": HELPER},
                            checksum=hashlib.md5(joined).hexdigest(),
                            signature=json.loads(zipfile.ZipFile(io.BytesIO(
                                good_bundle(key=signing_key))).read("manifest.json"))
                            ["signature"])
    else:
        data = good_bundle(signature="not base64!")
    server.put("b.zip", data)
    cache = cache_for(tmp_path, server, public_key_path=public_key_path)
    if message is None:
        fetch(cache, "b.zip")
        assert cache.get("api1", "b.zip", "a.json").manifest["signature"]
        return
    with pytest.raises(BundleFetchError) as caught:
        fetch(cache, "b.zip")
    assert message in str(caught.value)
    assert bundles_dir_listing(tmp_path) == []


def test_a_signed_bundle_with_an_unlisted_member_is_refused(
        tmp_path: Path, server: BundleServer, signing_key: rsa.RSAPrivateKey,
        public_key_path: str) -> None:
    # json.py beside the plugin would shadow the standard library's module.
    server.put("b.zip", good_bundle(key=signing_key, extra={"json.py": b"import os\n"}))
    cache = cache_for(tmp_path, server, public_key_path=public_key_path)
    with pytest.raises(BundleFetchError, match=r"'json\.py' is not in the manifest's file_list"):
        fetch(cache, "b.zip")
    assert bundles_dir_listing(tmp_path) == []
    # Unsigned bundles may carry other files, as Tyk's do.
    server.put("u.zip", good_bundle(extra={"README": b"notes"}))
    fetch(cache_for(tmp_path, server), "u.zip")
    assert (md5_dir(tmp_path, "u.zip") / "README").read_bytes() == b"notes"


def test_a_bundle_on_disk_is_verified_again_unless_told_not_to(
        tmp_path: Path, server: BundleServer) -> None:
    server.put("b.zip", good_bundle())
    cache = cache_for(tmp_path, server)
    fetch(cache, "b.zip")
    (md5_dir(tmp_path, "b.zip") / "plugin.py").write_bytes(PLUGIN + b"import evil\n")
    with pytest.raises(ConfigError, match="invalid checksum"):
        cache.get("api1", "b.zip", "a.json")
    skipping = cache_for(tmp_path, server, skip_verify_existing_plugin_bundle=True)
    assert skipping.get("api1", "b.zip", "a.json").manifest["custom_middleware"] == MIDDLEWARE


def test_a_restart_with_the_bundle_server_down_uses_the_copy_on_disk(
        tmp_path: Path, server: BundleServer) -> None:
    server.put("b.zip", good_bundle())
    fetch(cache_for(tmp_path, server), "b.zip")
    base_url = server.base_url
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(base_url + "b.zip", timeout=2)
    restarted = cache_for(tmp_path, None, bundle_base_url=base_url)
    assert restarted.is_cached("b.zip")
    fetch(restarted, "b.zip")  # nothing to download
    assert restarted.get("api1", "b.zip", "a.json").manifest["custom_middleware"] == MIDDLEWARE
    # A bundle never downloaded cannot be had with the server down.
    with pytest.raises(BundleFetchError, match="Error getting bundle"):
        fetch(restarted, "other.zip")
    # With the downloader off, bundles on disk are still used.
    offline = cache_for(tmp_path, None, enable_bundle_downloader=False)
    assert offline.get("api1", "b.zip", "a.json").directory == str(md5_dir(tmp_path, "b.zip"))
    with pytest.raises(ConfigError, match="enable_bundle_downloader"):
        offline.get("api1", "other.zip", "a.json")


@pytest.mark.parametrize("member", ["../evil.py", "lib/../../evil.py", "/tmp/evil.py",
                                    "..\\evil.py"])
def test_zip_slip_is_refused(tmp_path: Path, server: BundleServer, member: str) -> None:
    server.put("slip.zip", good_bundle(extra={member: b"pwned = True\n"}))
    cache = cache_for(tmp_path, server)
    with pytest.raises(BundleFetchError, match="outside the bundle directory"):
        fetch(cache, "slip.zip")
    assert bundles_dir_listing(tmp_path) == []
    assert not (tmp_path / "middleware" / "evil.py").exists()
    assert not (tmp_path / "evil.py").exists()


def test_a_file_list_entry_outside_the_bundle_is_refused(tmp_path: Path,
                                                         server: BundleServer) -> None:
    (tmp_path / "middleware").mkdir()
    (tmp_path / "middleware" / "secret").write_bytes(b"s")
    server.put("b.zip", build_bundle({"../secret": b"s"}))
    with pytest.raises(BundleFetchError, match="outside the bundle"):
        fetch(cache_for(tmp_path, server), "b.zip")


def test_a_bundle_larger_than_100_mib_unpacked_is_refused(tmp_path: Path,
                                                          server: BundleServer) -> None:
    big = b"\0" * (MAX_UNPACKED_BYTES + 1)  # a few hundred KiB compressed
    server.put("big.zip", build_bundle({"plugin.py": PLUGIN, "data.bin": big}))
    with pytest.raises(BundleFetchError, match="more than 100 MiB"):
        fetch(cache_for(tmp_path, server), "big.zip")
    assert bundles_dir_listing(tmp_path) == []


def test_download_failures_name_the_url(tmp_path: Path, server: BundleServer) -> None:
    cache = cache_for(tmp_path, server)
    # A 404 is an answer: not retried.
    with pytest.raises(BundleFetchError, match="HTTP Error, got status code 404") as caught:
        fetch(cache, "missing.zip")
    assert caught.value.url == server.base_url + "missing.zip"
    assert server.requests == ["/bundles/missing.zip"]
    # A 5xx is retried (Tyk's backoff), then reported.
    server.put("flaky.zip", good_bundle())
    server.statuses["/bundles/flaky.zip"] = 503
    with pytest.raises(BundleFetchError, match="status code 503"):
        fetch(cache, "flaky.zip")
    assert server.requests.count("/bundles/flaky.zip") == 1 + len(cache.retry_delays)
    server.put("junk.zip", b"this is not a zip")
    with pytest.raises(BundleFetchError, match="not a ZIP file"):
        fetch(cache, "junk.zip")
    assert bundles_dir_listing(tmp_path) == []
    no_url = cache_for(tmp_path, None)
    with pytest.raises(BundleError, match="No bundle base URL set"):
        fetch(no_url, "b.zip")


def test_credentials_in_the_base_url_stay_out_of_messages(tmp_path: Path,
                                                          server: BundleServer) -> None:
    base = server.base_url.replace("http://", "http://user:hunter2@") + "?token=s3cr3t"
    cache = cache_for(tmp_path, None, bundle_base_url=base)
    with pytest.raises(BundleFetchError) as caught:
        fetch(cache, "missing.zip")
    assert "hunter2" not in str(caught.value) and "s3cr3t" not in str(caught.value)
    assert "/bundles/missing.zip" in str(caught.value)
    assert server.requests == ["/bundles/missing.zip?token=s3cr3t"]
    # The URL's user info is sent as Basic credentials, as Go's client does.
    assert server.authorizations == ["Basic " + base64.b64encode(b"user:hunter2").decode()]


def test_concurrent_fetches_of_one_bundle_download_it_once(tmp_path: Path,
                                                           server: BundleServer) -> None:
    server.put("b.zip", good_bundle())
    cache = cache_for(tmp_path, server)

    async def both() -> None:
        await asyncio.gather(cache.fetch("a", "b.zip"), cache.fetch("b", "b.zip"))

    asyncio.run(both())
    assert server.requests == ["/bundles/b.zip"]
    assert cache.is_cached("b.zip")


def test_the_event_loop_is_not_blocked_while_downloading(tmp_path: Path,
                                                         server: BundleServer) -> None:
    server.put("b.zip", good_bundle())
    cache = cache_for(tmp_path, server)
    ticks: list[float] = []

    async def run() -> None:
        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.001)

        task = asyncio.ensure_future(ticker())
        await cache.fetch("a", "b.zip")
        task.cancel()

    asyncio.run(run())
    assert len(ticks) >= 2


def test_several_bundles_are_merged_as_tyk_does(tmp_path: Path, server: BundleServer) -> None:
    server.put("auth.zip", build_bundle({"auth.py": b"# auth\n"}, {
        "driver": "python", "auth_check": {"name": "Check", "path": "auth.py"},
        "id_extractor": {"extract_from": "header", "extract_with": "value",
                         "extractor_config": {"header_name": "Authorization"}}}))
    server.put("team/hooks.zip", build_bundle({"hooks.py": b"# hooks\n"}, {
        "driver": "python", "pre": [{"name": "Pre", "path": "hooks.py"}],
        "response": [{"name": "Resp", "path": "hooks.py"}]}))
    cache = cache_for(tmp_path, server)
    value = "auth.zip, team/hooks.zip"
    fetch(cache, value)
    root = md5_dir(tmp_path, value)
    assert sorted(os.listdir(root)) == ["auth", "team__hooks"]
    bundle = cache.get("api1", value, "a.json")
    assert bundle.directory == str(root)
    assert bundle.parts == (str(root / "auth"), str(root / "team__hooks"))
    middleware = bundle.manifest["custom_middleware"]
    assert middleware["driver"] == "python"
    assert middleware["auth_check"] == {"name": "Check", "path": "auth/auth.py"}
    assert middleware["pre"] == [{"name": "Pre", "path": "team__hooks/hooks.py"}]
    assert middleware["response"] == [{"name": "Resp", "path": "team__hooks/hooks.py"}]
    assert middleware["id_extractor"]["extract_with"] == "value"
    assert bundle.manifest["file_list"] == ["auth/auth.py", "team__hooks/hooks.py"]
    # Two drivers, or two auth_check hooks, cannot be merged.
    server.put("js.zip", build_bundle({"m.js": b"//\n"}, {"driver": "otto",
                                                          "pre": [{"name": "m"}]}))
    fetch(cache, "auth.zip,js.zip")
    with pytest.raises(ConfigError, match="declares driver 'otto' but earlier bundles set"):
        cache.get("api1", "auth.zip,js.zip", "a.json")


def test_a_bundle_name_climbing_out_is_refused(tmp_path: Path, server: BundleServer) -> None:
    cache = cache_for(tmp_path, server)
    for name in ("../b.zip", "a.zip,../../b.zip", "a.zip,..zip"):
        with pytest.raises(BundleError):
            fetch(cache, name)
        with pytest.raises(ConfigError):
            cache.get("api1", name, "a.json")


def test_a_bad_public_key_file_is_reported(tmp_path: Path, server: BundleServer,
                                           signing_key: rsa.RSAPrivateKey) -> None:
    server.put("b.zip", good_bundle(key=signing_key))
    (tmp_path / "not-a-key.pem").write_text("hello")
    for path, message in ((str(tmp_path / "absent.pem"), "cannot read public_key_path"),
                          (str(tmp_path / "not-a-key.pem"), "no PEM public key")):
        with pytest.raises(BundleFetchError, match=message):
            fetch(cache_for(tmp_path, server, public_key_path=path), "b.zip")


def test_https_bundle_server_and_insecure_skip_verify(tmp_path: Path) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    srv = BundleServer(context)
    try:
        srv.put("b.zip", good_bundle())
        strict = cache_for(tmp_path, srv)
        strict.retry_delays = ()
        with pytest.raises(BundleFetchError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(strict, "b.zip")
        fetch(cache_for(tmp_path, srv, bundle_insecure_skip_verify=True), "b.zip")
        assert md5_dir(tmp_path, "b.zip").is_dir()
    finally:
        srv.stop()


def test_a_file_base_url_reads_bundles_from_disk(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "b.zip").write_bytes(good_bundle())
    cache = cache_for(tmp_path, None, bundle_base_url=f"file://{tmp_path}/srv")
    fetch(cache, "b.zip")
    assert cache.get("api1", "b.zip", "a.json").manifest["custom_middleware"] == MIDDLEWARE


# --------------------------------------------------------------------------- the gateway


def bundle_config(server_url: str, **extra: Any) -> dict[str, Any]:
    return {"enable_bundle_downloader": True, "bundle_base_url": server_url,
            "middleware_path": "middleware", **extra}


def inert_bundle() -> bytes:
    """A bundle whose manifest names no hooks (the hook runtime is the lead's)."""
    return build_bundle({"plugin.py": PLUGIN}, {})


def wait_for_log(gateway: Any, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = gateway.logs()
        if text in logs:
            return logs
        time.sleep(0.05)
    pytest.fail(f"{text!r} not logged\n{gateway.logs()}")


def test_the_gateway_downloads_bundles_at_start_and_restarts_without_the_server(
        gateway_factory: Any, make_api: Any, echo: Any, server: BundleServer) -> None:
    server.put("inert.zip", inert_bundle())
    gateway = gateway_factory(
        [make_api("plain", "/plain/", echo.base_url),
         make_api("plug", "/plug/", echo.base_url, custom_middleware_bundle="inert.zip")],
        **bundle_config(server.base_url))
    where = gateway.root / "middleware" / "bundles" / hashlib.md5(b"inert.zip").hexdigest()
    assert (where / "manifest.json").is_file()
    assert server.requests == ["/bundles/inert.zip"]
    assert requests.get(gateway.url("/plain/x"), timeout=5).status_code == 200
    assert requests.get(gateway.url("/plug/x"), timeout=5).status_code != 404
    assert gateway.stop() == 0
    server.stop()
    gateway.start()  # the bundle server is down: the copy on disk serves
    assert requests.get(gateway.url("/plain/x"), timeout=5).status_code == 200
    assert requests.get(gateway.url("/plug/x"), timeout=5).status_code != 404


def test_a_bundle_that_cannot_be_fetched_at_start_stops_the_gateway(
        gateway_factory: Any, make_api: Any, echo: Any, server: BundleServer) -> None:
    api = make_api("plug", "/plug/", echo.base_url, custom_middleware_bundle="gone.zip")
    gateway = gateway_factory([api], start=False, **bundle_config(server.base_url))
    gateway.expected_exit = None
    gateway.start(wait=False)
    assert gateway.proc.wait(20) == 2
    logs = gateway.logs()
    assert "plug.json: custom_middleware_bundle" in logs
    assert server.base_url + "gone.zip" in logs
    assert "HTTP Error, got status code 404" in logs


def test_a_download_failure_on_reload_keeps_the_old_configuration(
        gateway_factory: Any, make_api: Any, echo: Any, server: BundleServer) -> None:
    gateway = gateway_factory([make_api("first", "/first/", echo.base_url)],
                              **bundle_config(server.base_url))
    assert requests.get(gateway.url("/first/x"), timeout=5).status_code == 200
    gateway.write_api(make_api("second", "/second/", echo.base_url,
                               custom_middleware_bundle="later.zip"))
    gateway.write_api(make_api("third", "/third/", echo.base_url))
    assert gateway.reload().status_code == 200
    logs = wait_for_log(gateway, "reload failed, the previous configuration stays in service")
    assert "second.json: custom_middleware_bundle" in logs
    assert server.base_url + "later.zip" in logs
    assert requests.get(gateway.url("/first/x"), timeout=5).status_code == 200
    # Nothing of the new configuration went into service.
    assert requests.get(gateway.url("/second/x"), timeout=5).status_code == 404
    assert requests.get(gateway.url("/third/x"), timeout=5).status_code == 404
    # Once the bundle is there, the next reload downloads it and serves all.
    server.put("later.zip", inert_bundle())
    assert gateway.reload().status_code == 200
    deadline = time.monotonic() + 10
    while requests.get(gateway.url("/third/x"), timeout=5).status_code != 200:
        assert time.monotonic() < deadline, gateway.logs()
        time.sleep(0.05)
    assert requests.get(gateway.url("/second/x"), timeout=5).status_code != 404
    assert requests.get(gateway.url("/first/x"), timeout=5).status_code == 200
    assert server.requests.count("/bundles/later.zip") == 2
