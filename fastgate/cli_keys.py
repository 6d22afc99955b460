"""``fastgate keys``: manage the keys of a running gateway from a shell.

README section
--------------

### Managing keys from the command line

`fastgate keys` talks to a running gateway's REST API (`/tyk/keys`), so it
works the same with the memory store and with Redis, and a change reaches
every worker at once. Tell it where the gateway is and its secret, either
directly or through the gateway's config file. Against the quick start
(`tools/run`, which has the API `echo` and the policy `default`):

```sh
export FASTGATE_SECRET=change-me-quickstart-secret   # the quick start's; or --secret, or --config
.venv/bin/fastgate keys create --api echo --rate 100 --per 60 --quota-max 10000 \\
                               --quota-renewal-rate 3600 --expires 1893456000
.venv/bin/fastgate keys create --key my-custom-key --policy default   # a key named by you
printf 's3cret-pw\\n' | .venv/bin/fastgate keys create --key alice --password-stdin --api echo
echo '{"rate": 5, "per": 1, "meta_data": {"team": "a"}}' |
    .venv/bin/fastgate keys create --data - --api echo --rate 50     # a Tyk session object
.venv/bin/fastgate keys get    my-custom-key            # the session (never the password)
.venv/bin/fastgate keys get    alice                    # a Basic-auth user, by name
.venv/bin/fastgate keys get    <key_hash> --hashed      # by the key_hash `create` printed
.venv/bin/fastgate keys delete my-custom-key
.venv/bin/fastgate keys list                            # storage keys: hashes with hash_keys
.venv/bin/fastgate keys list --config examples/quickstart/gateway.json   # URL and secret from it
```

`alice` is a Basic-auth user of the org of `echo` (`default`): once the API
asks for Basic auth (`"use_keyless": false, "use_basic_auth": true` in
`examples/quickstart/apps/httpbin.json`, then `/tyk/reload`),
`curl -u alice:s3cret-pw http://127.0.0.1:8080/echo/anything` gets through.

| option | default | meaning |
|---|---|---|
| `--url URL` | `--config`'s, else `http://127.0.0.1:8080` | the gateway |
| `--secret S` | `--config`'s, else `$FASTGATE_SECRET` | the `X-Tyk-Authorization` secret |
| `--config FILE` | — | a gateway config: its address, port (or `control_api_port`), secret |

`create` options: `--key NAME` (a custom key, `POST /tyk/keys/NAME`; without
it the gateway generates one), `--org` (default: the org of the `--api` APIs,
asked of the gateway, else of the `--policy` policies; an error when they
belong to different orgs), `--rate N`, `--per S`, `--quota-max N`,
`--quota-renewal-rate S`, `--api API_ID` and `--policy ID` (both
repeatable), `--expires UNIX_TIME` (`0`: never), `--data FILE|-` (a Tyk
session object; each option given overrides its own field, so `--rate` alone
keeps the object's `per` — a rate needs a `per` from one or the other),
`--password-stdin` (makes the key a Basic-auth user; the password is read
from the first line of stdin and stored as bcrypt). A key needs access rights
(`--api`, a `--policy`, or `access_rights` in `--data`) unless the gateway
allows master keys. The options go after the subcommand (`fastgate keys list
--config FILE`).

Every command prints the gateway's JSON reply (`create` prints the key, and
with `hash_keys` its `key_hash`) and exits 0; on an error it prints the
gateway's message to stderr and exits 1 (2 when the gateway cannot be reached
or the command line is wrong).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

DEFAULT_URL = "http://127.0.0.1:8080"
SECRET_ENV = "FASTGATE_SECRET"  # noqa: S105 (the name of the variable)

#: Exit codes.
EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A problem reported to the user; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def add_keys_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``keys`` (with ``create``, ``get``, ``delete``, ``list``) to a
    ``fastgate`` argument parser's subparsers; returns the ``keys`` parser.

    The parsed namespace's ``func(args) -> int`` runs the command.
    """
    connection = argparse.ArgumentParser(add_help=False)
    where = connection.add_argument_group("gateway")
    where.add_argument("--url", help=f"the gateway's base URL (default {DEFAULT_URL}, "
                                     "or from --config)")
    where.add_argument("--secret", help=f"the gateway secret (default ${SECRET_ENV}, "
                                        "or from --config)")
    where.add_argument("--config", metavar="FILE",
                       help="read the URL and the secret from this gateway config")
    where.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                       help="give up after this long (default 30)")

    keys = subparsers.add_parser(
        "keys", help="create, read, delete and list keys on a running gateway",
        description="Manage keys through a running gateway's REST API (/tyk/keys).")
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")

    create = sub.add_parser("create", parents=[connection], help="create a key",
                            description="Create a key; prints the gateway's reply "
                                        "(the key, and its hash with hash_keys).")
    create.add_argument("--key", help="a custom key name (default: generated by the gateway)")
    create.add_argument("--org", help="org_id of the key")
    create.add_argument("--rate", type=_number, help="requests allowed per --per seconds")
    create.add_argument("--per", type=_number, help="the rate window in seconds")
    create.add_argument("--quota-max", type=int, help="requests per quota period (-1: unlimited)")
    create.add_argument("--quota-renewal-rate", type=int, metavar="SECONDS",
                        help="length of the quota period")
    create.add_argument("--api", action="append", default=[], metavar="API_ID",
                        help="grant access to this API (repeatable)")
    create.add_argument("--policy", action="append", default=[], metavar="ID",
                        help="apply this policy (repeatable)")
    create.add_argument("--expires", type=int, metavar="UNIX_TIME",
                        help="expiry as a unix time (0 or less: never)")
    create.add_argument("--data", metavar="FILE",
                        help="a JSON session object to start from ('-': stdin)")
    create.add_argument("--password-stdin", action="store_true",
                        help="make the key a Basic-auth user; read its password from stdin")
    create.set_defaults(func=cmd_create)

    for name, verb in (("get", "show"), ("delete", "delete")):
        cmd = sub.add_parser(name, parents=[connection], help=f"{verb} a key")
        cmd.add_argument("key", help="the key (or its hash with --hashed)")
        cmd.add_argument("--hashed", action="store_true", help="KEY is the key's hash")
        cmd.add_argument("--org", help="the org_id the key belongs to")
        cmd.set_defaults(func=cmd_get if name == "get" else cmd_delete)

    listing = sub.add_parser("list", parents=[connection], help="list keys")
    listing.add_argument("--filter", help="only keys starting with this (an org id)")
    listing.add_argument("--api", metavar="API_ID", help="only keys that may use this API")
    listing.set_defaults(func=cmd_list)
    return keys


def _number(text: str) -> int | float:
    """An argparse type: ``10`` stays an integer in the JSON sent, ``0.5`` a float."""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return int(value) if value.is_integer() else value


# -- commands ---------------------------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> int:
    return _run(args, lambda gateway: _create(args, gateway))


def cmd_get(args: argparse.Namespace) -> int:
    return _run(args, lambda _gateway: ("GET", _key_path(args), None))


def cmd_delete(args: argparse.Namespace) -> int:
    return _run(args, lambda _gateway: ("DELETE", _key_path(args), None))


def cmd_list(args: argparse.Namespace) -> int:
    def request(_gateway: GatewayClient) -> tuple[str, str, bytes | None]:
        query = {name: value for name, value in (("filter", args.filter),
                                                 ("api_id", args.api)) if value}
        return "GET", "/tyk/keys" + ("?" + urlencode(query) if query else ""), None
    return _run(args, request)


def _key_path(args: argparse.Namespace) -> str:
    query = {}
    if args.hashed:
        query["hashed"] = "1"
    if args.org:
        query["org_id"] = args.org
    path = "/tyk/keys/" + quote(args.key, safe="")
    return path + ("?" + urlencode(query) if query else "")


def _create(args: argparse.Namespace, gateway: GatewayClient) -> tuple[str, str, bytes]:
    session = build_session(args)
    if args.org is None and not session.get("org_id"):
        org = default_org(args, gateway)
        if org:
            session["org_id"] = org
    path = "/tyk/keys/" + quote(args.key, safe="") if args.key else "/tyk/keys/create"
    return "POST", path, json.dumps(session).encode()


def default_org(args: argparse.Namespace, gateway: GatewayClient) -> str:
    """The org a key gets when neither ``--org`` nor ``--data`` names one: that of
    the APIs named by ``--api`` (asked of the gateway), else of the policies
    named by ``--policy``; ``""`` when they name none (or are not loaded).

    A key (a Basic-auth user above all) is filed under its org, as Tyk names
    it, and the gateway looks it up under the org of the API it is used on.
    Raises CliError when the APIs (or policies) belong to different orgs.
    """
    for option, collection, ids in (("--api", "apis", args.api),
                                    ("--policy", "policies", args.policy)):
        orgs: dict[str, str] = {}
        for item in ids:
            status, reply = gateway.call("GET", f"/tyk/{collection}/" + quote(item, safe=""))
            if status == 200 and isinstance(reply, dict) and isinstance(reply.get("org_id"), str):
                orgs[item] = reply["org_id"]
        if len(set(orgs.values())) > 1:
            listed = ", ".join(f"{item} ({org or 'no org'})" for item, org in orgs.items())
            raise CliError(f"{option}: {listed} belong to different organisations: "
                           "name the key's with --org")
        if orgs:
            return next(iter(orgs.values()))
    return ""


def build_session(args: argparse.Namespace) -> dict[str, Any]:
    """The session object ``keys create`` sends: ``--data`` with the options applied.

    Each option overrides its field of ``--data`` alone: ``--rate`` keeps the
    body's ``per``, ``--per`` its ``rate``.  A rate needs a ``per`` from one or
    the other (CliError otherwise).
    """
    if args.password_stdin and args.data == "-":
        raise CliError("--password-stdin and --data - both read stdin: use a file for --data")
    session: dict[str, Any] = {}
    if args.data is not None:
        session = _read_json(args.data)
    if args.org is not None:
        session["org_id"] = args.org
    if args.rate is not None:
        session["rate"] = session["allowance"] = args.rate
    if args.per is not None:
        session["per"] = args.per
    if args.rate is not None or args.per is not None:
        rate, per = session.get("rate"), session.get("per")
        if args.rate is not None and not _positive(per):
            raise CliError("--rate needs --per (or a per in --data): the window in seconds")
        if args.per is not None and not _positive(rate):
            raise CliError("--per needs --rate (or a rate in --data)")
    if args.quota_max is not None:
        session["quota_max"] = session["quota_remaining"] = args.quota_max
    if args.quota_renewal_rate is not None:
        session["quota_renewal_rate"] = args.quota_renewal_rate
    if args.expires is not None:
        session["expires"] = args.expires
    if args.api:
        rights = session.get("access_rights")
        if not isinstance(rights, dict):
            rights = {}
        for api_id in args.api:
            rights.setdefault(api_id, {"api_id": api_id, "api_name": api_id,
                                       "versions": ["Default"]})
        session["access_rights"] = rights
    if args.policy:
        policies = session.get("apply_policies")
        if not isinstance(policies, list):
            policies = []
        session["apply_policies"] = policies + [p for p in args.policy if p not in policies]
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: no password on stdin")
        data = session.get("basic_auth_data")
        session["basic_auth_data"] = {**(data if isinstance(data, dict) else {}),
                                      "password": password}
    return session


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _read_json(source: str) -> dict[str, Any]:
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as file:
                text = file.read()
    except OSError as exc:
        raise CliError(f"--data: cannot read {source}: {exc.strerror or exc}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--data: {source} is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CliError(f"--data: {source} must hold a JSON object (a Tyk session)")
    return obj


# -- talking to the gateway -------------------------------------------------------------


def gateway_address(args: argparse.Namespace) -> tuple[str, str]:
    """(base URL, secret) from ``--url``/``--secret``, ``--config``, the environment."""
    url, secret = args.url, args.secret
    if args.config and (url is None or secret is None):
        from fastgate.config import ConfigError, load_gateway_config

        try:
            config = load_gateway_config(args.config)
        except ConfigError as exc:
            raise CliError(f"--config: {exc}") from None
        if url is None:
            url = url_for(config.listen_address, config.control_api_port or config.listen_port)
        if secret is None:
            secret = config.secret
    if url is None:
        url = DEFAULT_URL
    if secret is None:
        secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise CliError(f"no gateway secret: pass --secret, set {SECRET_ENV} or use --config")
    return url.rstrip("/"), secret


def url_for(listen_address: str, port: int) -> str:
    """The URL to reach a gateway listening on ``listen_address:port`` from this host."""
    host = listen_address
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class GatewayClient:
    """The gateway a command talks to: its URL, secret and timeout."""

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """One REST API request: (status, decoded JSON reply); CliError as :func:`call`."""
        return call(self.url, self.secret, method, path, body, self.timeout)


Request = Callable[[GatewayClient], tuple[str, str, bytes | None]]


def _run(args: argparse.Namespace, request: Request) -> int:
    try:
        url, secret = gateway_address(args)
        gateway = GatewayClient(url, secret, args.timeout)
        method, path, body = request(gateway)
        status, reply = gateway.call(method, path, body)
    except CliError as exc:
        print(f"fastgate: {exc}", file=sys.stderr)
        return exc.code
    if status >= 400:
        message = reply.get("message") if isinstance(reply, dict) else None
        print(f"fastgate: {method} {path.split('?')[0]}: {status}: "
              f"{message or json.dumps(reply)}", file=sys.stderr)
        return EXIT_API_ERROR
    print(json.dumps(reply, indent=2))
    return EXIT_OK


def call(url: str, secret: str, method: str, path: str, body: bytes | None,
         timeout: float) -> tuple[int, Any]:
    """One REST API request: (status, decoded JSON reply).  Raises CliError
    when the gateway cannot be reached or does not answer JSON."""
    headers = {"X-Tyk-Authorization": secret, "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url must start with http:// or https://, got {url!r}")
    # The scheme is checked above: http(s) only.
    request = urllib.request.Request(  # noqa: S310
        url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
        exc.close()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"cannot reach the gateway at {url}: {reason}") from None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        raise CliError(f"{method} {path.split('?')[0]}: {status}: the gateway did not "
                       f"answer JSON: {raw[:200]!r}", EXIT_API_ERROR) from None
