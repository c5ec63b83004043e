"""``beam-tunnel monitor`` as a real subprocess: its JSON endpoint agrees
with the service, and its page, loaded in headless Chromium (Debian's
``chromium``), renders every tunnel's channels, owners and a lag chart
once the page's script has run - checked in the DOM and in the pixels of
a screenshot. SIGTERM stops it."""

import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request

import pytest
from PIL import Image  # Pillow: a dependency of the test extra's matplotlib

from monitoring_kit import cli_env, command, read_line, wait_for
from tunnel_kit import Worker, run_workers
from worker_kit import make_table, spread_keys, tunnel_client, write_rows


_INSTALL = "apt-get update && apt-get install -y chromium (or: make chromium)"
_WINDOW = (1280, 1400)
_TUNNEL_RED = (214, 39, 40)  # the page's tunnel-lag line
_OK_GREEN = (44, 160, 44)  # the page's OK badge


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"chromium is required in CI and was not found; {_INSTALL}")
    pytest.skip(f"chromium not found; install it with: {_INSTALL}")


def _headless(chromium, processes, tmp_path, *flags, timeout=120):
    """One headless Chromium run (killed with its children if it hangs)."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    browser = processes.start(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out, err = browser.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(browser.pid, signal.SIGKILL)
        browser.communicate()
        raise AssertionError(f"chromium did not finish within {timeout} s")
    assert browser.returncode == 0, err[-2000:]
    return out


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.headers.get("Content-Type"), answer.read()


@pytest.fixture
def two_tunnels(server):
    """Two tables' tunnels: a BaseAndStream one read by two clients, a
    Stream one nobody reads."""
    make_table(server, "t", partitions=3)
    make_table(server, "u", partitions=1)
    write_rows(server, "t", spread_keys(60))
    client = tunnel_client(server, retry_deadline=0)
    tunnel_id = client.create_tunnel("t", "tun", "BaseAndStream")
    client.create_tunnel("u", "idle", "Stream")
    run_workers([Worker(client, tunnel_id, tag="a"), Worker(client, tunnel_id, tag="b")])
    write_rows(server, "u", ["unread"])
    yield client
    client.close()


def test_monitor_page_renders_channels_and_a_lag_chart(server, two_tunnels, processes, tmp_path):
    chromium = _chromium()
    monitor = processes.start(command(server, "monitor", "--port", "0", "--interval", "0.3"),
                              env=cli_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner = read_line(monitor.stdout, 60, "the monitor's URL")
    assert "http://127.0.0.1:" in banner, banner
    url = banner.rsplit(" at ", 1)[1].strip()

    def state():
        return json.loads(_get(url + "api/state")[2])

    current = wait_for(lambda: (lambda s: s if s["refreshes"] >= 3 else None)(state()), 60, "three refreshes")
    expected = {}
    for info in two_tunnels.list_tunnels():
        described = two_tunnels.describe_tunnel(info.table_name, info.tunnel_name)
        expected[info.tunnel_id] = [c.channel_id for c in described.channels]
    assert {t["tunnel_id"]: [c["channel_id"] for c in t["channels"]] for t in current["tunnels"]} == expected
    assert all(len(t["history"]["t_ns"]) >= 3 for t in current["tunnels"])
    owners = {c["owner"] for t in current["tunnels"] for c in t["channels"]} - {None}
    assert len(owners) == 2
    status, content_type, _ = _get(url)
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    with pytest.raises(urllib.error.HTTPError, match="404"):
        _get(url + "nothing-here")

    dom = _headless(chromium, processes, tmp_path, "--virtual-time-budget=5000", "--dump-dom", url)
    assert 'data-renders="0"' not in dom  # the script ran and drew the state
    for tunnel_id, channel_ids in expected.items():
        assert f'id="tunnel-{tunnel_id}"' in dom
        assert f'id="chart-{tunnel_id}"' in dom
        for channel_id in channel_ids:
            assert f'<td class="channel-id">{channel_id}</td>' in dom
    for owner in owners:
        assert f'<td class="owner">{owner}</td>' in dom
    assert dom.count('class="lag-chart"') == 2
    assert '<polyline points="' in dom and 'class="tunnel-lag"' in dom
    assert "lag (" in dom and "service time (UTC)" in dom  # axis titles

    picture = tmp_path / "monitor.png"
    _headless(chromium, processes, tmp_path, "--virtual-time-budget=5000", f"--window-size={_WINDOW[0]},{_WINDOW[1]}",
              f"--screenshot={picture}", url)
    with Image.open(picture) as image:
        assert image.size == _WINDOW
        pixels = image.convert("RGB")
    colors = dict((rgb, count) for count, rgb in pixels.getcolors(maxcolors=1 << 22))
    total = _WINDOW[0] * _WINDOW[1]
    assert total - colors.get((255, 255, 255), 0) > total * 0.03  # text, tables and charts, not a blank page

    def near(target, slack=30):
        return sum(n for rgb, n in colors.items() if all(abs(a - b) <= slack for a, b in zip(rgb, target)))

    assert near(_TUNNEL_RED) > 200  # the tunnel-lag lines of the charts
    assert near(_OK_GREEN) > 200  # the OK badges

    monitor.send_signal(signal.SIGTERM)
    out, err = monitor.communicate(timeout=30)
    assert monitor.returncode == 0, err
    assert "beam-tunnel monitor stopped" in out


def test_monitor_of_one_table_and_a_busy_port(server, two_tunnels, processes):
    first = processes.start(command(server, "monitor", "--table", "u", "--interval", "0.3"),
                            env=cli_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = read_line(first.stdout, 60, "the monitor's URL").rsplit(" at ", 1)[1].strip()
    current = wait_for(lambda: (lambda s: s if s["refreshes"] >= 1 else None)(json.loads(_get(url + "api/state")[2])),
                       60, "a refresh")
    assert [(t["table"], t["tunnel"]) for t in current["tunnels"]] == [("u", "idle")]
    assert current["table"] == "u"

    port = url.rstrip("/").rsplit(":", 1)[1]
    second = subprocess.run(command(server, "monitor", "--port", port), env=cli_env(server),
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 1 and f"127.0.0.1:{port}" in second.stderr

    first.send_signal(signal.SIGINT)
    first.communicate(timeout=30)
    assert first.returncode == 0
