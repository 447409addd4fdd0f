"""A credential given as a file or an environment variable, read at each use: an operator
rotates it by rewriting the file (or restarting with the new variable), and it never sits in a
command line or in the YAML settings that get logged."""

import os


class CredentialError(ValueError):
    """The credential is configured and cannot be read; the message says where and why."""


class Credential:
    def __init__(self, path: str = "", env: str = "") -> None:
        """``path`` wins over ``env``; neither given (or the variable unset): no credential."""
        self.path = path
        self.env = env

    def __repr__(self) -> str:  # never the value
        return f"Credential(path={self.path!r}, env={self.env!r})"

    def get(self) -> str | None:
        """The credential (surrounding white space removed), or None if none is configured.
        Raises CredentialError for a file that cannot be read or is empty."""
        if self.path:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    value = handle.read().strip()
            except (OSError, UnicodeDecodeError) as err:
                reason = getattr(err, "strerror", None) or str(err)
                raise CredentialError(f"{self.path}: cannot read: {reason}") from None
            if not value:
                raise CredentialError(f"{self.path}: is empty")
            return value
        value = os.environ.get(self.env, "").strip() if self.env else ""
        return value or None
