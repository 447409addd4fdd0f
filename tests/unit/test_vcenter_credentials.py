"""The controller's credentials toward the VM manager: a bearer token on every lookup and a
secret signing every notification, each from a file (read at each use: rewriting it rotates
it) or an environment variable; and the settings of the webhooks and subscriptions."""

import json
import time
import urllib.request
from pathlib import Path

import pytest

from app.cli.evb_nms import parse_args, settings_from_args
from app.config import (
    VCENTER_SECRET_ENV,
    VCENTER_TOKEN_ENV,
    ConfigError,
    Settings,
    build_settings,
    load_file,
)
from app.policy.loader import load_policies
from app.vcenter.client import LookupStatus, VcenterClient
from app.vcenter.credentials import Credential, CredentialError
from app.vcenter.notifier import Notifier
from app.vcenter.reference import ReferenceManager
from app.vcenter.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.unit.test_vcenter_http import served
from tests.unit.test_webhook_delivery import Receiver

VSI = "a1b2c3d4-0000-0000-0000-000000001122"
POLICIES = Path(__file__).resolve().parents[2] / "policies"


def test_lookups_carry_the_bearer_token_read_at_each_use(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    receiver = Receiver(lambda number, environ: (404, {"error": "unknown"}))
    with served(receiver) as url:
        client = VcenterClient(url, ttl=1, negative_ttl=0.01, token=Credential(str(token_file)).get)
        assert client.lookup_vm(VSI).status is LookupStatus.NOT_FOUND
        token_file.write_text("second-token")  # rotated: no restart
        time.sleep(0.02)
        client.lookup_vm(VSI)
        client.close()
    assert [h["Authorization"] for h, _ in receiver.posts] == [
        "Bearer first-token",
        "Bearer second-token",
    ]


def test_an_unreadable_token_makes_the_manager_unreachable_with_the_reason(tmp_path):
    client = VcenterClient("http://127.0.0.1:9", token=Credential(str(tmp_path / "gone")).get)
    result = client.lookup_vm(VSI)
    assert result.status is LookupStatus.UNREACHABLE and "cannot read" in result.reason
    client.close()


def test_without_a_token_no_authorization_header_is_sent():
    receiver = Receiver(lambda number, environ: (404, {"error": "unknown"}))
    with served(receiver) as url:
        VcenterClient(url).lookup_vm(VSI)
    assert "Authorization" not in receiver.posts[0][0]


def test_notifications_are_signed_with_the_secret_from_the_environment(monkeypatch):
    monkeypatch.setenv(VCENTER_SECRET_ENV, "  manager-secret-value  ")
    receiver = Receiver()
    with served(receiver) as url:
        notifier = Notifier(
            url + "/v1/notifications", secret=Credential("", VCENTER_SECRET_ENV).get
        )
        notifier.notify({"kind": "vsi.associated"})
        assert notifier.flush(5)
        notifier.close()
    headers, body = receiver.posts[0]
    named = {
        TIMESTAMP_HEADER: headers["X-Evb-Timestamp"],
        SIGNATURE_HEADER: headers["X-Evb-Signature"],
    }
    assert verify("manager-secret-value", named, body, time.time())


def test_a_credential_file_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(VCENTER_TOKEN_ENV, "from-env")
    path = tmp_path / "token"
    path.write_text("from-file")
    assert Credential(str(path), VCENTER_TOKEN_ENV).get() == "from-file"
    assert Credential("", VCENTER_TOKEN_ENV).get() == "from-env"
    assert Credential("", "EVB_NMS_UNSET_VARIABLE").get() is None
    path.write_text("  \n")
    with pytest.raises(CredentialError, match="is empty"):
        Credential(str(path)).get()
    assert "from-file" not in repr(Credential(str(path)))


def test_webhook_settings_from_flags_and_file(tmp_path):
    token = tmp_path / "token"
    token.write_text("t0ken")
    args = parse_args(
        [
            "--webhook-allow",
            "public",
            "--webhook-allow",
            "10.1.0.0/16",
            "--subscription-quota",
            "5",
            "--vcenter-token-file",
            str(token),
        ]
    )
    settings = settings_from_args(args)
    assert settings.webhook_allow == ("public", "10.1.0.0/16")
    assert settings.subscription_quota == 5 and settings.vcenter_token_file == str(token)
    config = tmp_path / "evb.yaml"
    config.write_text("webhook_allow: [127.0.0.1, doctor.example.com]\nwebhook_workers: 2\n")
    from_file = build_settings(load_file(str(config)), {})
    assert from_file.webhook_allow == ("127.0.0.1", "doctor.example.com")
    assert from_file.webhook_workers == 2
    assert Settings().webhook_allow == ("public",) and Settings().subscription_quota == 20


@pytest.mark.parametrize(
    "values, field",
    [
        ({"webhook_allow": ()}, "webhook_allow"),
        ({"webhook_allow": ("public", "http://x/")}, "webhook_allow[1]"),
        ({"subscription_quota": 0}, "subscription_quota"),
        ({"subscription_quota": True}, "subscription_quota"),
        ({"webhook_workers": 65}, "webhook_workers"),
        ({"webhook_queue": 1}, "webhook_queue"),
        ({"vcenter_token_file": "/nonexistent/token"}, "vcenter_token_file"),
        ({"vcenter_secret_file": 7}, "vcenter_secret_file"),
        ({"vcenter_url": "http://user:pw@127.0.0.1:8090"}, "vcenter_url"),
        ({"vcenter_url": "http://"}, "vcenter_url"),
    ],
)
def test_bad_webhook_settings_name_the_setting(values, field):
    with pytest.raises(ConfigError) as info:
        build_settings(values, {})
    assert str(info.value).startswith(field + ":"), str(info.value)


def test_the_reference_manager_checks_the_controllers_token_and_signatures(tmp_path):
    """End to end: the controller's client and notifier with their credentials against
    evb-vcenter requiring them; with wrong ones, lookups are unreachable (401) and
    notifications refused, not stored."""
    profiles = list(load_policies(POLICIES))
    manager = ReferenceManager(profiles, token="lookup-token-1", secret="notify-secret-1")
    with served(manager) as url:
        right = VcenterClient(url, token=lambda: "lookup-token-1")
        assert right.lookup_profile(5, 4, "mgr1").found
        wrong = VcenterClient(url, token=lambda: "guess")
        refused = wrong.lookup_profile(5, 4, "mgr1")
        assert refused.status is LookupStatus.UNREACHABLE and "HTTP 401" in refused.reason
        assert VcenterClient(url).lookup_profile(5, 4, "mgr1").status is LookupStatus.UNREACHABLE
        signed = Notifier(url + "/v1/notifications", secret=lambda: "notify-secret-1")
        forged = Notifier(url + "/v1/notifications", secret=lambda: "another-secret")
        unsigned = Notifier(url + "/v1/notifications")
        for notifier in (signed, forged, unsigned):
            assert notifier.notify({"kind": "vsi.associated", "detail": {"vsi": VSI}})
            assert notifier.flush(5)
            notifier.close()
        stored = right_call(url + "/v1/notifications", "lookup-token-1")
    assert [n["seq"] for n in stored] == [1]
    assert signed.stats()["sent"] == 1
    assert forged.stats()["failed"] == 1 and unsigned.stats()["failed"] == 1
    assert forged.stats()["retried"] == 0  # 401 is the manager's refusal: not retried


def right_call(url: str, token: str):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())
