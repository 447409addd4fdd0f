"""The only place that puts OpenFlow messages on the wire."""
import logging

LOG = logging.getLogger("evb_nms.sender")


def send_all(datapath, msgs) -> None:
    for msg in msgs:
        msg.datapath = datapath  # logic builds messages without a datapath (see app/flows/ofmsg.py)
        datapath.send_msg(msg)
