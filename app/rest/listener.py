"""The REST API's listener as the settings ask for it: its bounds, TLS, and the refusal to
serve an open API (no token) beyond loopback."""

import ipaddress
import logging
import ssl
from collections.abc import Sequence

from app.config import ApiToken, ConfigError, Settings
from app.rest.server import RestServer, ServerLimits

LOG = logging.getLogger("evb_nms.rest")


def check_exposure(settings: Settings, tokens: Sequence[ApiToken]) -> None:
    """Without a token every caller is an admin: fine on loopback, refused on any other
    address unless insecure_open_api says so."""
    host = settings.rest_address[0]
    if tokens or settings.insecure_open_api or _loopback(host):
        return
    raise ConfigError(
        f"rest_listen: {settings.rest_listen} is reachable from other hosts and no API token is "
        f"configured, so anyone there would be admin: configure api_tokens (or api_tokens_file, "
        f"EVB_NMS_API_TOKENS), listen on 127.0.0.1, or pass --insecure-open-api"
    )


def _loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or later), or None without rest_tls_cert."""
    if not settings.rest_tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.rest_tls_cert, settings.rest_tls_key)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"rest_tls_cert, rest_tls_key: cannot load: {err}") from None
    return context


def rest_server(settings: Settings, wsgi_app) -> RestServer:
    if not settings.rest_tls_cert and not _loopback(settings.rest_address[0]):
        LOG.warning(
            "REST API on %s without TLS: tokens and answers cross the network in clear text "
            "(rest_tls_cert, rest_tls_key)",
            settings.rest_listen,
        )
    return RestServer(
        *settings.rest_address,
        wsgi_app,
        tls=tls_context(settings),
        limits=ServerLimits(
            workers=settings.rest_workers,
            connections=settings.rest_max_connections,
            read_timeout=settings.rest_read_timeout,
            handler_timeout=settings.rest_handler_timeout,
        ),
    )
