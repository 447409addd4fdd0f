"""One xid space for every OpenFlow message the controller sends, whatever its kind, so that a
reply or an error names exactly one message of ours (app/fabric_control.py routes them)."""

import itertools

# Ours start at 0xEB...: recognisable in a capture next to os-ken's own handshake and echo xids.
XID_BASE = 0xEB000000
# A reply is due within seconds; the space wraps only after 16 million messages.
XID_SPAN = 0x01000000


class Xids:
    def __init__(self) -> None:
        self._next = itertools.count()

    def take(self) -> int:
        """The next xid, for a message or as a bundle id (unique as long as an xid is)."""
        return XID_BASE + next(self._next) % XID_SPAN

    def stamp(self, msg):
        """Gives `msg` the next xid; returns it."""
        msg.xid = self.take()
        return msg
