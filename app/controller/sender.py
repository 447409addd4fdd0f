"""The only place that puts OpenFlow messages on the wire."""


def send_all(datapaths: dict, out) -> None:
    """Sends each (dpid, message) of `out` to its switch's datapath, in order; a switch that
    has gone since is skipped (it is reconciled when it connects again)."""
    for dpid, msg in out:
        datapath = datapaths.get(dpid)
        if datapath is None:
            continue
        msg.datapath = datapath  # logic builds messages without a datapath (see app/flows/ofmsg.py)
        datapath.send_msg(msg)
