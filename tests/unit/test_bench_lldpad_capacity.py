"""The pure helpers of bench/lldpad_capacity.py (the benchmark itself needs the real bed)."""

import pytest

pytest.importorskip("mininet")  # the bench module imports the data center

from bench.lldpad_capacity import rka_for, station_ecp, vsi_mac, vsi_uuid

# lldpad -V 7 lines as they appear in a station's log (two PDUs; the second was retransmitted).
LOG = """\
13:45:38.005304 ecp22_build_ecpdu:srv11-eth0 seqno 0x1 frame_len 0x47
13:45:38.005328 hexdump_frame:srv11-eth0 ecp-out
13:45:38.005400 ecp22_tx_start_acktimer:srv11-eth0 [0.163840]
13:45:38.012220 ecp22_rx_receiveframe:srv11-eth0 received ACK frame seqno 0x1
13:45:38.169557 ecp22_build_ecpdu:srv11-eth0 seqno 0x2 frame_len 0x47
13:45:38.169580 hexdump_frame:srv11-eth0 ecp-out
13:45:38.180001 ecp22_rx_receiveframe:srv11-eth0 received REQ frame seqno 0x11c9
13:45:38.180100 hexdump_frame:srv11-eth0 ecp-ack
13:45:38.333420 ecp22_ack_timeout_handler:srv11-eth0 retries:1
13:45:38.333500 hexdump_frame:srv11-eth0 ecp-out
13:45:38.369580 ecp22_rx_receiveframe:srv11-eth0 received ACK frame seqno 0x2
13:45:38.370000 ecp22_rx_receiveframe:srv11-eth0 received ACK frame seqno 0x2
"""


def test_station_ecp_counts_pdus_retransmissions_and_ack_delays():
    ecp = station_ecp(LOG)
    assert ecp["pdus"] == 2 and ecp["retransmitted"] == 1
    assert ecp["ack_ms"] == {"median": 103.4, "p95": 200.0, "max": 200.0}


def test_the_rka_leaves_half_of_the_station_ecp_free():
    assert rka_for(200) == 23  # the controller's default is enough: 39 % of the ECP
    assert rka_for(256) == 23  # exactly half
    assert rka_for(257) == 24
    assert rka_for(1000) == 25


def test_vsis_are_distinct_and_acceptable_to_lldpad():
    uuids = {vsi_uuid(n) for n in range(1, 70000)}
    macs = {vsi_mac(n) for n in range(1, 65536)}
    assert len(uuids) == 69999 and len(macs) == 65535
    # lldpad needs a non-zero byte among the UUID's first 8.
    assert all(u.replace("-", "")[:16].strip("0") for u in uuids)
