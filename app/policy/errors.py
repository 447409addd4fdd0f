"""The one error type of the VSI type database, and the range check every profile class uses."""

from collections.abc import Sequence


class PolicyError(ValueError):
    """A profile is invalid. Names where: ``file``, ``line`` (1-based) and ``field``, e.g.
    ``vsi_types[0].ingress_acl[2].tp_dst``; any of them is None when unknown (a profile built in
    code has no file). One PolicyError can carry several problems: ``errors`` lists them all
    (a single problem lists itself), and ``file``/``line``/``field`` are those of the first.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.errors: tuple[PolicyError, ...] = (self,)
        super().__init__(self._located())

    def _located(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        if self.field:
            where += f"{self.field}: "
        return where + self.message

    def located(
        self, *, file: str | None = None, line: int | None = None, field_prefix: str = ""
    ) -> "PolicyError":
        """A copy with the location filled in where this error left it open; ``field_prefix`` is
        the path of the object that raised it (``vsi_types[0]``)."""
        field = ".".join(part for part in (field_prefix, self.field) if part) or None
        return PolicyError(
            self.message,
            file=self.file or file,
            line=self.line if self.line is not None else line,
            field=field,
        )

    @classmethod
    def combine(cls, errors: Sequence["PolicyError"]) -> "PolicyError":
        """One error reporting every problem in ``errors`` (each may itself be combined)."""
        flat = [single for error in errors for single in error.errors]
        if len(flat) == 1:
            return flat[0]
        first = flat[0]
        combined = cls(f"{len(flat)} problems", file=first.file, line=first.line, field=first.field)
        combined.errors = tuple(flat)
        combined.args = ("\n".join(str(single) for single in flat),)
        return combined


def check_range(field: str, value, low: int, high: int, what: str) -> None:
    """Raises a PolicyError naming ``field`` unless ``value`` is an integer in low..high."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"expected {what} {low}-{high}, got {value!r}", field=field)
