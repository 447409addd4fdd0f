"""Where the REST API's tokens come from, and their rotation without a restart.

Three sources, all in force together: ``api_tokens`` in the config file, ``api_tokens_file``
(the same list of ``{token, tenant}`` in a YAML file of its own, which other users must not be
able to read) and the environment variable EVB_NMS_API_TOKENS (``TENANT:TOKEN`` entries,
separated by spaces or commas; ``*`` is the admin tenant). SIGHUP re-reads both files; the
environment is fixed for the life of the process.
"""

import logging
import os
import re
import stat
from collections.abc import Callable, Mapping

import yaml

from app.config import ApiToken, ConfigError, Settings, check_tokens, parse_tokens

LOG = logging.getLogger("evb_nms.rest")
ENV = "EVB_NMS_API_TOKENS"


def tokens_from_env(environ: Mapping[str, str]) -> tuple[ApiToken, ...]:
    tokens = []
    for entry in re.split(r"[\s,]+", environ.get(ENV, "").strip()):
        if not entry:
            continue
        tenant, sep, token = entry.partition(":")
        if not sep:
            raise ConfigError(f"{ENV}: expected TENANT:TOKEN entries, got one without ':'")
        tokens.append(ApiToken(token=token, tenant=tenant))
    check_tokens(tokens, ENV)
    return tuple(tokens)


def tokens_from_file(path: str) -> tuple[ApiToken, ...]:
    """The tokens file: a YAML list of {token, tenant}; refused if other users may read it."""
    try:
        with open(path, encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if mode & (stat.S_IROTH | stat.S_IWOTH):
                raise ConfigError(
                    f"api_tokens_file: {path} is open to other users "
                    f"(mode {stat.S_IMODE(mode):04o}): chmod o-rw {path}"
                )
            document = yaml.safe_load(handle)
    except OSError as err:
        raise ConfigError(f"api_tokens_file: cannot read {path}: {err.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"api_tokens_file: {path} is not valid YAML") from None
    tokens = parse_tokens(path, document if document is not None else [])
    check_tokens(tokens, "api_tokens_file")
    return tokens


def gather_tokens(settings: Settings, environ: Mapping[str, str]) -> tuple[ApiToken, ...]:
    """Every token in force: the config file's, the tokens file's, the environment's."""
    tokens = settings.api_tokens + (
        tokens_from_file(settings.api_tokens_file) if settings.api_tokens_file else ()
    )
    tokens += tokens_from_env(environ)
    if len({t.token for t in tokens}) < len(tokens):
        raise ConfigError("api tokens: the same token is given twice (file, tokens file, env)")
    return tokens


class TokenSource:
    """The tokens in force now (call it); reload() reads them again through ``load``, which
    raises ConfigError to refuse them: then the tokens in force stay. The swap is one
    assignment, so request threads need no lock; reload() runs in the signal handler, where a
    lock could deadlock against a second SIGHUP."""

    def __init__(self, load: Callable[[], tuple[ApiToken, ...]]) -> None:
        self._load = load
        self._tokens = load()  # a ConfigError here refuses the start

    def __call__(self) -> tuple[ApiToken, ...]:
        return self._tokens

    def reload(self) -> bool:
        try:
            tokens = self._load()
        except Exception as err:  # raised in the signal handler, it would end the controller
            LOG.error("API tokens not reloaded, the %d in force stay: %s", len(self._tokens), err)
            return False
        self._tokens = tokens
        LOG.warning("API tokens reloaded: %d (%d admin)", len(tokens), sum(t.admin for t in tokens))
        return True
