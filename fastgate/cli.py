"""The ``fastgate`` command: ``run``, ``check``, ``echo``."""

from __future__ import annotations

import argparse
import logging
import sys

from fastgate import __version__


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load(path: str) -> tuple[object, list[str], list[str]]:
    """Load and validate everything a gateway needs; (config, warnings about
    the config file, warnings about the API definitions).

    Raises ConfigError naming the file and the field.
    """
    from fastgate.config import config_warnings, load_gateway_config
    from fastgate.server.gateway import load_definitions, spec_warnings

    config = load_gateway_config(path)
    api_warnings = []
    specs, _policies = load_definitions(config)
    for spec in specs:
        api_warnings += spec_warnings(spec)
    return config, config_warnings(config), api_warnings


def cmd_check(args: argparse.Namespace) -> int:
    from fastgate.config import ConfigError

    try:
        _config, config_warnings, api_warnings = _load(args.config)
    except ConfigError as exc:
        print(f"fastgate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    for warning in config_warnings + api_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.config}: configuration OK")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from fastgate.config import ConfigError, GatewayConfig
    from fastgate.server.gateway import run_supervisor, run_worker

    _setup_logging(args.log_level)
    log = logging.getLogger("fastgate")
    try:
        config, config_warnings, _api_warnings = _load(args.config)
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    assert isinstance(config, GatewayConfig)
    for warning in config_warnings:
        log.warning("%s", warning)
    # Warnings about APIs are logged by the worker(s) when they load them.
    if config.workers > 1:
        return run_supervisor(config)
    return run_worker(config)


def cmd_echo(args: argparse.Namespace) -> int:
    from fastgate.echo import run_echo

    _setup_logging(args.log_level)
    run_echo(args.host, args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastgate",
        description="A fast HTTP/1.1 API gateway that reads Tyk's configuration language.",
    )
    parser.add_argument("--version", action="version", version="fastgate " + __version__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the gateway")
    run.add_argument("--config", required=True, help="gateway config (tyk.conf field names)")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a configuration and exit")
    check.add_argument("--config", required=True)
    check.set_defaults(func=cmd_check)

    from fastgate.cli_keys import add_keys_parser

    add_keys_parser(sub)

    from fastgate.cli_top import add_top_parser

    add_top_parser(sub)

    echo = sub.add_parser("echo", help="run a small upstream that answers with what it got")
    echo.add_argument("--port", type=int, required=True)
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--log-level", default="warning",
                      choices=["debug", "info", "warning", "error"])
    echo.set_defaults(func=cmd_echo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
