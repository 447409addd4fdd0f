"""The only place that puts OpenFlow messages on the wire."""


def send_all(datapaths: dict, out) -> None:
    """Sends each (dpid, message) of `out` to its switch's datapath, in order."""
    for dpid, msg in out:
        datapath = datapaths[dpid]
        msg.datapath = datapath  # logic builds messages without a datapath (see app/flows/ofmsg.py)
        datapath.send_msg(msg)
