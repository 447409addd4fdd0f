"""Loads the VSI type database from ``policies/*.yaml``: all files or nothing.

Any problem (unreadable file, bad UTF-8, bad YAML, bad profile, a type defined twice) raises
one PolicyError listing every problem found; no half-loaded database is ever returned, so a
failed reload leaves the running database as it was.
"""

from pathlib import Path

import yaml

from app.policy.database import VsiTypeDatabase
from app.policy.errors import PolicyError
from app.policy.profile import VsiTypeProfile
from app.policy.schema import parse_document

POLICY_SUFFIXES = (".yaml", ".yml")
EXAMPLE_SUFFIX = ".example.yaml"  # documentation, shipped next to the real files, never loaded


def policy_files(directory: str | Path) -> list[Path]:
    """The files ``load_policies`` reads, in name order: ``*.yaml`` and ``*.yml``, except
    ``*.example.yaml`` and hidden files (editor backups)."""
    root = Path(directory)
    if not root.is_dir():
        raise PolicyError("not a directory of policy files", file=str(directory))
    return sorted(
        path
        for path in root.iterdir()
        if path.suffix in POLICY_SUFFIXES
        and path.is_file()
        and not path.name.endswith(EXAMPLE_SUFFIX)
        and not path.name.startswith(".")
    )


def load_policies(directory: str | Path) -> VsiTypeDatabase:
    """The database of every policy file in ``directory`` (empty if it holds none)."""
    profiles: list[VsiTypeProfile] = []
    errors: list[PolicyError] = []
    for path in policy_files(directory):
        try:
            profiles.extend(load_file(path))
        except PolicyError as err:
            errors.append(err)
    try:
        database = VsiTypeDatabase(profiles)
    except PolicyError as err:
        errors.append(err)
    if errors:
        raise PolicyError.combine(errors)
    return database


def load_file(path: str | Path) -> tuple[VsiTypeProfile, ...]:
    """The profiles of one policy file, in file order."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise PolicyError(f"cannot read: {err.strerror}", file=str(path)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PolicyError(
            f"not UTF-8 text (byte {data[err.start]:#04x})",
            file=str(path),
            line=data[: err.start].count(b"\n") + 1,
        ) from None
    return load_text(text, str(path))


def load_text(text: str, file: str) -> tuple[VsiTypeProfile, ...]:
    """The profiles of policy YAML ``text``; ``file`` names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise PolicyError(
            f"not valid YAML: {err.problem or err.context}",
            file=file,
            line=mark.line + 1 if mark else None,
        ) from None
    except yaml.reader.ReaderError as err:
        raise PolicyError(
            f"not valid YAML: character {err.character!r} is not allowed",
            file=file,
            line=text[: err.position].count("\n") + 1,
        ) from None
    except RecursionError:
        raise PolicyError("not valid YAML: nested too deeply", file=file) from None
    return parse_document(root, file)
