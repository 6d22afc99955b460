"""Chained authentication on a real gateway process.

* **AND** (Tyk's model, ``auth_mode`` unset or ``"all"``): every pair of auth
  token, Basic, JWT, HMAC (once implemented) and static mTLS, and all of them
  at once, with ``base_identity_provided_by`` naming each identity method in
  turn (and unset: the last method wins).  The base key's session drives rate
  limits, quotas and access rights; a non-base key only has to exist -- and,
  **beyond Tyk**, to be neither expired nor inactive.
* **OR** (``auth_mode: "any"``): the first method whose credential is present
  decides; none present: the last method's answer.

Each method reads its own header (``auth_configs.<method>.auth_header_name``)
so that every credential fits in one request.  One TLS gateway per store kind
(memory, a real redis-server) serves every API of the module; real clients:
requests, PyJWT tokens, trustme certificates, HMAC signatures made as Tyk's
clients make them.  Keys are fresh where a case consumes them (rate, quota).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import itertools
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fastgate.auth import REGISTRY

HOST = "127.0.0.1"
ORG = "test-org"
#: The HMAC method is chained once the registry has it implemented.
HMAC_READY = any(m.name == "hmac" and m.implemented for m in REGISTRY)

TOKEN_HEADER, BASIC_HEADER, JWT_HEADER, HMAC_HEADER = (
    "X-Api-Key", "X-Basic-Auth", "X-Jwt", "X-Signature")
MISSING = "Authorization field missing"
HMAC_MESSAGE = "Authorization field missing, malformed or invalid"
DISALLOWED = "Access to this API has been disallowed"
EXPIRED = (401, "Key has expired, please renew")
INACTIVE = (403, "Key is inactive, please renew")
RATE_LIMITED = (429, "Rate Limit Exceeded")
QUOTA_EXCEEDED = (403, "Quota exceeded")
OK = (200, "")
#: An expected answer whose message ends with this is matched by its start.
ANY_REST = "..."


@dataclass(frozen=True)
class Method:
    """One way in, as the tables use it."""

    name: str
    #: Its ``base_identity_provided_by`` value ("" for static mTLS: no identity).
    identity: str
    #: The definition fields that turn it on (mTLS's allow-list is added later).
    fields: dict[str, Any]
    #: Its ``auth_configs`` section name and the header it reads.
    config: tuple[str, str] | None
    #: The answer to a request without its credential, and with one naming no key.
    missing: tuple[int, str]
    unknown: tuple[int, str]


#: Tyk's chain order (static mTLS runs before every method).
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("mtls", "", {"use_mutual_tls_auth": True}, None,
           (403, "Client TLS certificate is required"),
           (403, "Certificate with SHA256 " + ANY_REST)),
    Method("basic", "basic_auth_user", {"use_basic_auth": True}, ("basic", BASIC_HEADER),
           (401, MISSING), (401, "User not authorised")),
    *([Method("hmac", "hmac_key", {"enable_signature_checking": True}, ("hmac", HMAC_HEADER),
              (401, HMAC_MESSAGE), (401, HMAC_MESSAGE))] if HMAC_READY else []),
    Method("jwt", "jwt_claim", {"enable_jwt": True, "jwt_signing_method": "hmac"},
           ("jwt", JWT_HEADER), (400, MISSING), (403, "Key not authorized")),
    Method("token", "auth_token", {"use_standard_auth": True}, ("authToken", TOKEN_HEADER),
           (401, MISSING), (403, DISALLOWED)),
)}
IDENTITY_METHODS = tuple(name for name, m in METHODS.items() if m.identity)
ORDER = tuple(METHODS)


# --------------------------------------------------------------------------- the APIs


@dataclass(frozen=True)
class AndApi:
    """An AND chain: its methods (chain order) and the base identity (None: unset)."""

    methods: tuple[str, ...]
    base: str | None

    @property
    def api_id(self) -> str:
        return "and-" + "-".join(self.methods) + "-" + (self.base or "unset")

    @property
    def effective_base(self) -> str:
        """Whose session drives: the named method, else the last (Tyk's "last wins")."""
        identities = [m for m in self.methods if METHODS[m].identity]
        return self.base or identities[-1]


def _and_apis() -> list[AndApi]:
    combos = [tuple(pair) for pair in itertools.combinations(ORDER, 2)]
    apis = []
    for combo in [*combos, ORDER]:
        identities = [m for m in combo if METHODS[m].identity]
        apis += [AndApi(combo, base) for base in identities]
        if combo == ORDER:
            apis.append(AndApi(combo, None))
    return apis


AND_APIS = _and_apis()
#: auth_mode "any": every identity method on its own header; its
#: base_identity_provided_by is ignored (the method that decides provides it).
ANY_ALL = ("any-all", tuple(IDENTITY_METHODS))
ANY_APIS = ("any-all", "any-shared", "any-mtls", "any-body")
ALL_API_IDS = tuple(api.api_id for api in AND_APIS) + ANY_APIS


def method_fields(methods: tuple[str, ...], ca_id: str, *,
                  own_headers: bool = True) -> dict[str, Any]:
    fields: dict[str, Any] = {"use_keyless": False, "org_id": ORG}
    configs: dict[str, Any] = {}
    for name in methods:
        method = METHODS[name]
        fields.update(method.fields)
        if name == "mtls":
            fields["client_certificates"] = [ca_id]
        if method.config is not None and own_headers:
            section, header = method.config
            configs[section] = {"auth_header_name": header}
    fields["auth_configs"] = configs
    return fields


def definitions(make_api: Any, echo: Any, ca_id: str) -> list[dict[str, Any]]:
    def api(api_id: str, methods: tuple[str, ...], **extra: Any) -> dict[str, Any]:
        return make_api(api_id, f"/{api_id}/", echo.base_url,
                        **{**method_fields(methods, ca_id), **extra})

    apis = [api(a.api_id, a.methods,
                **({"base_identity_provided_by": METHODS[a.base].identity} if a.base else {}))
            for a in AND_APIS]
    apis.append(api("any-all", ANY_ALL[1], auth_mode="any",
                    base_identity_provided_by="basic_auth_user"))
    shared = make_api("any-shared", "/any-shared/", echo.base_url, auth_mode="any",
                      **method_fields(("basic", "jwt", "token"), ca_id, own_headers=False))
    apis.append(shared)
    apis.append(api("any-mtls", ("mtls", "token"), auth_mode="any"))
    apis.append(api("any-body", ("basic", "token"), auth_mode="any",
                    basic_auth={"extract_from_body": True,
                                "body_user_regexp": r"user=(\w+)",
                                "body_password_regexp": r"pass=([\w-]+)"}))
    return apis


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credential:
    """What one method needs of a request: headers (an HMAC signature is made
    per request) and/or a client certificate."""

    method: str
    headers: dict[str, str] = field(default_factory=dict)
    #: HMAC: (keyId, secret) the request is signed with.
    signer: tuple[str, str] | None = None
    cert: tuple[str, str] | None = None

    def for_request(self, verb: str, path: str) -> dict[str, str]:
        if self.signer is None:
            return self.headers
        key_id, secret = self.signer
        date = email.utils.formatdate(usegmt=True)
        signed = f"(request-target): {verb.lower()} {path}\ndate: {date}"
        mac = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
        signature = urllib.parse.quote(base64.b64encode(mac).decode(), safe="")
        return {"Date": date, HMAC_HEADER: f'Signature keyId="{key_id}",algorithm="hmac-sha256",'
                                           f'headers="(request-target) date",'
                                           f'signature="{signature}"'}


def key_session(**fields: Any) -> dict[str, Any]:
    """A generous key with access to every API of the module (``fields`` on top)."""
    rights = {a: {"api_id": a, "api_name": a, "versions": ["Default"]} for a in ALL_API_IDS}
    body: dict[str, Any] = {"org_id": ORG, "rate": 100000, "per": 1, "allowance": 100000,
                            "quota_max": -1, "access_rights": rights}
    body.update(fields)
    return body


#: What the case under test does to its method's key.
SUBJECTS: dict[str, dict[str, Any]] = {
    "rate": {"rate": 2, "per": 60, "allowance": 2},
    "quota": {"quota_max": 2, "quota_remaining": 2, "quota_renewal_rate": 3600},
    "no_access": {"access_rights": {"elsewhere": {"api_id": "elsewhere",
                                                  "api_name": "elsewhere",
                                                  "versions": ["Default"]}}},
    "expired": {"expires": int(time.time()) - 60},
    "inactive": {"is_inactive": True},
}
#: The keys a case does not consume: made once per gateway, shared.
STATIC_SUBJECTS = ("no_access", "expired", "inactive")


def basic_header(user: str, password: str, header: str) -> dict[str, str]:
    return {header: "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def jwt_for(kid: str, secret: str, header: str, bearer: bool = False) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"sub": kid, "iat": now, "exp": now + 3600}, secret,
                       algorithm="HS256", headers={"kid": kid})
    return {header: ("Bearer " if bearer else "") + token}


class Pki:
    """A CA whose id is the mTLS allow-list, a client it issued, and a stranger."""

    def __init__(self, root: Path) -> None:
        self.ca = trustme.CA()
        self.ca_file = root / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        der = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes()).public_bytes(
            serialization.Encoding.DER)
        self.ca_id = hashlib.sha256(der).hexdigest()
        server = self.ca.issue_cert(HOST, "a.test")
        self.server_crt, self.server_key = root / "server.crt", root / "server.key"
        self.server_crt.write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
        server.private_key_pem.write_to_path(str(self.server_key))
        self.client = self._client(root, self.ca, "client")
        self.stranger = self._client(root, trustme.CA(), "stranger")

    @staticmethod
    def _client(root: Path, ca: trustme.CA, name: str) -> tuple[str, str]:
        leaf = ca.issue_cert(f"{name}@clients.test")
        crt, key = root / f"{name}.crt", root / f"{name}.key"
        crt.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        return str(crt), str(key)


class World:
    """The module's gateway, its client, and the credentials shared by the cases."""

    def __init__(self, gateway: Any, pki: Pki) -> None:
        self.gw = gateway
        self.pki = pki
        self.http = requests.Session()
        self.good = {m: self.make(m) for m in METHODS}
        self.static = {(m, subject): self.make(m, **SUBJECTS[subject])
                       for m in IDENTITY_METHODS for subject in STATIC_SUBJECTS}

    def admin(self, verb: str, path: str, body: Any = None) -> requests.Response:
        return self.http.request(verb, self.gw.url(path), json=body, timeout=10,
                                 headers={"X-Tyk-Authorization": self.gw.secret},
                                 verify=self.gw.verify)

    def add_key(self, name: str, body: dict[str, Any]) -> None:
        resp = self.admin("POST", f"/tyk/keys/{name}", body)
        assert resp.status_code == 200, resp.text

    def make(self, method: str, **fields: Any) -> Credential:
        """A new key (user, JWT key, HMAC key) for ``method`` with ``fields``."""
        name = f"{method}{uuid.uuid4().hex[:12]}"
        secret = "secret-of-" + name + "-long-enough-for-hs256"
        if method == "mtls":
            return Credential(method, cert=self.pki.client)
        if method == "token":
            self.add_key(name, key_session(**fields))
            return Credential(method, {TOKEN_HEADER: name})
        if method == "basic":
            self.add_key(name, key_session(basic_auth_data={"password": secret}, **fields))
            return Credential(method, basic_header(name, secret, BASIC_HEADER))
        if method == "jwt":
            self.add_key(name, key_session(jwt_data={"secret": secret}, **fields))
            return Credential(method, jwt_for(name, secret, JWT_HEADER))
        assert method == "hmac"
        self.add_key(name, key_session(hmac_enabled=True, hmac_string=secret, **fields))
        return Credential(method, signer=(name, secret))

    def unknown(self, method: str) -> Credential:
        """A credential of ``method`` that names no key (a certificate not allowed)."""
        name = f"nobody{uuid.uuid4().hex[:12]}"
        secret = "secret-of-nobody-long-enough-for-hs256"
        return {
            "mtls": lambda: Credential(method, cert=self.pki.stranger),
            "token": lambda: Credential(method, {TOKEN_HEADER: name}),
            "basic": lambda: Credential(method, basic_header(name, secret, BASIC_HEADER)),
            "jwt": lambda: Credential(method, jwt_for(name, secret, JWT_HEADER)),
            "hmac": lambda: Credential(method, signer=(name, secret)),
        }[method]()

    def subject(self, method: str, subject: str) -> Credential:
        if subject == "unknown":
            return self.unknown(method)
        if subject in STATIC_SUBJECTS:
            return self.static[method, subject]
        return self.make(method, **SUBJECTS[subject])

    def call(self, api_id: str, credentials: list[Credential], *, verb: str = "GET",
             data: str | None = None) -> requests.Response:
        path = f"/{api_id}/x"
        headers: dict[str, str] = {}
        cert = None
        for credential in credentials:
            headers.update(credential.for_request(verb, path))
            cert = credential.cert or cert
        return self.http.request(verb, self.gw.url(path), headers=headers, cert=cert,
                                 data=data, timeout=10, verify=self.gw.verify)


def check(resp: requests.Response, expected: tuple[int, str]) -> None:
    status, message = expected
    assert resp.status_code == status, (resp.status_code, resp.text)
    if status == 200:
        assert resp.json()["path"] == "/x"
        return
    error = resp.json()["error"]
    if message.endswith(ANY_REST):
        assert error.startswith(message.removesuffix(ANY_REST)), error
    else:
        assert error == message


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("multi-auth-pki"))


@pytest.fixture(scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def world(request: pytest.FixtureRequest, module_gateway_factory: Any, make_api: Any,
          echo: Any, pki: Pki) -> Iterator[World]:
    storage: dict[str, Any] = {"type": "memory"}
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        server.ensure_running()
        server.flush()
        storage = {"type": "redis", "host": server.host, "port": server.port}
    gateway = module_gateway_factory(
        definitions(make_api, echo, pki.ca_id),
        http_server_options={"use_ssl": True, "certificates": [
            {"domain_name": "a.test", "cert_file": str(pki.server_crt),
             "key_file": str(pki.server_key)}]},
        tls_verify=str(pki.ca_file), storage=storage)
    resp = requests.post(gateway.url("/tyk/certs?org_id="), data=pki.ca.cert_pem.bytes(),
                         headers={"X-Tyk-Authorization": gateway.secret},
                         verify=gateway.verify, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == pki.ca_id
    world = World(gateway, pki)
    # The "certs" event makes the listener trust the CA now in the store.
    wait_for(lambda: world.call("any-mtls", [world.good["mtls"]]).status_code == 200)
    yield world
    world.http.close()


# --------------------------------------------------------------------------- AND


def test_the_tables_follow_the_registry() -> None:
    """HMAC joins the tables when its registry entry is implemented; the
    methods run in the registry's order, static mTLS first."""
    assert ("hmac" in METHODS) == HMAC_READY
    assert ORDER[0] == "mtls"
    tables = [METHODS[m].identity for m in ORDER[1:]]
    assert [m.identity for m in REGISTRY if m.identity in tables and m.implemented] == tables


@pytest.mark.parametrize("api", AND_APIS, ids=lambda a: a.api_id)
def test_and_every_credential_is_needed(world: World, api: AndApi) -> None:
    """All present: in.  Each one missing in turn: that method's own answer."""
    good = [world.good[m] for m in api.methods]
    check(world.call(api.api_id, good), OK)
    for missing in api.methods:
        others = [c for c in good if c.method != missing]
        check(world.call(api.api_id, others), METHODS[missing].missing)


#: subject -> what the base key's case answers, request by request.
AS_BASE: dict[str, list[tuple[int, str]]] = {
    "rate": [OK, OK, RATE_LIMITED],
    "quota": [OK, OK, QUOTA_EXCEEDED],
    "no_access": [(403, DISALLOWED)],
    "expired": [EXPIRED],
    "inactive": [INACTIVE],
}
#: A key that is not the base identity: never counted, its rights never
#: looked at (Tyk) -- but expired or inactive, refused (beyond Tyk).
AS_OTHER: dict[str, list[tuple[int, str]]] = {
    "rate": [OK, OK, OK],
    "quota": [OK, OK, OK],
    "no_access": [OK],
    "expired": [EXPIRED],
    "inactive": [INACTIVE],
}
AND_CASES = [
    pytest.param(api, method, subject, id=f"{api.api_id}:{method}:{subject}")
    for api in AND_APIS for method in api.methods
    for subject in (("unknown",) if method == "mtls" else (*SUBJECTS, "unknown"))
]


@pytest.mark.parametrize(("api", "method", "subject"), AND_CASES)
def test_and_the_base_identity_drives_limits_and_rights(world: World, api: AndApi,
                                                        method: str, subject: str) -> None:
    credentials = [world.subject(m, subject) if m == method else world.good[m]
                   for m in api.methods]
    if subject == "unknown":
        expected = [METHODS[method].unknown]  # every method must pass, base or not
    else:
        expected = (AS_BASE if method == api.effective_base else AS_OTHER)[subject]
    for answer in expected:
        check(world.call(api.api_id, credentials), answer)


# --------------------------------------------------------------------------- OR


ANY_METHODS = ANY_ALL[1]


@pytest.mark.parametrize("method", ANY_METHODS)
def test_any_one_credential_is_enough(world: World, method: str) -> None:
    """The methods before it see no credential of theirs and step aside."""
    check(world.call("any-all", [world.good[method]]), OK)


def test_any_no_credential_gets_the_last_methods_answer(world: World) -> None:
    check(world.call("any-all", []), METHODS[ANY_METHODS[-1]].missing)


@pytest.mark.parametrize("method", ANY_METHODS[:-1])
def test_any_the_first_credential_present_decides(world: World, method: str) -> None:
    """A failing credential is not retried under a later method; a passing one
    is the only one looked at (later keys, even rate-limited, never count)."""
    later = ANY_METHODS[ANY_METHODS.index(method) + 1:]
    check(world.call("any-all", [world.unknown(method), *(world.good[m] for m in later)]),
          METHODS[method].unknown)
    limited = [world.make(m, **SUBJECTS["rate"]) for m in later]
    good = world.good[method]
    for _ in range(3):
        check(world.call("any-all", [good, *limited]), OK)


@pytest.mark.parametrize("method", ANY_METHODS)
def test_any_the_deciding_method_provides_the_identity(world: World, method: str) -> None:
    """Whatever base_identity_provided_by says (basic_auth_user on this API)."""
    limited = world.make(method, **SUBJECTS["rate"])
    for answer in AS_BASE["rate"]:
        check(world.call("any-all", [limited]), answer)
    for subject in STATIC_SUBJECTS:
        check(world.call("any-all", [world.static[method, subject]]), AS_BASE[subject][0])


def test_any_methods_may_share_one_header(world: World) -> None:
    """On Authorization: the Basic scheme is Basic's, a JWS-shaped bearer the
    JWT's, anything else the auth token's."""
    user = "sharer" + uuid.uuid4().hex[:8]
    world.add_key(user, key_session(basic_auth_data={"password": "pw-shared-1"}))
    kid = "kid" + uuid.uuid4().hex[:8]
    secret = "a-jwt-secret-long-enough-for-hs256-" + kid
    world.add_key(kid, key_session(jwt_data={"secret": secret}))
    token = "tok" + uuid.uuid4().hex[:8]
    world.add_key(token, key_session())
    auth = "Authorization"
    cases = [
        (basic_header(user, "pw-shared-1", auth), OK),
        (basic_header(user, "wrong", auth), (401, "User not authorised")),
        (jwt_for(kid, secret, auth, bearer=True), OK),
        (jwt_for(kid, "not-the-secret-but-long-enough-for-hs256", auth, bearer=True),
         (403, "Key not authorized")),
        ({auth: f"Bearer {token}"}, OK),
        ({auth: token}, OK),
        ({auth: "Bearer no-such-key"}, (403, DISALLOWED)),
        ({}, (401, MISSING)),
    ]
    for headers, expected in cases:
        check(world.call("any-shared", [Credential("shared", headers)]), expected)


def test_any_client_certificate_or_token(world: World) -> None:
    """Static mTLS is an alternative: a request it admits has no session
    (no key limits: a rate-limited token beside it is not even read)."""
    cert, token = world.good["mtls"], world.good["token"]
    limited = world.make("token", **SUBJECTS["rate"])
    for _ in range(3):
        check(world.call("any-mtls", [cert, limited]), OK)
    check(world.call("any-mtls", [token]), OK)
    for answer in AS_BASE["rate"]:
        check(world.call("any-mtls", [limited]), answer)
    check(world.call("any-mtls", []), (401, MISSING))
    check(world.call("any-mtls", [world.unknown("mtls"), token]), METHODS["mtls"].unknown)


def test_any_basic_from_the_body(world: World) -> None:
    """With extract_from_body, a request with a body is Basic's to decide."""
    user = "bodyuser" + uuid.uuid4().hex[:8]
    world.add_key(user, key_session(basic_auth_data={"password": "pw-body-1"}))
    token = world.good["token"]
    check(world.call("any-body", [], verb="POST", data=f"user={user}&pass=pw-body-1"), OK)
    check(world.call("any-body", [token]), OK)
    check(world.call("any-body", [token], verb="POST", data="{}"),
          (400, "Body do not contain username"))
    check(world.call("any-body", []), (401, MISSING))
