"""The channel rules (model/channels.py), driven directly: leases, versions,
the CLOSING handshake, WAIT and balancing. The wire-level tests drive the same
rules through TunnelClient; these pin the exact versions and edge cases."""

import pytest

from beam_tunnel.errors import ParameterInvalidError
from beam_tunnel.emulator.model import channels as rules
from beam_tunnel.emulator.model.tunnel_store import (
    BASE,
    BASE_AND_STREAM,
    CLOSE,
    CLOSING,
    OPEN,
    STAGE_BASE,
    STREAM,
    TERMINATED,
    WAIT,
    ChannelRecord,
    ClientRecord,
    TunnelRecord,
    TunnelState,
)

# ChannelStatus enum numbers, as heartbeats carry them.
N_OPEN, N_CLOSING, N_CLOSE, N_TERMINATED = 1, 2, 3, 4
SECOND = 1_000_000


def _state(kind=STREAM, tunnel_type=STREAM, n=4, parents=None):
    tunnel = TunnelRecord("t1", "tab", "tun", tunnel_type, STAGE_BASE, 0, "sid", None, 0, 0, False)
    channels = [
        ChannelRecord("t1", f"c{i}", kind, f"p{i}", tuple((parents or {}).get(f"c{i}", ())), None, None,
                      WAIT, 0, None, "tok", 0, 0, False)
        for i in range(n)
    ]
    return TunnelState(tunnel, channels)


def _connect(state, client_id, at_us=0, timeout_s=10):
    state.clients[client_id] = ClientRecord(client_id, "t1", "tag", timeout_s * SECOND, at_us, at_us)


def _view(state, client_id):
    return {c.channel_id: (c.status, c.version) for c in rules.assigned_to(state, client_id)}


def test_first_client_gets_every_channel_open_v1():
    state = _state()
    _connect(state, "a")
    rules.balance(state)
    assert _view(state, "a") == {f"c{i}": (OPEN, 1) for i in range(4)}


def test_second_client_gets_half_only_after_close_acknowledged():
    state = _state()
    _connect(state, "a", at_us=0)
    rules.balance(state)
    _connect(state, "b", at_us=1)
    rules.balance(state)
    # The highest ids are asked back; nothing is given to b yet.
    assert _view(state, "a") == {"c0": (OPEN, 1), "c1": (OPEN, 1), "c2": (CLOSING, 2), "c3": (CLOSING, 2)}
    assert _view(state, "b") == {}
    # A heartbeat of b changes nothing while a has not answered.
    rules.balance(state)
    assert _view(state, "b") == {}
    rules.merge_reports(state, "a", [("c0", 1, N_OPEN), ("c1", 1, N_OPEN), ("c2", 3, N_CLOSE), ("c3", 3, N_CLOSE)])
    rules.balance(state)
    assert _view(state, "a") == {"c0": (OPEN, 1), "c1": (OPEN, 1)}
    assert _view(state, "b") == {"c2": (OPEN, 4), "c3": (OPEN, 4)}


def test_balance_is_stable():
    state = _state(n=5)
    for name in "abc":
        _connect(state, name, at_us=ord(name))
    rules.balance(state)
    before = {c.channel_id: (c.owner, c.status, c.version) for c in state.channels.values()}
    rules.balance(state)
    rules.balance(state)
    assert {c.channel_id: (c.owner, c.status, c.version) for c in state.channels.values()} == before
    loads = sorted(len(_view(state, name)) for name in "abc")
    assert loads == [1, 2, 2]


def test_stale_and_echo_reports_change_nothing():
    state = _state(n=1)
    _connect(state, "a")
    rules.balance(state)
    rules.merge_reports(state, "a", [("c0", 1, N_OPEN), ("c0", 0, N_CLOSE), ("nope", 9, N_CLOSE)])
    assert _view(state, "a") == {"c0": (OPEN, 1)}
    # Another client cannot close a channel it does not own.
    _connect(state, "b", at_us=1)
    rules.merge_reports(state, "b", [("c0", 5, N_CLOSE)])
    assert state.channels["c0"].owner == "a"
    # A client cannot reopen with a higher version either.
    rules.merge_reports(state, "a", [("c0", 7, N_OPEN)])
    assert (state.channels["c0"].status, state.channels["c0"].version) == (OPEN, 1)


def test_failure_close_then_reopen_with_higher_version():
    state = _state(n=1)
    _connect(state, "a")
    rules.balance(state)
    rules.merge_reports(state, "a", [("c0", 2, N_CLOSE)])
    rules.balance(state)
    assert _view(state, "a") == {"c0": (OPEN, 3)}


def test_terminated_report_finishes_and_releases():
    state = _state(n=1)
    _connect(state, "a")
    rules.balance(state)
    rules.merge_reports(state, "a", [("c0", 2, N_TERMINATED)])
    rules.balance(state)
    assert _view(state, "a") == {}
    assert (state.channels["c0"].status, state.channels["c0"].version) == (TERMINATED, 2)


def test_expired_lease_releases_channels_to_the_survivor():
    state = _state(n=2)
    _connect(state, "a", at_us=0, timeout_s=10)
    _connect(state, "b", at_us=1, timeout_s=10)
    rules.balance(state)
    assert _view(state, "a") == {"c0": (OPEN, 1)} and _view(state, "b") == {"c1": (OPEN, 1)}
    state.clients["b"].last_seen_us = 9 * SECOND
    assert rules.expire_leases(state, 10 * SECOND) == []
    assert rules.expire_leases(state, 10 * SECOND + 1) == ["a"]
    assert not state.clients["a"].alive
    assert (state.channels["c0"].status, state.channels["c0"].version, state.channels["c0"].owner) == (CLOSE, 2, None)
    rules.balance(state)
    assert _view(state, "b") == {"c0": (OPEN, 3), "c1": (OPEN, 1)}


def test_closing_channel_of_dead_owner_moves_after_timeout():
    state = _state(n=2)
    _connect(state, "a", at_us=0)
    rules.balance(state)
    _connect(state, "b", at_us=1)
    rules.balance(state)
    assert _view(state, "a")["c1"] == (CLOSING, 2)
    state.clients["b"].last_seen_us = 20 * SECOND
    rules.expire_leases(state, 20 * SECOND)
    rules.balance(state)
    assert _view(state, "b") == {"c0": (OPEN, 3), "c1": (OPEN, 4)}


def test_stream_channels_wait_for_base_phase():
    state = _state(n=0, tunnel_type=BASE_AND_STREAM)
    state.channels["BaseData_p0"] = ChannelRecord("t1", "BaseData_p0", BASE, "p0", (), None, None, WAIT, 0, None,
                                                  "tok", 0, 0, False)
    state.channels["p0"] = ChannelRecord("t1", "p0", STREAM, "p0", (), None, None, WAIT, 0, None, "tok", 0, 0, False)
    _connect(state, "a")
    rules.balance(state)
    assert _view(state, "a") == {"BaseData_p0": (OPEN, 1)}
    assert rules.display_status(state, state.channels["p0"]) == WAIT
    rules.merge_reports(state, "a", [("BaseData_p0", 2, N_TERMINATED)])
    assert rules.base_phase_done(state)
    rules.balance(state)
    assert _view(state, "a") == {"p0": (OPEN, 1)}


def test_children_wait_for_all_parents():
    state = _state(n=3, parents={"c2": ("c0", "c1")})
    _connect(state, "a")
    rules.balance(state)
    assert set(_view(state, "a")) == {"c0", "c1"}
    rules.merge_reports(state, "a", [("c0", 2, N_TERMINATED)])
    rules.balance(state)
    assert "c2" not in _view(state, "a")
    assert rules.display_status(state, state.channels["c2"]) == WAIT
    rules.merge_reports(state, "a", [("c1", 2, N_TERMINATED)])
    rules.balance(state)
    assert _view(state, "a") == {"c2": (OPEN, 1)}


def test_missing_parent_counts_as_finished():
    state = _state(n=1, parents={"c0": ("gone",)})
    _connect(state, "a")
    rules.balance(state)
    assert _view(state, "a") == {"c0": (OPEN, 1)}


def test_schedule_suspend_resume_terminate():
    state = _state(n=2)
    _connect(state, "a")
    rules.balance(state)
    rules.schedule(state, [("c0", N_CLOSING)])
    assert _view(state, "a")["c0"] == (CLOSING, 2)
    rules.merge_reports(state, "a", [("c0", 3, N_CLOSE)])
    rules.balance(state)
    assert "c0" not in _view(state, "a")
    assert rules.display_status(state, state.channels["c0"]) == CLOSE
    rules.schedule(state, [("c0", N_OPEN)])
    rules.balance(state)
    assert _view(state, "a")["c0"] == (OPEN, 4)
    rules.schedule(state, [("c1", N_TERMINATED)])
    assert _view(state, "a")["c1"] == (TERMINATED, 2)
    rules.merge_reports(state, "a", [("c1", 2, N_TERMINATED)])
    assert "c1" not in _view(state, "a")


@pytest.mark.parametrize(
    "request_, message",
    [([("zz", N_OPEN)], "does not exist"), ([("c0", N_CLOSE)], "OPEN, CLOSING or TERMINATED")],
)
def test_schedule_rejects_bad_requests(request_, message):
    state = _state(n=1)
    with pytest.raises(ParameterInvalidError, match=message):
        rules.schedule(state, request_)


def test_schedule_cannot_reopen_terminated():
    state = _state(n=1)
    rules.schedule(state, [("c0", N_TERMINATED)])
    with pytest.raises(ParameterInvalidError, match="TERMINATED and cannot be OPEN"):
        rules.schedule(state, [("c0", N_OPEN)])


# ---- property: random clients following the SDK rules --------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_STATUS_NUMBER = {OPEN: N_OPEN, CLOSING: N_CLOSING, CLOSE: N_CLOSE, TERMINATED: N_TERMINATED}
_NUMBER_STATUS = {v: k for k, v in _STATUS_NUMBER.items()}
_TIMEOUT_S = 10


class _SimClient:
    """A client's local channel table, merged as the SDKs do (§4.2)."""

    def __init__(self, client_id):
        self.client_id = client_id
        self.local = {}  # channel id -> [version, status number]

    def reports(self):
        return [(cid, v, s) for cid, (v, s) in sorted(self.local.items())]

    def merge(self, answer):
        merged = {}
        for channel in answer:
            local = self.local.get(channel.channel_id)
            if local and local[0] > channel.version:
                merged[channel.channel_id] = local
            else:
                merged[channel.channel_id] = [channel.version, _STATUS_NUMBER[channel.status]]
        self.local = merged
        for cid, (version, status) in self.local.items():
            if status == N_CLOSING:
                self.local[cid] = [version + 1, N_CLOSE]


_OPS = st.lists(
    st.tuples(st.sampled_from(["connect", "heartbeat", "silence", "finish", "fail", "shutdown"]),
              st.integers(0, 5), st.integers(0, 5)),
    min_size=1, max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(n_channels=st.integers(1, 6), ops=_OPS)
def test_random_clients_never_share_a_channel_and_end_balanced(n_channels, ops):
    state = _state(n=n_channels, parents={"c5": ("c0",)} if n_channels == 6 else None)
    clients = []
    now = 0
    for op, who, which in ops:
        before = {c.channel_id: (c.owner, c.status, c.version) for c in state.channels.values()}
        live = [c for c in clients if state.clients[c.client_id].alive]
        released_by, let_go = set(), set()
        if op == "connect" or not live:
            client = _SimClient(f"k{len(clients)}")
            _connect(state, client.client_id, at_us=now, timeout_s=_TIMEOUT_S)
            clients.append(client)
            continue
        client = live[who % len(live)]
        mine = sorted(cid for cid, (_, s) in client.local.items() if s == N_OPEN)
        if op == "silence":
            # Time passes; everyone but this client keeps heartbeating.
            now += (_TIMEOUT_S + 1) * SECOND
            for other in live:
                if other is not client:
                    state.clients[other.client_id].last_seen_us = now
            released_by = set(rules.expire_leases(state, now))
            assert released_by == {client.client_id}
        elif op == "shutdown":
            rules.end_lease(state, client.client_id, now, "shutdown")
            released_by = {client.client_id}
        else:
            if op in ("finish", "fail") and mine:
                cid = mine[which % len(mine)]
                version = client.local[cid][0]
                client.local[cid] = [version + 1, N_TERMINATED if op == "finish" else N_CLOSE]
            reports = client.reports()
            rules.merge_reports(state, client.client_id, reports)
            state.clients[client.client_id].last_seen_us = now
            rules.balance(state)
            client.merge(rules.assigned_to(state, client.client_id))
            released_by = {client.client_id}
            # Channels this report let go of may move in the same step.
            let_go = {cid for cid, v, s in reports if s in (N_CLOSE, N_TERMINATED)}
        for channel in state.channels.values():
            owner, status, version = before[channel.channel_id]
            assert channel.version >= version
            if (channel.status, channel.owner) != (status, owner):
                assert channel.version > version or channel.owner is None, (channel, before[channel.channel_id])
            if owner is not None and channel.owner != owner:
                # The old owner let go: it reported CLOSE/TERMINATED or its lease ended.
                assert owner in released_by
                if op not in ("silence", "shutdown"):
                    assert channel.channel_id in let_go
            if channel.owner is not None:
                assert state.clients[channel.owner].alive
                assert not rules.is_blocked(state, channel)
    # Let every live client settle: two rounds of heartbeats.
    live = [c for c in clients if state.clients[c.client_id].alive]
    for _ in range(3):
        for client in live:
            rules.merge_reports(state, client.client_id, client.reports())
            rules.balance(state)
            client.merge(rules.assigned_to(state, client.client_id))
    if live:
        loads = [sum(1 for c in state.channels.values() if c.owner == cl.client_id and c.status == OPEN)
                 for cl in live]
        assignable = [c for c in state.channels.values()
                      if c.status != TERMINATED and not rules.is_blocked(state, c)]
        assert sum(loads) == len(assignable)
        assert max(loads) - min(loads) <= 1
