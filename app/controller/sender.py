"""The only place that puts OpenFlow messages on the wire."""

from itertools import groupby

from os_ken.ofproto import ofproto_v1_3_parser as parser


def send_all(datapaths: dict, out) -> None:
    """Sends each (dpid, message) of `out` to its switch's datapath, in order; a switch that
    has gone since is skipped (it is reconciled when it connects again). Consecutive messages
    to one switch (a flow batch and its barrier) go as one write: os-ken's send queue and the
    socket take one buffer instead of one per message."""
    for dpid, run in groupby(out, key=lambda pair: pair[0]):
        datapath = datapaths.get(dpid)
        if datapath is None:
            continue
        buffers = []
        for _, msg in run:
            msg.datapath = datapath  # logic builds messages without one (app/flows/ofmsg.py)
            if isinstance(msg, parser.ONFBundleAddMsg):  # its flow-mod is serialized inside it
                msg.message.datapath = datapath
            msg.serialize()
            buffers.append(msg.buf)
        datapath.send(b"".join(buffers))
