"""``resmon simulate --snmp K``: which devices answer SNMP, what their agents hold, and the
options' one-line errors. (The agents themselves run in tests/integration/snmp.)"""

from __future__ import annotations

import pytest

from simulator.behaviour import BehaviourModel
from simulator.cli import main, parse_args
from simulator.snmp import SnmpUnavailable, find_responder, plan
from simulator.topology import ACCESS_POINT, FIREWALL, ROUTER, SERVER, SWITCH, generate

NETWORK_KIT = {ROUTER, FIREWALL, SWITCH, SERVER, ACCESS_POINT}


def test_network_kit_answers_first_with_its_own_address_and_name():
    devices = generate(40, seed=2)
    model = BehaviourModel(devices, 2)
    endpoints = plan(devices, model, 10, 1161)
    assert len(endpoints) == 10
    by_id = {d.id: d for d in devices}
    assert all(by_id[e.device_id].kind in NETWORK_KIT for e in endpoints)
    assert [e.device_id for e in endpoints] == sorted(e.device_id for e in endpoints)
    for endpoint in endpoints:
        device = by_id[endpoint.device_id]
        assert (endpoint.address, endpoint.community, endpoint.port) == (
            device.address,
            device.name,
            1161,
        )
        assert endpoint.describe() == {
            "version": "2c",
            "address": device.address,
            "port": 1161,
            "community": device.name,
        }
    # Asking for every device gives every device, phones included.
    assert len(plan(devices, model, 40, 1161)) == 40


def test_the_data_file_has_uptime_interfaces_counters_and_cpu_in_oid_order():
    devices = generate(8, seed=1)
    endpoints = plan(devices, BehaviourModel(devices, 1), 8, 1161)
    fourth = next(e for e in endpoints if e.device_id == 4)
    lines = fourth.snmprec().splitlines()
    oids = [tuple(int(part) for part in line.split("|")[0].split(".")) for line in lines]
    assert oids == sorted(oids)  # snmpsim answers GETNEXT in file order
    records = {line.split("|")[0]: line.split("|", 2)[1:] for line in lines}
    assert records["1.3.6.1.2.1.1.3.0"][0] == "67:numeric"  # sysUpTime, growing
    assert "rate=100" in records["1.3.6.1.2.1.1.3.0"][1]
    assert records["1.3.6.1.2.1.2.2.1.8.1"] == ["2", "1"]  # ifOperStatus up
    assert records["1.3.6.1.2.1.2.2.1.8.2"] == ["2", "2"]  # every fourth device: one down
    assert records["1.3.6.1.2.1.31.1.1.1.6.1"][0] == "70:numeric"  # ifHCInOctets
    assert f"rate={fourth.in_bytes_per_s}" in records["1.3.6.1.2.1.31.1.1.1.6.1"][1]
    assert "rate=0," in records["1.3.6.1.2.1.31.1.1.1.6.2"][1]  # a down interface is quiet
    assert "1.3.6.1.2.1.25.3.3.1.2.1" in records  # hrProcessorLoad


def test_a_missing_snmpsim_is_one_line(monkeypatch):
    monkeypatch.setenv("RESMON_SNMPSIM", "/nonexistent/snmpsim-command-responder")
    with pytest.raises(SnmpUnavailable) as caught:
        find_responder()
    message = str(caught.value)
    assert "\n" not in message
    assert "/nonexistent/snmpsim-command-responder" in message and "make snmpsim-deps" in message


def test_options_are_checked():
    config = parse_args(["-d", "5", "--snmp", "2", "--snmp-port", "2161"])
    assert (config.snmp_agents, config.snmp_port, config.snmpsim) == (2, 2161, None)
    assert parse_args([]).snmp_agents == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-d", "4", "--snmp", "5"], "--snmp must be a whole number from 0 to 4"),
        (["--snmp", "-1"], "--snmp must be a whole number from 0 to 16"),
        (["--snmp", "x"], "--snmp must be a whole number"),
        (["--snmp-port", "0"], "--snmp-port must be a whole number from 1 to 65535"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
