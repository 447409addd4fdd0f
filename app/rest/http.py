"""JSON in and out of the REST API, and its errors: every error is ``{"error", "field"}`` with
the HTTP status that says whose fault it is."""

import json
import re
from urllib.parse import urlencode

from webob import Request, Response

from app.registry.errors import InvalidInput

MAX_BODY = 1 << 20  # a group registration of thousands of VMs fits
# No field needs more: 64-bit IDs have 20 digits. Longer integers cost quadratic time to convert
# (Python refuses more than 4,300 digits with a ValueError).
MAX_DIGITS = 40
# C0 and C1 control characters and DEL: in a name or URL they forge log lines and confuse
# terminals; no field of the API needs them.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
SURROGATE = re.compile("[\ud800-\udfff]")
# A page of a long list (associations, VMs): by default and at most this many items; at most
# SCAN times as many are looked at for one page (filters, a tenant's visibility), so a page of
# a rare match may come back short, with the next page's link.
PAGE_DEFAULT, PAGE_MAX, SCAN = 100, 1000, 4


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def next_link(request: Request, last: str) -> str:
    """An RFC 8288 Link header value: the same query, from after `last`."""
    params = [(k, v) for k, v in request.GET.items() if k != "after"] + [("after", last)]
    return f'<{request.path}?{urlencode(params)}>; rel="next"'


def json_response(body, status: int = 200) -> Response:
    return Response(
        status=status,
        content_type="application/json",
        charset="utf-8",
        body=json.dumps(body, indent=1, default=str).encode() + b"\n",
    )


def error_response(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    response = json_response({"error": message, "field": field}, status)
    response.headers.update(headers or {})
    return response


def read_json(request: Request):
    """The request body as JSON. Duplicate keys and NaN/Infinity are refused: both would let
    the client and the controller read different values into the same document."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"request body larger than {MAX_BODY} bytes", "body")
    raw = request.body_file.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"request body larger than {MAX_BODY} bytes", "body")
    if not raw.strip():
        raise InvalidInput("expected a JSON body", "body")
    try:
        document = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
        )
        _check_strings(document, "")
    except UnicodeDecodeError:
        raise InvalidInput("the body is not UTF-8 text", "body") from None
    except json.JSONDecodeError as err:
        raise InvalidInput(
            f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}", "body"
        ) from None
    except RecursionError:
        raise InvalidInput("JSON nested too deeply", "body") from None
    return document


def check_text(value: str, field: str) -> str:
    """``value`` unless it holds a control character or a lone surrogate (a JSON ``\\ud800``
    escape with no pair: no UTF-8 encoding exists for it, so storing it would fail)."""
    if SURROGATE.search(value):
        raise InvalidInput("a lone surrogate is not text", field or "body")
    bad = CONTROL.search(value)
    if bad:
        raise InvalidInput(f"control character {bad.group()!r} not allowed", field or "body")
    return value


def _check_strings(value, field: str) -> None:
    """Every key and string of a JSON document through check_text; ``field`` is the path."""
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{field}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, field)
            _check_strings(item, f"{field}.{key}" if field else key)


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise InvalidInput(f"a JSON integer of more than {MAX_DIGITS} digits", "body")
    return int(text)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInput(f"field {key!r} is given twice", key)
        result[key] = value
    return result


def _no_constant(name: str):
    raise InvalidInput(f"{name} is not a JSON number", "body")


class Query:
    """The query string of a request; parameters not in ``allowed`` are errors (a misspelt
    filter would otherwise silently match everything)."""

    def __init__(self, request: Request, allowed: tuple[str, ...] = ()) -> None:
        try:
            self._params = request.GET
        except UnicodeDecodeError:
            raise InvalidInput("the query string is not percent-encoded UTF-8", "query") from None
        for name, value in self._params.items():
            check_text(name, "query")
            check_text(value, name)
        for name in self._params:
            if name not in allowed:
                hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
                raise InvalidInput(f"unknown query parameter {name!r}{hint}", name)
        for name in allowed:
            if len(self._params.getall(name)) > 1:
                raise InvalidInput("query parameter given twice", name)

    def text(self, name: str) -> str | None:
        value = self._params.get(name)
        if value == "":
            raise InvalidInput("empty value", name)
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self._params.get(name)
        if value is None:
            return default
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            raise InvalidInput(f"expected an integer {low}-{high}, got {value!r}", name)
        return int(value)
