"""Pure, byte-exact codecs for the EVB protocols (IEEE 802.1Qbg-2012): Ethernet,
LLDP with the EVB and CDCP TLVs, ECP and VDP.  Standard library only, no I/O.

Each module has frozen dataclasses and ``decode_*(data) -> obj`` /
``encode_*(obj) -> bytes``; ``frame`` dispatches whole frames by EtherType and
``builders`` makes the frames the bridge sends.  Every malformed input or
invalid object raises ``errors.CodecError``.
"""
