"""Typed access to the fields of a decoded JSON request body; errors name the field.

JSON keeps its types strictly: an integer is a JSON number without fraction (not a boolean, not
a string of digits), a text is a JSON string.
"""

import json
from collections.abc import Iterable

from app.registry.errors import InvalidInput, join

TEXT_MAX = 64  # names, tenants and groups, as VsiTypeProfile.name/tenant


def mapping(
    value,
    field: str,
    allowed: Iterable[str],
    required: Iterable[str] = (),
    ignored: Iterable[str] = (),
) -> dict:
    """The object's fields except the ``ignored`` ones (read-only fields a client may send back
    as it got them) and null ones (the same as left out); unknown and missing fields are
    errors."""
    if not isinstance(value, dict):
        raise InvalidInput(f"expected a JSON object, got {_kind(value)}", field)
    allowed, ignored = tuple(allowed), tuple(ignored)
    for key in value:
        if key not in allowed and key not in ignored:
            raise InvalidInput(
                f"unknown field {key!r}; allowed: {', '.join(allowed)}", join(field, key)
            )
    present = {key: item for key, item in value.items() if key in allowed and item is not None}
    for key in required:
        if key not in present:
            raise InvalidInput("required field is missing", join(field, key))
    return present


def text(value, field: str, max_length: int = TEXT_MAX) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidInput(
            f"expected a non-empty text of at most {max_length} characters, got {_kind(value)}",
            field,
        )
    return value


def integer(value, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"expected an integer {low}-{high}, got {_kind(value)}", field)
    return value


def boolean(value, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"expected true or false, got {_kind(value)}", field)
    return value


def array(value, field: str) -> list:
    if not isinstance(value, list):
        raise InvalidInput(f"expected a JSON array, got {_kind(value)}", field)
    return value


def _kind(value) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text_form = json.dumps(value, default=str)
    return text_form if len(text_form) <= 40 else text_form[:37] + "..."
