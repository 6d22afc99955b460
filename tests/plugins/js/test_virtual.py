"""Virtual endpoints: parsing ``extended_paths.virtual`` and the chain step,
run with real QuickJS workers; and the seed's split-token ``login`` script
unchanged against a local IdP (PyJWT) and a real gateway's REST API, the
protected API sending the full JWT upstream."""

from __future__ import annotations

import base64
import json
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import jwt
import pytest
import requests

from fastgate.config import ConfigError, FieldReader
from fastgate.outbound import HttpClient
from fastgate.plugins.js.virtual import VIRTUAL_ERROR, VirtualEndpoints, parse_virtual_endpoints

ORG = "test-org"


class StepRequest:
    """What a chain step sees of a request (fastgate.services.Request), for
    driving the step directly until the chain runs it."""

    def __init__(self, method: str, path: str, query: str = "", body: bytes = b"",
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.method = method.encode()
        self.path = path.encode()
        self.query = query.encode()
        self.client_ip = b"127.0.0.1"
        self.request_headers = [(k.lower().encode(), k.encode(), v.encode()) for k, v in headers]
        self.session: Any = None
        self.session_key: str | None = None
        self.context = None
        self.response_headers = b""
        self.tls = False
        self._body = body

    def header(self, lname: bytes) -> bytes | None:
        for key, _name, value in self.request_headers:
            if key == lname:
                return value
        return None

    async def read_body(self) -> bytes | None:
        return self._body


def spec(config_data: Any = None, listen_path: str = "/api/") -> Any:
    return types.SimpleNamespace(api_id="v1", org_id=ORG, listen_path=listen_path,
                                 raw={"config_data": config_data or {}},
                                 version_data={"versions": {}}, session_lifetime=0)


def services() -> Any:
    server = types.SimpleNamespace(enable_path_prefix_matching=False,
                                   enable_path_suffix_matching=False)
    limits = types.SimpleNamespace(jsvm_timeout=2, jsvm_memory_limit=32, jsvm_workers=1)
    return types.SimpleNamespace(http=HttpClient(), config=types.SimpleNamespace(
        http_server_options=server, **vars(limits)))


def version(*virtual: dict[str, Any]) -> dict[str, Any]:
    return {"name": "Default", "extended_paths": {"virtual": list(virtual)}}


def blob(source: str) -> str:
    return base64.b64encode(source.encode()).decode()


def parse(tmp_path: Any, *virtual: dict[str, Any]) -> Any:
    return parse_virtual_endpoints(FieldReader({}, "api.json"), version(*virtual), str(tmp_path))


HELLO = """
function hello(request, session, config) {
    return TykJsResponse({
        Body: JSON.stringify({url: request.URL, params: request.Params, body: request.Body,
                              tier: config.config_data.tier,
                              agent: request.Headers["User-Agent"]}),
        Code: 201,
        Headers: {"content-type": "application/json", "X-Made-By": "js"}
    }, session.meta_data);
}
function boom() { throw new Error("boom"); }
"""


@pytest.fixture
def step_factory(run: Any) -> Iterator[Any]:
    made: list[VirtualEndpoints] = []

    def make(endpoints: Any, config_data: Any = None) -> VirtualEndpoints:
        step = VirtualEndpoints(spec(config_data), endpoints, services())
        made.append(step)
        return step

    yield make
    for step in made:
        run(step.aclose())
        run(step.services.http.close())


def entry(**fields: Any) -> dict[str, Any]:
    base = {"path": "/hello/{id}", "method": "POST", "response_function_name": "hello",
            "function_source_type": "blob", "function_source_uri": blob(HELLO)}
    base.update(fields)
    return base


def test_answers_with_code_headers_and_body(tmp_path: Any, run: Any, step_factory: Any) -> None:
    step = step_factory(parse(tmp_path, entry()), {"tier": "gold"})
    req = StepRequest("POST", "/api/hello/7", "q=1", b"a=b",
                      (("User-Agent", "t"), ("Content-Type", "application/x-www-form-urlencoded")))
    answer = run(step.process(req))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"\r\nX-Made-By: js" in head and b"\r\nContent-Type: application/json" in head
    assert json.loads(body) == {"url": "/api/hello/7?q=1", "params": {"a": ["b"], "q": ["1"]},
                                "body": "a=b", "tier": "gold", "agent": ["t"]}


def test_method_and_path_must_match(tmp_path: Any, step_factory: Any) -> None:
    step = step_factory(parse(tmp_path, entry()))
    assert step.process(StepRequest("GET", "/api/hello/7")) is None
    assert step.process(StepRequest("POST", "/api/other")) is None
    assert step.match("POST", "/api/hello/7") is not None


def test_a_script_that_throws_answers_500(tmp_path: Any, run: Any, step_factory: Any) -> None:
    step = step_factory(parse(tmp_path, entry(response_function_name="boom")))
    assert run(step.process(StepRequest("POST", "/api/hello/1"))) == VIRTUAL_ERROR
    assert b"Error during virtual endpoint execution" in VIRTUAL_ERROR


def test_proxy_on_error_goes_on(tmp_path: Any, run: Any, step_factory: Any) -> None:
    step = step_factory(parse(tmp_path, entry(response_function_name="boom",
                                              proxy_on_error=True)))
    assert run(step.process(StepRequest("POST", "/api/hello/1"))) is None


def test_file_source_and_defaults(tmp_path: Any, run: Any, step_factory: Any) -> None:
    (tmp_path / "plain.js").write_text(
        "function plain() { return TykJsResponse({Body: 'hi'}, {}); }")
    step = step_factory(parse(tmp_path, entry(function_source_type="file",
                                              function_source_uri="plain.js",
                                              response_function_name="plain", method="GET")))
    answer = run(step.process(StepRequest("GET", "/api/hello/x")))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/plain; charset=utf-8" in answer and answer.endswith(b"\r\n\r\nhi")


@pytest.mark.parametrize(("fields", "where", "message"), [
    ({"function_source_type": "url"}, "virtual[0].function_source_type", "'file' or 'blob'"),
    ({"function_source_type": "file", "function_source_uri": "nope.js"},
     "virtual[0].function_source_uri", "cannot read"),
    ({"function_source_uri": "%%%"}, "virtual[0].function_source_uri", "base64"),
    ({"function_source_uri": blob("function (")}, "virtual[0].function_source_uri",
     "SyntaxError"),
    ({"use_session": "yes"}, "virtual[0].use_session", "true or false"),
    ({"response_function_name": ""}, "virtual[0].response_function_name", "required"),
])
def test_bad_entries_name_the_field(tmp_path: Any, fields: dict[str, Any], where: str,
                                    message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(tmp_path, entry(**fields))
    assert caught.value.field == f"version_data.versions.Default.extended_paths.{where}"
    assert message in str(caught.value)


def test_disabled_entries_are_dropped(tmp_path: Any) -> None:
    assert parse(tmp_path, entry(disabled=True, function_source_uri="%%%")) == ()


def test_wrong_type_of_list(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="expected an array"):
        parse_virtual_endpoints(FieldReader({}, "api.json"),
                                {"name": "v", "extended_paths": {"virtual": {}}}, str(tmp_path))


# -- the seed's split token -------------------------------------------------------------

#: The seed's script, verbatim (docs: "Split Token Flow", example virtual endpoint).
SEED_LOGIN = """function login(request, session, config) {
    var credentials = request.Body.split("&")
        .map(function(item, index) {
            return item.split("=");
        }).reduce(function(p, c) {
            p[c[0]] = c[1];
            return p;
        }, {});

    var newRequest = {
        "Headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "Method": "POST",
        "FormData": {
            grant_type: credentials.grant_type,
            client_id: credentials.client_id,
            client_secret: credentials.client_secret
        },
        "Domain": "https://keycloak-host",
        "resource": "/auth/realms/tyk/protocol/openid-connect/token",
    };

    var response = TykMakeHttpRequest(JSON.stringify(newRequest));
    var usableResponse = JSON.parse(response);

    if (usableResponse.Code !== 200) {
        return TykJsResponse({
            Body: usableResponse.Body,
            Code: usableResponse.Code
        }, session.meta_data)
    }

    var bodyObj = JSON.parse(usableResponse.Body);
    var accessTokenComplete = bodyObj.access_token;
    var signature = accessTokenComplete.split(".")[2];

    log("completeAccessToken: " + accessTokenComplete);

    // Create key inside Tyk
    createKeyInsideTyk(signature, bodyObj);

    // Override signature
    bodyObj.access_token = signature;
    delete bodyObj.refresh_expires_in;
    delete bodyObj.refresh_token;
    delete bodyObj.foo;

    var responseObject = {
        Body: JSON.stringify(bodyObj),
        Code: usableResponse.Code
    }
    return TykJsResponse(responseObject, session.meta_data);
}
"""

#: The helper the seed leaves to the reader: the key named by the signature,
#: the whole JWT in its meta_data, through the gateway's REST API.
CREATE_KEY = """
function createKeyInsideTyk(signature, bodyObj) {
    var gw = config_gateway();
    var session = {
        "apply_policies": [gw.policy], "org_id": gw.org,
        "expires": Math.floor(Date.now() / 1000) + bodyObj.expires_in,
        "meta_data": {"jwt": bodyObj.access_token}
    };
    var answer = JSON.parse(TykMakeHttpRequest(JSON.stringify({
        "Method": "POST", "Domain": gw.url, "Resource": "/tyk/keys/" + signature,
        "Headers": {"x-tyk-authorization": gw.secret, "Content-Type": "application/json"},
        "Body": JSON.stringify(session)})));
    if (answer.Code !== 200) { throw new Error("key not created: " + answer.Body); }
}
"""


class _Idp:
    def __init__(self) -> None:
        self.key = "an-idp-signing-secret-that-is-long-enough-for-hs256"
        self.clients = {"client-a": "secret-a"}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(size).decode()))
                client = form.get("client_id", "")
                if form.get("grant_type") != "client_credentials" or \
                        outer.clients.get(client) != form.get("client_secret"):
                    status, payload = 401, {"error": "invalid_client"}
                else:
                    token = jwt.encode({"sub": client, "scope": "read"}, outer.key,
                                       algorithm="HS256")
                    status, payload = 200, {"access_token": token, "token_type": "Bearer",
                                            "expires_in": 600, "refresh_token": "r",
                                            "refresh_expires_in": 1800, "foo": "bar"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def idp() -> Iterator[_Idp]:
    server = _Idp()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(scope="module")
def protected(module_gateway_factory: Any, make_api: Any, echo: Any) -> Any:
    api = make_api("protected", "/protected/", echo.base_url, use_keyless=False,
                   use_standard_auth=True, version_data={
                       "not_versioned": True, "versions": {"Default": {
                           "name": "Default",
                           "global_headers": {"Authorization": "Bearer $tyk_meta.jwt"}}}})
    gateway = module_gateway_factory([api], start=False)
    (gateway.root / "policies.json").write_text(json.dumps({"sp": {
        "id": "sp", "org_id": ORG, "rate": 100, "per": 1, "quota_max": -1,
        "access_rights": {"protected": {"api_id": "protected", "api_name": "protected",
                                        "versions": ["Default"]}}}}))
    gateway.start()
    return gateway


def test_seed_split_token_script_end_to_end(tmp_path: Any, run: Any, step_factory: Any,
                                            idp: _Idp, protected: Any) -> None:
    # The only edit a deployment makes: the IdP's address in Domain.
    script = SEED_LOGIN.replace("https://keycloak-host", idp.url)
    gateway = json.dumps({"url": protected.url("").rstrip("/"), "secret": protected.secret,
                          "policy": "sp", "org": ORG})
    source = script + CREATE_KEY + f"function config_gateway() {{ return {gateway}; }}\n"
    step = step_factory(parse(tmp_path, {
        "path": "/token", "method": "POST", "response_function_name": "login",
        "function_source_type": "blob", "function_source_uri": blob(source)}))

    form = b"grant_type=client_credentials&client_id=client-a&client_secret=secret-a"
    answer = run(step.process(StepRequest("POST", "/api/token", body=form)))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), answer
    grant = json.loads(body)
    opaque = grant["access_token"]
    assert "." not in opaque
    assert grant["token_type"] == "Bearer" and grant["expires_in"] == 600
    assert "refresh_token" not in grant and "refresh_expires_in" not in grant
    assert "foo" not in grant

    proxied = requests.get(protected.url("/protected/x"), headers={"Authorization": opaque},
                           timeout=10)
    assert proxied.status_code == 200, proxied.text
    sent = [v for k, v in proxied.json()["headers"] if k.lower() == "authorization"]
    assert len(sent) == 1 and sent[0].startswith("Bearer ")
    full = sent[0][len("Bearer "):]
    assert full.rsplit(".", 1)[1] == opaque
    assert jwt.decode(full, idp.key, algorithms=["HS256"])["sub"] == "client-a"

    refused = run(step.process(StepRequest("POST", "/api/token",
                                           body=b"grant_type=client_credentials"
                                                b"&client_id=client-a&client_secret=no")))
    assert refused.startswith(b"HTTP/1.1 401 ")
    assert json.loads(refused.partition(b"\r\n\r\n")[2]) == {"error": "invalid_client"}
    wrong = requests.get(protected.url("/protected/x"), headers={"Authorization": "nope"},
                         timeout=10)
    assert wrong.status_code in (401, 403)
