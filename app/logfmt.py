"""Log lines that a logged value cannot forge: one event or message is one line, whatever names,
URLs or reasons it carries (they come from tenants, stations, switches and VM managers)."""

import logging

_ESCAPES = {'"': '\\"', "\\": "\\\\"}


def escaped(text: str) -> str:
    """``text`` with every non-printable character (newlines, other control characters, lone
    surrogates) written as its Python escape, ``\\n``, ``\\x85``, ``\\u2028``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def quote_value(value) -> str:
    """A ``key=value`` value: bare when it is one printable word without ``"``, ``=`` or
    ``\\``, else double-quoted with those escaped, so no value can start another pair or line."""
    text = str(value)
    if text and text.isprintable() and not any(c in text for c in ' "=\\'):
        return text
    return '"' + "".join(_ESCAPES.get(c) or escaped(c) for c in text) + '"'


class OneLineFormatter(logging.Formatter):
    """Escapes the message's non-printable characters; a traceback keeps its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escaped(record.message)
        return super().formatMessage(record)
