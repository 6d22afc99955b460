"""``control_api_port``: the REST API answers only there, the APIs only on the
gateway port; ``/hello`` on both."""

from __future__ import annotations

import requests


def test_control_api_port_separates_the_rest_api(gateway_factory, make_api, echo, free_port):
    control = free_port()
    apis = [make_api("a", "/a/", echo.base_url), make_api("t", "/tyk/", echo.base_url)]
    gw = gateway_factory(apis, control_api_port=control, enable_hashed_keys_listing=True)
    admin = {"X-Tyk-Authorization": gw.secret}
    control_url = f"http://{gw.host}:{control}"

    # The REST API on the control port, not on the gateway port (where /tyk/
    # is just a path an API may serve).
    assert requests.get(control_url + "/tyk/keys", headers=admin, timeout=5).status_code == 200
    resp = requests.get(gw.url("/tyk/keys"), headers=admin, timeout=5)
    assert resp.status_code == 200
    assert resp.json()["path"] == "/keys"  # proxied to the API listening on /tyk/

    # The APIs on the gateway port only.
    assert requests.get(gw.url("/a/x"), timeout=5).status_code == 200
    resp = requests.get(control_url + "/a/x", timeout=5)
    assert resp.status_code == 404
    assert resp.headers["Content-Type"] == "application/json"

    for base in (gw.base_url, control_url):
        assert requests.get(base + "/hello", timeout=5).status_code == 200


def test_without_control_port_the_rest_api_is_on_the_gateway_port(gateway_factory, make_api,
                                                                  echo):
    gw = gateway_factory([make_api("a", "/a/", echo.base_url)], enable_hashed_keys_listing=True)
    resp = requests.get(gw.url("/tyk/keys"), headers={"X-Tyk-Authorization": gw.secret},
                        timeout=5)
    assert resp.status_code == 200
    assert "keys" in resp.json()
