"""The one error type every codec raises for malformed input or invalid objects."""


class CodecError(ValueError):
    """Malformed wire data, or an object that cannot be encoded.

    ``field`` names the offending field as ``<protocol>.<field>[.<part>]``,
    e.g. ``"vdp.filter.count"``; the message starts with it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
