"""The embedded memory store with ``storage.path``: keys and policies survive a
restart, and a gateway killed with SIGKILL during a burst of key creations
leaves a journal that loads with every key it acknowledged."""

from __future__ import annotations

import signal
import threading

import requests

from .conftest import session


def test_keys_and_policies_survive_a_restart(gateway_factory, make_api, echo, admin_for,
                                             tmp_path):
    journal = tmp_path / "store.journal"
    apis = [make_api("p", "/p/", echo.base_url, use_keyless=False),
            make_api("q", "/q/", echo.base_url, use_keyless=False)]
    gw = gateway_factory(apis, storage={"type": "memory", "path": str(journal)})
    admin = admin_for(gw)
    admin.put_policy("only-q", {"id": "only-q", "rate": 5, "per": 1, "quota_max": -1,
                                "access_rights": {"q": {"api_id": "q", "api_name": "q",
                                                        "versions": ["Default"]}}})
    admin.add_key("keep-me-1", session(("p",)))
    admin.add_key("pol-key-1", session(apply_policies=["only-q"]))
    admin.add_key("gone-key-1", session(("p",)))
    admin.delete_key("gone-key-1")

    assert gw.stop() == 0
    gw.start()

    def status(path: str, key: str) -> int:
        return requests.get(gw.url(path), headers={"Authorization": key}, timeout=5).status_code

    assert status("/p/x", "keep-me-1") == 200
    assert status("/q/x", "pol-key-1") == 200
    assert status("/p/x", "pol-key-1") == 403  # the policy came back too
    assert status("/p/x", "gone-key-1") == 403  # and so did the deletion


def test_kill_9_during_key_creation_leaves_a_loadable_journal(gateway_factory, make_api, echo,
                                                             admin_for, tmp_path):
    journal = tmp_path / "store.journal"
    gw = gateway_factory([make_api("p", "/p/", echo.base_url, use_keyless=False)],
                         storage={"type": "memory", "path": str(journal)})
    admin = admin_for(gw)
    acknowledged: list[str] = []
    stop = threading.Event()

    def burst() -> None:
        index = 0
        with requests.Session() as client:
            while not stop.is_set():
                key = f"burst-key-{index:06d}"
                try:
                    resp = client.post(gw.url(f"/tyk/keys/{key}"), json=session(("p",)),
                                       headers=admin.headers, timeout=5)
                except requests.RequestException:
                    return
                if resp.status_code == 200:
                    acknowledged.append(key)
                index += 1

    threads = [threading.Thread(target=burst) for _ in range(1)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 200:
        threading.Event().wait(0.01)
    gw.signal(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert gw.proc is not None
    gw.proc.wait(10)

    gw.start()  # loads the journal, torn last record and all
    with requests.Session() as client:
        for key in acknowledged:
            resp = client.get(gw.url("/p/x"), headers={"Authorization": key}, timeout=5)
            assert resp.status_code == 200, (key, resp.text)
