"""`evb-vcenter`: a small reference VM manager ("vCenter") for the demo and the tests.

It holds VSI type profiles (a policy file, the format of policies/*.yaml) and VM registrations
(draft-fw-nvo3-server2vcenter 5.1/5.2: PUT/DELETE /v1/vms/{vsi_id}), answers the controller's
lookups, stores the controller's webhook notifications (GET /v1/notifications reads them back),
and can push its profiles to the controller (``evb-vcenter push``). Resources: docs/vcenter.md.

    evb-vcenter --listen 127.0.0.1:8090 --profiles policies/default.yaml [--delay 3]
    evb-vcenter push --profiles policies/default.yaml --controller-url http://127.0.0.1:8080 \
        --token TOKEN

In memory only: a restart forgets VMs and notifications. Ctrl-C or SIGTERM stop it.

With ``--token-file`` every request but the notifications and the health check must carry
``Authorization: Bearer TOKEN`` (the controller's ``vcenter_token_file``); with
``--notification-secret-file`` a notification must be signed with that secret (the
controller's ``vcenter_secret_file``, app/vcenter/signing.py). Otherwise 401.
"""

import argparse
import dataclasses
import hmac
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from webob import Request, Response

from app.policy.database import VsiTypeDatabase
from app.policy.errors import PolicyError
from app.policy.loader import load_file
from app.policy.profile import VsiTypeKey, VsiTypeProfile
from app.registry.documents import profile_document
from app.registry.errors import InvalidInput, RegistryError
from app.registry.vms import VmRecord, parse_vm, parse_vsi_id
from app.rest.server import RestServer
from app.vcenter.credentials import Credential, CredentialError
from app.vcenter.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from app.vcenter.transport import TransportError, error_text, exchange, parse_json

DEFAULT_LISTEN = "127.0.0.1:8090"
DEFAULT_CONTROLLER = "http://127.0.0.1:8080"
PUSH_TIMEOUT = 5.0
NOTIFICATIONS_KEPT = 10000


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(body: Any, status: int = 200) -> Response:
    return Response(json_body=body, status=status, charset="utf-8")


class ReferenceManager:
    """The service as a WSGI application; thread-safe. ``delay``: seconds every request waits
    before it is answered (a slow manager). ``token``: the bearer token required of every
    request but notifications and health; ``secret``: what notifications must be signed
    with."""

    def __init__(
        self,
        profiles: Iterable[VsiTypeProfile] = (),
        delay: float = 0.0,
        *,
        token: str | None = None,
        secret: str | None = None,
    ) -> None:
        self.profiles = VsiTypeDatabase(profiles)
        self.delay = delay
        self._token = token
        self._secret = secret
        self._vms: dict[str, VmRecord] = {}
        self._notifications: deque[dict[str, Any]] = deque(maxlen=NOTIFICATIONS_KEPT)
        self._lock = threading.Lock()
        self._routes = [
            ("GET", re.compile(r"/v1/health"), self._health),
            ("GET", re.compile(r"/v1/vsi-types"), self._list_types),
            ("GET", re.compile(r"/v1/vsi-types/(\d+)/(\d+)"), self._get_type),
            ("GET", re.compile(r"/v1/vms"), self._list_vms),
            ("GET", re.compile(r"/v1/vms/([^/]+)"), self._get_vm),
            ("PUT", re.compile(r"/v1/vms/([^/]+)"), self._put_vm),
            ("DELETE", re.compile(r"/v1/vms/([^/]+)"), self._delete_vm),
            ("GET", re.compile(r"/v1/notifications"), self._list_notifications),
            ("POST", re.compile(r"/v1/notifications"), self._post_notification),
        ]

    def __call__(self, environ, start_response):
        request = Request(environ)
        if self.delay:
            time.sleep(self.delay)
        path = request.path_info.rstrip("/")
        allowed = []
        try:
            self._check_token(request, path)
            for method, pattern, handler in self._routes:
                match = pattern.fullmatch(path)
                if match and method == request.method:
                    response = handler(request, *match.groups())
                    break
                if match:
                    allowed.append(method)
            else:
                if allowed:
                    raise _HttpError(
                        405,
                        f"{request.method} not allowed on {request.path_info}"
                        f" (allowed: {', '.join(allowed)})",
                    )
                raise _HttpError(404, f"no resource at {request.path_info}")
        except _HttpError as err:
            response = _json({"error": str(err)}, err.status)
        return response(environ, start_response)

    def _check_token(self, request: Request, path: str) -> None:
        # Notifications prove themselves by their signature; health is for probes.
        open_to_all = path == "/v1/health" or (
            path == "/v1/notifications" and request.method == "POST"
        )
        if not self._token or open_to_all:
            return
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
            raise _HttpError(401, "expected Authorization: Bearer TOKEN")

    def _health(self, request: Request) -> Response:
        with self._lock:
            return _json(
                {
                    "status": "ok",
                    "profiles": len(self.profiles),
                    "vms": len(self._vms),
                    "notifications": len(self._notifications),
                }
            )

    def _list_types(self, request: Request) -> Response:
        return _json([profile_document(profile) for profile in self.profiles])

    def _get_type(self, request: Request, type_id: str, version: str) -> Response:
        """``?manager=`` is accepted and ignored: this manager answers every Manager ID the
        same, and the controller checks the profile's manager_ids itself."""
        try:
            profile = self.profiles.get(int(type_id), int(version))
        except PolicyError as err:
            raise _HttpError(400, str(err)) from None
        if profile is None:
            raise _HttpError(404, f"no VSI type {type_id} version {version}")
        return _json(profile_document(profile))

    def _list_vms(self, request: Request) -> Response:
        with self._lock:
            return _json([vm.document() for vm in self._vms.values()])

    def _get_vm(self, request: Request, vsi_id: str) -> Response:
        with self._lock:
            vm = self._vms.get(_vsi_id(vsi_id))
        if vm is None:
            raise _HttpError(404, f"no VM with VSI ID {vsi_id}")
        return _json(vm.document())

    def _put_vm(self, request: Request, vsi_id: str) -> Response:
        """Draft 5.1: creates the VM's registration, or updates it. The body is the controller's
        VM registration (docs/openapi.yaml, Vm), checked by the same parser."""
        try:
            vm = parse_vm(_body(request), "", self._tenant_of, vsi_id=_vsi_id(vsi_id))
        except RegistryError as err:
            raise _HttpError(400, str(err)) from None
        now = time.time()
        with self._lock:
            known = self._vms.get(vm.vsi_id)
            vm = dataclasses.replace(vm, registered=known.registered if known else now, updated=now)
            self._vms[vm.vsi_id] = vm
        return _json(vm.document(), 200 if known else 201)

    def _tenant_of(self, key: VsiTypeKey) -> str | None:
        profile = self.profiles.get(key.type_id, key.version)
        return profile.tenant if profile else None

    def _delete_vm(self, request: Request, vsi_id: str) -> Response:
        """Draft 5.2: an unknown VM is reported (404), not ignored."""
        with self._lock:
            vm = self._vms.pop(_vsi_id(vsi_id), None)
        if vm is None:
            raise _HttpError(404, f"no VM with VSI ID {vsi_id} is registered")
        return Response(status=204)

    def _list_notifications(self, request: Request) -> Response:
        kind = request.GET.get("kind")
        with self._lock:
            return _json([n for n in self._notifications if kind is None or n.get("kind") == kind])

    def _post_notification(self, request: Request) -> Response:
        if self._secret is not None:
            headers = {
                name: request.headers.get(name, "") for name in (TIMESTAMP_HEADER, SIGNATURE_HEADER)
            }
            if not verify(self._secret, headers, request.body, time.time()):
                raise _HttpError(401, f"missing, wrong or stale signature ({SIGNATURE_HEADER})")
        data = _body(request)
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise _HttpError(400, "expected a JSON object with a kind")
        with self._lock:
            self._notifications.append({**data, "received": time.time()})
        return Response(status=204)


def _vsi_id(text: str) -> str:
    try:
        return parse_vsi_id(text)
    except InvalidInput as err:
        raise _HttpError(400, str(err)) from None


def _body(request: Request) -> Any:
    try:
        return parse_json(request.body)
    except ValueError as err:
        raise _HttpError(400, f"bad JSON: {err}") from None


def push(
    profiles: Iterable[VsiTypeProfile],
    controller_url: str,
    token: str | None = None,
    timeout: float = PUSH_TIMEOUT,
) -> list[tuple[VsiTypeProfile, str | None]]:
    """PUTs each profile, in the JSON shape of a policy file entry, to the controller's
    ``/v1/profiles/{type_id}/{version}`` (with ``Authorization: Bearer TOKEN`` when given).
    Returns (profile, None) for each one accepted (HTTP 2xx), (profile, problem) otherwise."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    results = []
    for profile in profiles:
        url = (
            f"{controller_url.rstrip('/')}/v1/profiles/{profile.key.type_id}/{profile.key.version}"
        )
        try:
            answer = exchange(
                "PUT", url, body=profile_document(profile), headers=headers, timeout=timeout
            )
        except TransportError as err:
            problem = f"{url}: {err}"
        else:
            problem = (
                None
                if 200 <= answer.status < 300
                else f"{url}: HTTP {answer.status}{error_text(answer.body)}"
            )
        results.append((profile, problem))
    return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="evb-vcenter",
        description="Reference VM manager (vCenter) for evb-nms: serves VSI type profiles and "
        "VM registrations to the controller and stores its notifications (serve, "
        "the default), or pushes the profiles to the controller (push).",
    )
    parser.add_argument("command", nargs="?", choices=("serve", "push"), default="serve")
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"serve: listen address (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--profiles",
        metavar="FILE.yaml",
        help="VSI type profiles, in the format of policies/*.yaml (serve: "
        "optional, default none; push: required)",
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="serve: wait this long before every answer (a slow manager)",
    )
    parser.add_argument(
        "--controller-url",
        default=DEFAULT_CONTROLLER,
        metavar="URL",
        help=f"push: the controller's REST API (default {DEFAULT_CONTROLLER})",
    )
    parser.add_argument("--token", help="push: the controller's API token")
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="serve: require Authorization: Bearer <the file's content> of every request but "
        "notifications (the controller's --vcenter-token-file)",
    )
    parser.add_argument(
        "--notification-secret-file",
        metavar="FILE",
        help="serve: accept only notifications signed with the file's content (the "
        "controller's --vcenter-secret-file)",
    )
    return parser.parse_args(argv)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 a profile was not accepted by the controller, 2 bad arguments,
    profiles file or listen address."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        profiles = VsiTypeDatabase(load_file(args.profiles)) if args.profiles else VsiTypeDatabase()
    except PolicyError as err:
        print(f"evb-vcenter: {err}", file=sys.stderr)
        return 2
    if args.command == "push":
        if not args.profiles:
            print("evb-vcenter: push needs --profiles FILE.yaml", file=sys.stderr)
            return 2
        try:
            results = push(profiles, args.controller_url, args.token)
        except ValueError as err:  # not an http(s) URL
            print(f"evb-vcenter: --controller-url: {err}", file=sys.stderr)
            return 2
        for profile, problem in results:
            print(f"{profile.key} ({profile.name}): {problem or 'pushed'}")
        return 1 if any(problem for _, problem in results) else 0
    return _serve(args, profiles)


def _serve(args: argparse.Namespace, profiles: VsiTypeDatabase) -> int:
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit() or args.delay < 0:
        print(
            f"evb-vcenter: expected --listen HOST:PORT and --delay >= 0, got "
            f"{args.listen!r} and {args.delay}",
            file=sys.stderr,
        )
        return 2
    try:
        token = Credential(args.token_file or "").get()
        secret = Credential(args.notification_secret_file or "").get()
    except CredentialError as err:
        print(f"evb-vcenter: {err}", file=sys.stderr)
        return 2
    manager = ReferenceManager(profiles, args.delay, token=token, secret=secret)
    try:
        server = RestServer(host.strip("[]"), int(port), manager)
    except OSError as err:
        print(f"evb-vcenter: cannot listen on {args.listen}: {err.strerror}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    server.start()
    print(f"evb-vcenter: {len(profiles)} VSI types on http://{host}:{server.port}/v1", flush=True)
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
