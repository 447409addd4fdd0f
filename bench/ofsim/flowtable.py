"""The flows and meters of one simulated switch, changed by flow-mods and meter-mods as an
OpenFlow 1.3 switch changes them.

A flow is keyed by (table_id, priority, raw OXM bytes of its match), packed into one bytes
object; its value is the cookie (8 octets) followed by the raw instructions, so a flow-stats
reply is built from the two without re-encoding. evb-nms (os-ken) writes every match with its
OXM fields in one canonical order, so equal matches are equal bytes.

Non-strict modify/delete/stats with a non-empty match select the flows whose match contains
every OXM field of the request (the same TLV bytes): exact for the requests a controller sends
in practice (an empty match, or fields of the flows it installed), an approximation of full
wildcard containment otherwise.
"""

import struct

from bench.ofsim import ofwire as w

_KEY = struct.Struct("!BH")
_COOKIE = struct.Struct("!Q")
_ALL_ONES = 0xFFFFFFFFFFFFFFFF


class FlowTable:
    __slots__ = ("flows", "_stats_entries", "meters", "flow_mods", "meter_mods")

    def __init__(self) -> None:
        self.flows: dict[bytes, bytes] = {}
        # key -> (the flow's value, its flow stats entry): a switch's VM statistics are polled
        # again and again with few flows changed, and packing each entry each time made the
        # generator stall for tens of ms a poll, on the cores the controller uses.
        self._stats_entries: dict[bytes, tuple[bytes, bytes]] = {}
        self.meters: dict[int, tuple[int, bytes]] = {}  # meter_id -> (flags, raw bands)
        self.flow_mods = 0
        self.meter_mods = 0

    # flow-mod -------------------------------------------------------------------------------
    @staticmethod
    def well_formed(msg: bytes, off: int, end: int) -> bool:
        """Whether msg[off:end] is a flow-mod this table can apply (checked before a bundle
        commits, so that it applies all or nothing)."""
        if end - off < 56 or msg[off + 1] != w.FLOW_MOD or msg[off + 25] > w.FC_DELETE_STRICT:
            return False
        mlen = w.U16.unpack_from(msg, off + 50)[0]
        return mlen >= 4 and off + 48 + w.padded(mlen) <= end

    def flow_mod(self, msg: bytes, off: int, end: int) -> bool:
        """Applies the flow-mod msg[off:end]; False if it is malformed."""
        if not self.well_formed(msg, off, end):
            return False
        (
            cookie,
            cookie_mask,
            table_id,
            command,
            _idle,
            _hard,
            priority,
            _buffer,
            out_port,
            out_group,
            _flags,
        ) = w.FLOW_MOD_BODY.unpack_from(msg, off + 8)
        mlen = w.U16.unpack_from(msg, off + 50)[0]
        instr_at = off + 48 + w.padded(mlen)
        oxm = msg[off + 52 : off + 48 + mlen]
        self.flow_mods += 1
        flows = self.flows
        if command == w.FC_ADD:
            # An ADD of an existing flow replaces its cookie and instructions.
            flows[_KEY.pack(table_id, priority) + oxm] = _COOKIE.pack(cookie) + msg[instr_at:end]
            return True
        strict = command in (w.FC_MODIFY_STRICT, w.FC_DELETE_STRICT)
        if command in (w.FC_MODIFY, w.FC_MODIFY_STRICT):
            out_port = w.OFPP_ANY  # ignored by modify (OpenFlow 1.3, 6.4)
        keys = self.select(
            table_id, cookie, cookie_mask, oxm, priority if strict else None, out_port
        )
        if command >= w.FC_DELETE:
            for key in keys:
                del flows[key]
        else:
            instr = msg[instr_at:end]
            for key in keys:  # modify keeps the cookie (OpenFlow 1.3, 6.4)
                flows[key] = flows[key][:8] + instr
        return True

    def select(
        self,
        table_id: int,
        cookie: int,
        cookie_mask: int,
        oxm: bytes,
        priority: int | None = None,
        out_port: int = w.OFPP_ANY,
    ) -> list[bytes]:
        """Keys of the flows a request selects: table (OFPTT_ALL: any), cookie under the mask,
        the match (strict when `priority` is given), and an output to `out_port` unless ANY."""
        flows = self.flows
        if priority is not None:
            tables = range(256) if table_id == w.OFPTT_ALL else (table_id,)
            keys = [k for k in (_KEY.pack(t, priority) + oxm for t in tables) if k in flows]
        else:
            keys = flows if table_id == w.OFPTT_ALL else [k for k in flows if k[0] == table_id]
            if oxm:
                wanted = w.oxm_fields(oxm)
                keys = [k for k in keys if wanted <= w.oxm_fields(k[3:])]
        if cookie_mask:
            want = cookie & cookie_mask
            if cookie_mask == _ALL_ONES:
                prefix = _COOKIE.pack(cookie)
                keys = [k for k in keys if flows[k].startswith(prefix)]
            elif cookie_mask == 0xFF << 56:
                top = cookie >> 56
                keys = [k for k in keys if flows[k][0] == top]
            else:
                keys = [
                    k for k in keys if int.from_bytes(flows[k][:8], "big") & cookie_mask == want
                ]
        if out_port != w.OFPP_ANY:
            keys = [k for k in keys if out_port in w.instruction_outputs(flows[k], 8)]
        return list(keys)

    # meter-mod ------------------------------------------------------------------------------
    def meter_mod(self, msg: bytes, off: int, end: int) -> bool:
        if end - off < 16:
            return False
        command, flags, meter_id = w.METER_MOD_BODY.unpack_from(msg, off + 8)
        self.meter_mods += 1
        if command in (w.MC_ADD, w.MC_MODIFY):
            self.meters[meter_id] = (flags, msg[off + 16 : end])
            return True
        if command != w.MC_DELETE:
            return False
        gone = list(self.meters) if meter_id == w.OFPM_ALL else [meter_id]
        for mid in gone:
            if self.meters.pop(mid, None) is not None:
                self._drop_flows_of_meter(mid)
        return True

    def _drop_flows_of_meter(self, meter_id: int) -> None:
        """Deleting a meter deletes the flows that use it (OpenFlow 1.3, 5.7)."""
        needle = struct.pack("!HHI", w.IT_METER, 8, meter_id)
        flows = self.flows
        for key in [k for k, v in flows.items() if needle in v]:
            if w.instruction_meter(flows[key], 8) == meter_id:
                del flows[key]

    # replies --------------------------------------------------------------------------------
    def flow_stats(self, keys) -> list[bytes]:
        """ofp_flow_stats entries of the flows `keys` (counters zero)."""
        flows, cache = self.flows, self._stats_entries
        if len(cache) > 2 * len(flows) + 1024:  # entries of flows gone since
            cache.clear()
        entries = []
        pack = w.FLOW_STATS_ENTRY.pack
        for key in keys:
            value = flows[key]
            cached = cache.get(key)
            if cached is not None and cached[0] is value:
                entries.append(cached[1])
                continue
            oxm = key[3:]
            mlen = 4 + len(oxm)
            match = w.U16.pack(1) + w.U16.pack(mlen) + oxm + bytes(w.padded(mlen) - mlen)
            length = 48 + len(match) + len(value) - 8
            priority = (key[1] << 8) | key[2]
            entry = (
                pack(length, key[0], 0, 0, priority, 0, 0, 0)
                + value[:8]
                + bytes(16)
                + match
                + value[8:]
            )
            cache[key] = (value, entry)
            entries.append(entry)
        return entries

    def meter_configs(self, meter_id: int) -> list[bytes]:
        ids = (
            sorted(self.meters)
            if meter_id == w.OFPM_ALL
            else [meter_id]
            if meter_id in self.meters
            else []
        )
        return [
            struct.pack("!HHI", 8 + len(self.meters[m][1]), self.meters[m][0], m)
            + self.meters[m][1]
            for m in ids
        ]

    # views ----------------------------------------------------------------------------------
    def digest(self) -> int:
        """A hash of the whole table and the meters: equal before and after means unchanged."""
        return hash((frozenset(self.flows.items()), frozenset(self.meters.items())))

    def match_fields(self):
        """(table_id, priority, set of OXM TLVs, cookie) of every flow, for end-of-run checks."""
        for key, value in self.flows.items():
            yield (
                key[0],
                (key[1] << 8) | key[2],
                w.oxm_fields(key[3:]),
                int.from_bytes(value[:8], "big"),
            )
