"""EmulatorServer lifecycle, settings validation and the CLI front end."""

import os

import pytest

from beam_tunnel import cli
from beam_tunnel.emulator import EmulatorConfig, EmulatorServer, FaultSettings, ManualClock
from beam_tunnel.emulator.model.tables import PkColumn, ReadOptions, RowChange, PUT
from beam_tunnel.protocol.rows import INF_MAX, INF_MIN, Cell, Row


def test_temporary_data_dir_is_removed_and_a_given_one_is_kept(tmp_path):
    server = EmulatorServer().start()
    temp_dir = server.data_dir
    assert os.path.isdir(temp_dir) and server.endpoint.startswith("http://127.0.0.1:")
    server.stop()
    server.stop()  # idempotent
    assert not os.path.exists(temp_dir)
    with pytest.raises(RuntimeError, match="not running"):
        server.backend

    with EmulatorServer(data_dir=str(tmp_path / "d")) as kept:
        kept.backend.tables.create_table("t", [PkColumn("k", "INTEGER")])
    with EmulatorServer(data_dir=str(tmp_path / "d")) as reopened:
        assert reopened.backend.tables.list_tables() == ["t"]


def test_two_servers_are_independent():
    with EmulatorServer(instance_name="one") as first, EmulatorServer(instance_name="two") as second:
        first.backend.tables.create_table("t", [PkColumn("k", "INTEGER")])
        assert second.backend.tables.list_tables() == []
        assert first.port != second.port


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"instance_name": "1bad"}, "instance_name"),
        ({"access_keys": {}}, "access_keys"),
        ({"access_keys": {"id": ""}}, "secret"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"max_date_skew_s": -1}, "max_date_skew_s"),
        ({"clock": "now"}, "clock"),
    ],
)
def test_config_validation_names_the_setting(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        EmulatorConfig(**kwargs)


def test_fault_settings_validation():
    with pytest.raises(ValueError, match="error_rate"):
        FaultSettings(error_rate=1.5)
    with pytest.raises(ValueError, match="error_rate \\+ drop_rate"):
        FaultSettings(error_rate=0.6, drop_rate=0.6)
    with pytest.raises(ValueError, match="scope"):
        FaultSettings(scope="some")
    with pytest.raises(ValueError, match="port"):
        EmulatorServer(port=70000)


def test_cli_refuses_unpaired_access_keys(capsys):
    with pytest.raises(SystemExit, match="as many --access-key-secret"):
        cli.main(["emulator", "--access-key-id", "a", "--port", "0"])


def test_cli_without_a_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "emulator" in capsys.readouterr().out


def test_ttl_hides_expired_cells(tmp_path):
    clock = ManualClock(1_700_000_000_000_000)
    with EmulatorServer(data_dir=str(tmp_path), clock=clock) as server:
        tables = server.backend.tables
        tables.create_table("t", [PkColumn("k", "INTEGER")], time_to_live=86400)
        tables.write_row(RowChange(PUT, "t", Row((("k", 1),), (Cell("old", 1),))))
        clock.advance(86400 - 10)
        tables.write_row(RowChange(PUT, "t", Row((("k", 2),), (Cell("new", 2),))))
        assert tables.get_row("t", (("k", 1),)) != b""
        clock.advance(20)
        assert tables.get_row("t", (("k", 1),)) == b""
        assert tables.get_row("t", (("k", 2),), ReadOptions()) != b""
        records, _ = tables.scan("t", INF_MIN, INF_MAX, 10, 1 << 20)
        assert len(records) == 1
        assert tables.get_range("t", INF_MIN, INF_MAX).count == 1
