"""Collects the parts of multipart replies until the last one arrives."""

from os_ken.ofproto import ofproto_v1_3 as ofp


class MultipartCollector:
    def __init__(self):
        self._parts: dict[tuple[int, int], list] = {}

    def add(self, dpid: int, msg) -> list | None:
        """Returns the whole body when `msg` is the last part, else None."""
        key = (dpid, msg.xid)
        body = self._parts.setdefault(key, [])
        body.extend(msg.body)
        if msg.flags & ofp.OFPMPF_REPLY_MORE:
            return None
        return self._parts.pop(key)

    def forget(self, dpid: int) -> None:
        for key in [k for k in self._parts if k[0] == dpid]:
            del self._parts[key]
