"""Why the registry refused a change. Each error names the field of the request it concerns
(``profiles[1].vlans``, ``macs[0]``); the REST layer turns the class into an HTTP status."""


class RegistryError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field or None
        super().__init__(f"{field}: {message}" if field else message)

    def under(self, prefix: str) -> "RegistryError":
        """The same error with its field placed under ``prefix`` (``vms[2]``)."""
        field = ".".join(part for part in (prefix, self.field) if part)
        return type(self)(self.message, field)


class InvalidInput(RegistryError):
    """The request itself is wrong: type, range, unknown field, contradicting rules."""


class NotFound(RegistryError):
    pass


class Conflict(RegistryError):
    """The request is well-formed but contradicts what the registry holds."""


class Forbidden(RegistryError):
    """A tenant asked for another tenant's profile or VM."""


def join(prefix: str, field: str) -> str:
    return ".".join(part for part in (prefix, field) if part)
