"""bench.harness config rendering and bench.scenarios as data."""

import json
from pathlib import Path

import pytest

from bench import scenarios
from bench.harness import (
    BENCH_DIR,
    Bench,
    deep_merge,
    parse_args,
    render_template,
    substitute,
)
from bench.spec import UPSTREAM_URL, Scenario


def test_render_template():
    assert render_template("listen {{port}}; x {{port}} {y}", {"port": 80}) == "listen 80; x 80 {y}"
    with pytest.raises(KeyError):
        render_template("{{missing}}", {})


@pytest.mark.parametrize("name", ["upstream.conf", "proxy.conf"])
@pytest.mark.parametrize("tls", [False, True])
def test_nginx_templates_render_completely(name, tls):
    text = (BENCH_DIR / "nginx" / name).read_text()
    values = {"prefix": "/tmp/p", "port": 1, "upstream_port": 2, "upstream_name": "u",
              "locations": "location / { return 204; }",
              "listen_ssl": " ssl" if tls else "",
              "ssl": "        ssl_certificate /tmp/c.pem;\n" if tls else "",
              "workers": 1, "worker_connections": 4096, "rlimit_nofile": 8192}
    rendered = render_template(text, values)
    assert "{{" not in rendered and "}}" not in rendered
    assert "daemon off;" in rendered and "worker_processes 1;" in rendered


def test_substitute_and_merge():
    data = {"a": [UPSTREAM_URL + "/x", 1, {"b": UPSTREAM_URL}], "c": None}
    assert substitute(data, UPSTREAM_URL, "http://u:1") == {
        "a": ["http://u:1/x", 1, {"b": "http://u:1"}], "c": None}
    base = {"storage": {"type": "memory", "host": "h"}, "secret": "s"}
    merged = deep_merge(base, {"storage": {"type": "redis"}, "workers": 2})
    assert merged == {"storage": {"type": "redis", "host": "h"}, "secret": "s", "workers": 2}
    assert base["storage"]["type"] == "memory"


def test_gateway_config_and_api_definitions(tmp_path):
    scenario = Scenario(
        name="t",
        description="t",
        api_definitions=(scenarios.keyless_api(), scenarios.keyless_api("b/2", "/b/")),
        gateway_config={"hash_keys": True, "storage": {"type": "memory"}},
        files={"policies/policies.json": '{"p": "' + UPSTREAM_URL + '"}'},
    )
    bench = Bench.__new__(Bench)
    bench.settings = parse_args([])
    bench.upstream_url = "http://127.0.0.1:9"
    config_path = bench.write_gateway_config(scenario, tmp_path / "gw", 8000)
    config = json.loads(config_path.read_text())
    assert config == {
        "listen_address": "127.0.0.1",
        "listen_port": 8000,
        "secret": "bench-secret",
        "app_path": str(tmp_path / "gw" / "apps"),
        "storage": {"type": "memory"},
        "hash_keys": True,
    }
    apps = sorted(Path(config["app_path"]).iterdir())
    assert [p.name for p in apps] == ["000-bench.json", "001-b_2.json"]
    first = json.loads(apps[0].read_text())
    assert first["proxy"] == {"listen_path": "/", "target_url": "http://127.0.0.1:9",
                              "strip_listen_path": False}
    assert first["use_keyless"] is True and first["active"] is True
    policies = (tmp_path / "gw" / "policies" / "policies.json").read_text()
    assert policies == '{"p": "http://127.0.0.1:9"}'


def test_scenarios_are_well_formed():
    names = [s.name for s in scenarios.SCENARIOS]
    assert len(names) == len(set(names))
    assert {"keyless", "keyless-post-1k"} <= set(names)
    for scenario in scenarios.SCENARIOS:
        assert scenario.api_definitions
        if scenario.wrk_script:
            assert (BENCH_DIR / "wrk" / scenario.wrk_script).is_file()
        assert "proxy_pass" in scenario.nginx_locations


def test_post_scenario_probe_matches_its_script():
    post = scenarios.by_name(["keyless-post-1k"])[0]
    assert post.probe.method == "POST" and len(post.probe.body or b"") == 1024
    assert 'string.rep("x", 1024)' in (BENCH_DIR / "wrk" / "post_1k.lua").read_text()


def test_by_name():
    assert [s.name for s in scenarios.by_name(["keyless-post-1k", "keyless", "keyless"])] == [
        "keyless-post-1k", "keyless"]
    assert scenarios.by_name([]) == scenarios.SCENARIOS
    with pytest.raises(KeyError, match="nope"):
        scenarios.by_name(["nope"])


def test_quick_defaults_and_overrides():
    quick = parse_args(["--quick"])
    assert quick is not None
    assert (quick.rounds, quick.duration_s, quick.warmup_s) == (1, 2, 1)
    full = parse_args(["--rounds", "5", "--scenario", "keyless", "--connections", "32"])
    assert full is not None
    assert (full.rounds, full.duration_s, full.connections, full.scenarios) == (
        5, 10, 32, ("keyless",))
    with pytest.raises(SystemExit):
        parse_args(["--scenario", "nope"])
    with pytest.raises(SystemExit):
        parse_args(["--rounds", "0"])


def test_mtls_static_gateway_config_allows_the_client_ca_it_is_given(tmp_path):
    """The API definition names the client CA's store id, which is that CA's
    sha256; the client certificate is issued by it for client auth; the relay
    template renders completely."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    scenario = scenarios.by_name(["mtls-static"])[0]
    assert scenario.tls and scenario.client_certificates
    bench = Bench.__new__(Bench)
    bench.settings = parse_args([])
    bench.upstream_url = "http://127.0.0.1:9"
    bench.tmp = tmp_path
    bench._client_ca_id = None
    config_path = bench.write_gateway_config(scenario, tmp_path / "gw", 8000)
    ca_file, client_file, ca_id = bench.client_pki()
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    assert ca_id == hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
    (api_file,) = (Path(json.loads(config_path.read_text())["app_path"])).iterdir()
    api = json.loads(api_file.read_text())
    assert api["use_mutual_tls_auth"] is True and api["client_certificates"] == [ca_id]
    leaf = x509.load_pem_x509_certificate(client_file.read_bytes())
    leaf.verify_directly_issued_by(ca)
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    assert b"PRIVATE KEY" in client_file.read_bytes()
    rendered = render_template((BENCH_DIR / "haproxy" / "relay.cfg").read_text(),
                               {"port": 1, "target_port": 2, "client_pem": client_file})
    assert "{{" not in rendered and f"crt {client_file}" in rendered


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda s: s.name)
def test_scenario_api_definitions_are_served_as_they_are(scenario):
    """Every API a scenario runs loads without error and with every access
    control it enables implemented (a refused API would measure 501s)."""
    from fastgate.apidef import parse_api_definition

    for definition in scenario.api_definitions:
        text = json.dumps(definition).replace(UPSTREAM_URL, "http://127.0.0.1:9")
        spec = parse_api_definition(json.loads(text), "bench.json")
        assert spec.unsupported_auth == ()
        assert spec.ignored_fields == ()
