"""API tokens: how the config file gives them and how they are checked."""

import pytest

from app.config import ApiToken, ConfigError, Settings, build_settings, load_file


def test_tokens_from_the_config_file(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text(
        "api-tokens:\n"
        "  - {token: s3cret-admin, tenant: '*'}\n"
        "  - {token: s3cret-blue, tenant: blue}\n"
    )
    settings = build_settings(load_file(str(conf)), {})
    assert settings.api_tokens == (ApiToken("s3cret-admin", "*"), ApiToken("s3cret-blue", "blue"))
    assert [t.admin for t in settings.api_tokens] == [True, False]


def test_no_tokens_by_default():
    assert Settings().api_tokens == () and Settings().rest_address[0] == "127.0.0.1"


def test_tokens_stay_out_of_the_settings_repr():
    settings = build_settings({"api_tokens": (ApiToken("s3cret-admin", "*"),)}, {})
    assert "s3cret" not in repr(settings) and "tenant='*'" in repr(settings)


@pytest.mark.parametrize(
    "text, words",
    [
        ("api_tokens: s3cret", "expected a list"),
        ("api_tokens: [s3cret-admin]", "api_tokens[0]: expected exactly the keys token and tenant"),
        ("api_tokens: [{token: s3cret-admin}]", "exactly the keys"),
        ("api_tokens: [{token: s3cret-admin, tenant: '*', role: x}]", "exactly the keys"),
    ],
)
def test_badly_shaped_tokens_in_the_file(tmp_path, text, words):
    conf = tmp_path / "evb.yaml"
    conf.write_text(text + "\n")
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_file(str(conf))


@pytest.mark.parametrize(
    "tokens, words",
    [
        ((ApiToken("short", "*"),), r"api_tokens\[0\].token: expected a text of at least 8"),
        ((ApiToken(12345678, "*"),), r"api_tokens\[0\].token"),
        ((ApiToken(" padded-token", "*"),), "surrounding spaces"),
        ((ApiToken("s3cret-one", "*"), ApiToken("s3cret-one", "blue")), r"\[1\].token: the same"),
        ((ApiToken("s3cret-one", ""),), r"api_tokens\[0\].tenant"),
        ((ApiToken("s3cret-one", "x" * 65),), r"api_tokens\[0\].tenant"),
        (("s3cret-one",), r"api_tokens\[0\]: expected"),
    ],
)
def test_bad_tokens_name_the_setting(tokens, words):
    with pytest.raises(ConfigError, match=words):
        build_settings({"api_tokens": tokens}, {})
