"""A name, URL or reason carrying control characters cannot forge an event or log line."""

import logging
import sys

import pytest

from app.events import Event, EventLog
from app.logfmt import OneLineFormatter, quote_value

FORGED = "ok\nevent=switch.disconnected switch=edge1"


def test_a_value_with_a_newline_stays_on_its_line_and_quoted():
    line = Event("vm.registered", detail={"name": FORGED, "vms": 1}).as_line()
    assert line == 'event=vm.registered name="ok\\nevent=switch.disconnected switch=edge1" vms=1'
    assert "\n" not in line


@pytest.mark.parametrize(
    "value, shown",
    [
        ("edge1", "edge1"),
        (3, "3"),
        ("", '""'),
        ("a b", '"a b"'),
        ("k=v", '"k=v"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("\r\x00\x85\u2028", '"\\r\\x00\\x85\\u2028"'),
        ("caf\u00e9", "caf\u00e9"),
    ],
)
def test_values_are_bare_only_when_they_are_one_printable_word(value, shown):
    assert quote_value(value) == shown


def test_switch_and_port_names_are_quoted_too():
    line = Event("port.down", switch="edge1", port="p 1\nevent=x").as_line()
    assert line == 'event=port.down switch=edge1 port="p 1\\nevent=x"'


def test_the_event_log_writes_one_line_per_event(caplog):
    caplog.set_level(logging.INFO, "evb_nms.events")
    EventLog().emit("vm.registered", name=FORGED)
    (record,) = caplog.records
    assert record.getMessage().count("event=") == 2 and "\n" not in record.getMessage()


def test_the_log_formatter_escapes_what_any_message_carries():
    formatter = OneLineFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.WARNING, "f", 1, "bad name %s", (FORGED,), None)
    assert formatter.format(record) == (
        "WARNING bad name ok\\nevent=switch.disconnected switch=edge1"
    )
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed", (), sys.exc_info())
    assert formatter.format(record).startswith("ERROR failed\nTraceback")
