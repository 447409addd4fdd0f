import pytest

from app.flows.tables import COOKIE_MASK_OWNER, CookieKind, cookie, cookie_kind


def test_cookie_round_trip():
    value = cookie(CookieKind.VSI, 0xABCDEF)
    assert cookie_kind(value) is CookieKind.VSI
    assert value & 0xFFFFFFFFFFFF == 0xABCDEF
    assert value & COOKIE_MASK_OWNER == value


@pytest.mark.parametrize("value", [0, 0x1234, 0xEB7F000000000000])
def test_foreign_or_unknown_cookies_are_not_ours(value):
    assert cookie_kind(value) is None


def test_owner_must_fit():
    with pytest.raises(ValueError, match="48 bits"):
        cookie(CookieKind.VSI, 1 << 48)
