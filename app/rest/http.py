"""JSON in and out of the REST API, and its errors: every error is ``{"error", "field"}`` with
the HTTP status that says whose fault it is."""

import json

from webob import Request, Response

from app.registry.errors import InvalidInput

MAX_BODY = 1 << 20  # a group registration of thousands of VMs fits


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
        return json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except UnicodeDecodeError:
        raise InvalidInput("the body is not UTF-8 text", "body") from None
    except json.JSONDecodeError as err:
        raise InvalidInput(
            f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}", "body"
        ) from None
    except RecursionError:
        raise InvalidInput("JSON nested too deeply", "body") from None


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
        self._params = request.GET
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
