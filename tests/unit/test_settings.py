"""Settings come from GATEKEEPER_* variables and fail fast with a message that names the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.settings import SettingsError, load_settings
from tests.support.keys import RECORD_KEY, production_keys, write_audit_key

GOOD_KEY = "x" * 40


def test_development_defaults_fill_in_a_local_database_and_a_stable_key(tmp_path: Path) -> None:
    first = load_settings({}, tmp_path)
    assert first.env == "development"
    assert first.database_url == f"sqlite:///{tmp_path / 'gatekeeper.sqlite'}"
    assert first.overdue_review_policy == "block"
    assert (first.signoff_ttl_hours, first.reminder_after_hours, first.escalate_after_hours) == (
        168,
        48,
        96,
    )
    assert load_settings({}, tmp_path).secret_keys == first.secret_keys
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_a_typo_in_a_variable_name_is_an_error_naming_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="did you mean GATEKEEPER_DATABASE_URL"):
        load_settings({"GATEKEEPER_DATABSE_URL": "sqlite:///x"}, tmp_path)


def test_unknown_variable_without_a_close_match_is_still_rejected(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"unknown setting GATEKEEPER_ZZZ$"):
        load_settings({"GATEKEEPER_ZZZ": "1"}, tmp_path)


def test_client_and_test_variables_are_known(tmp_path: Path) -> None:
    load_settings(
        {
            "GATEKEEPER_URL": "http://x",
            "GATEKEEPER_TOKEN": "gk_x",
            "GATEKEEPER_TEST_DATABASE_URL": "postgresql://x",
        },
        tmp_path,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GATEKEEPER_ENV", "prod", "must be one of: development, testing, production"),
        ("GATEKEEPER_MAIL_PORT", "twenty-five", "is not a whole number"),
        ("GATEKEEPER_MAIL_PORT", "0", "must be at least 1"),
        ("GATEKEEPER_MAIL_USE_TLS", "maybe", "is not a boolean"),
        ("GATEKEEPER_MAIL_TIMEOUT", "soon", "is not a number"),
        ("GATEKEEPER_MAIL_TIMEOUT", "-1", "must be greater than 0"),
        ("GATEKEEPER_BASE_URL", "example.com", "must be an absolute http"),
        ("GATEKEEPER_DATABASE_URL", "mysql://x", "supports sqlite"),
        ("GATEKEEPER_SECRET_KEYS", "short", "at least 32 characters"),
        ("GATEKEEPER_SECRET_KEYS", " , ", "is empty"),
        ("GATEKEEPER_OVERDUE_REVIEW_POLICY", "ignore", "must be one of: block, warn"),
    ],
)
def test_bad_values_are_rejected_with_the_variable_named(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings({name: value}, tmp_path)
    assert name in str(raised.value)


def test_values_are_parsed(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "GATEKEEPER_DATABASE_URL": "postgresql://u@h/db",
            "GATEKEEPER_SECRET_KEYS": f"{'a' * 32}, {'b' * 32}",
            "GATEKEEPER_BASE_URL": "https://gate.example.com/",
            "GATEKEEPER_MAIL_USE_SSL": "true",
            "GATEKEEPER_MAIL_PORT": "465",
            "GATEKEEPER_OVERDUE_REVIEW_POLICY": "warn",
        },
        tmp_path,
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.secret_keys == ("a" * 32, "b" * 32)
    assert settings.base_url == "https://gate.example.com"
    assert settings.mail_use_ssl is True
    assert settings.mail_port == 465
    assert settings.overdue_review_policy == "warn"


def test_tls_and_ssl_together_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="exclude each other"):
        load_settings({"GATEKEEPER_MAIL_USE_TLS": "1", "GATEKEEPER_MAIL_USE_SSL": "1"}, tmp_path)


def test_production_refuses_to_start_without_real_settings(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="GATEKEEPER_SECRET_KEYS, GATEKEEPER_BASE_URL"):
        load_settings({"GATEKEEPER_ENV": "production"}, tmp_path)
    assert not (tmp_path / "secret_key").exists()


def production(folder: Path) -> dict[str, str]:
    return {
        "GATEKEEPER_ENV": "production",
        "GATEKEEPER_SECRET_KEYS": GOOD_KEY,
        "GATEKEEPER_BASE_URL": "https://gate.example.com",
        "GATEKEEPER_DATABASE_URL": "postgresql+psycopg://gk@db/gk",
        "GATEKEEPER_MAIL_SERVER": "smtp.example.com",
        "GATEKEEPER_MAIL_SENDER": "Gatekeeper <gate@example.com>",
        **production_keys(folder),
    }


def test_production_with_everything_set_starts(tmp_path: Path) -> None:
    settings = load_settings(production(tmp_path), tmp_path)
    assert settings.is_production


def test_syncs_must_name_their_author_in_production_unless_turned_off(tmp_path: Path) -> None:
    assert load_settings(production(tmp_path), tmp_path).sync_require_author is True
    assert load_settings({}, tmp_path).sync_require_author is False
    off = {**production(tmp_path), "GATEKEEPER_SYNC_REQUIRE_AUTHOR": "false"}
    assert load_settings(off, tmp_path).sync_require_author is False
    on = load_settings({"GATEKEEPER_SYNC_REQUIRE_AUTHOR": "yes"}, tmp_path)
    assert on.sync_require_author is True
    with pytest.raises(SettingsError, match="GATEKEEPER_SYNC_REQUIRE_AUTHOR='sometimes'"):
        load_settings({"GATEKEEPER_SYNC_REQUIRE_AUTHOR": "sometimes"}, tmp_path)


def test_governance_clocks_default_and_parse(tmp_path: Path) -> None:
    defaults = load_settings({}, tmp_path)
    assert (defaults.review_lead_days, defaults.finding_warn_days) == (14, 7)
    settings = load_settings(
        {"GATEKEEPER_REVIEW_LEAD_DAYS": "0", "GATEKEEPER_FINDING_WARN_DAYS": "30"}, tmp_path
    )
    assert (settings.review_lead_days, settings.finding_warn_days) == (0, 30)


@pytest.mark.parametrize("name", ["GATEKEEPER_REVIEW_LEAD_DAYS", "GATEKEEPER_FINDING_WARN_DAYS"])
@pytest.mark.parametrize(
    ("value", "message"),
    [("two weeks", "is not a whole number"), ("-1", "at least 0"), ("3651", "at most 3650")],
)
def test_governance_clocks_are_validated(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings({name: value}, tmp_path)
    assert name in str(raised.value)


def test_a_typo_in_a_governance_setting_is_caught(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="did you mean GATEKEEPER_REVIEW_LEAD_DAYS"):
        load_settings({"GATEKEEPER_REVIEW_LEAD_DAY": "7"}, tmp_path)


SSO = {
    "GATEKEEPER_OIDC_ISSUER": "https://login.example.com/realms/staff/",
    "GATEKEEPER_OIDC_CLIENT_ID": "gatekeeper",
    "GATEKEEPER_OIDC_ROLE_MAP": "release-managers=release_manager,gk-admins=admin",
}


def test_single_sign_on_is_off_by_default_and_parses_when_on(tmp_path: Path) -> None:
    off = load_settings({}, tmp_path)
    assert (off.sso_enabled, off.oidc_issuer, off.oidc_role_claim) == (False, None, "groups")
    on = load_settings(
        {
            **SSO,
            "GATEKEEPER_OIDC_SCOPES": "openid  email profile groups",
            "GATEKEEPER_OIDC_ROLE_CLAIM": "realm_access.roles",
            "GATEKEEPER_OIDC_MAGIC_LINK_FALLBACK": "off",
            "GATEKEEPER_OIDC_REQUIRE_VERIFIED_EMAIL": "false",
        },
        tmp_path,
    )
    assert on.sso_enabled
    assert on.oidc_issuer == "https://login.example.com/realms/staff/", "kept exactly"
    assert on.oidc_role_map == {"release-managers": "release_manager", "gk-admins": "admin"}
    assert on.oidc_scopes == "openid email profile groups"
    assert on.oidc_role_claim == "realm_access.roles"
    assert (on.oidc_magic_link_fallback, on.oidc_require_verified_email) == ("off", False)
    assert on.oidc_client_secret is None, "a public client (PKCE only) outside production"
    assert load_settings(SSO, tmp_path).oidc_magic_link_fallback == "admins"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"GATEKEEPER_OIDC_ROLE_MAP": "gk-admins=superuser"},
            "GATEKEEPER_OIDC_ROLE_MAP: 'superuser' is not a role",
        ),
        (
            {"GATEKEEPER_OIDC_ROLE_MAP": "gk-admins=admn"},
            "did you mean admin",
        ),
        ({"GATEKEEPER_OIDC_ROLE_MAP": ""}, "map at least one group"),
        ({"GATEKEEPER_OIDC_ISSUER": "login.example.com"}, "must be an absolute http"),
        ({"GATEKEEPER_OIDC_ISSUER": "https://x.example/?tenant=1"}, "no query or fragment"),
        ({"GATEKEEPER_OIDC_SCOPES": "email profile"}, "must include openid"),
        ({"GATEKEEPER_OIDC_CLIENT_ID": " "}, "GATEKEEPER_OIDC_CLIENT_ID is empty"),
        ({"GATEKEEPER_OIDC_MAGIC_LINK_FALLBACK": "some"}, "must be one of: admins, all, off"),
        ({"GATEKEEPER_OIDC_REQUIRE_VERIFIED_EMAIL": "maybe"}, "is not a boolean"),
    ],
)
def test_bad_single_sign_on_settings_fail_at_start(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({**SSO, **overrides}, tmp_path)


def test_single_sign_on_needs_a_client_and_a_role_map(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError,
        match=r"needs these settings: GATEKEEPER_OIDC_CLIENT_ID, GATEKEEPER_OIDC_ROLE_MAP$",
    ):
        load_settings({"GATEKEEPER_OIDC_ISSUER": SSO["GATEKEEPER_OIDC_ISSUER"]}, tmp_path)


def test_single_sign_on_settings_without_an_issuer_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match="GATEKEEPER_OIDC_CLIENT_ID, GATEKEEPER_OIDC_ROLE_MAP set"
    ):
        load_settings({k: v for k, v in SSO.items() if k != "GATEKEEPER_OIDC_ISSUER"}, tmp_path)


def test_production_single_sign_on_needs_the_secret_and_https(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="needs these settings: GATEKEEPER_OIDC_CLIENT_SECRET"):
        load_settings({**production(tmp_path), **SSO}, tmp_path)
    with pytest.raises(SettingsError, match="must be an https URL in production"):
        load_settings(
            {
                **production(tmp_path),
                **SSO,
                "GATEKEEPER_OIDC_ISSUER": "http://login.example.com",
                "GATEKEEPER_OIDC_CLIENT_SECRET": "s3cret",
            },
            tmp_path,
        )
    started = load_settings(
        {**production(tmp_path), **SSO, "GATEKEEPER_OIDC_CLIENT_SECRET": "s3cret"}, tmp_path
    )
    assert started.oidc_client_secret == "s3cret"


def test_a_typo_in_a_single_sign_on_setting_is_caught(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="did you mean GATEKEEPER_OIDC_ROLE_MAP"):
        load_settings({**SSO, "GATEKEEPER_OIDC_ROLEMAP": "x=admin"}, tmp_path)


def test_production_refuses_to_start_without_record_or_audit_keys(tmp_path: Path) -> None:
    for name in ("GATEKEEPER_RECORD_KEYS", "GATEKEEPER_AUDIT_SIGNING_KEY_FILE"):
        environ = {k: v for k, v in production(tmp_path).items() if k != name}
        with pytest.raises(SettingsError, match=f"production needs these settings: {name}"):
            load_settings(environ, tmp_path)
    assert not (tmp_path / "record_key").exists()
    assert not (tmp_path / "audit_signing_key.pem").exists()


def test_development_generates_record_and_audit_keys_in_the_instance_folder(
    tmp_path: Path,
) -> None:
    first = load_settings({}, tmp_path)
    assert load_settings({}, tmp_path).record_keys == first.record_keys
    assert len(first.record_keys[0]) >= 32
    assert first.audit_signing_key_files == (str(tmp_path / "audit_signing_key.pem"),)
    assert b"PRIVATE KEY" in (tmp_path / "audit_signing_key.pem").read_bytes()
    assert (tmp_path / "record_key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "audit_signing_key.pem").stat().st_mode & 0o777 == 0o600


def test_key_lists_are_parsed_for_rotation(tmp_path: Path) -> None:
    new, old = write_audit_key(tmp_path / "new.pem"), write_audit_key(tmp_path / "old.pem")
    settings = load_settings(
        {
            "GATEKEEPER_RECORD_KEYS": f"{RECORD_KEY}, {'s' * 32}",
            "GATEKEEPER_AUDIT_SIGNING_KEY_FILE": f"{new},{old}",
        },
        tmp_path,
    )
    assert settings.record_keys == (RECORD_KEY, "s" * 32)
    assert settings.audit_signing_key_files == (str(new), str(old))
    with pytest.raises(SettingsError, match="at least 32 characters"):
        load_settings({"GATEKEEPER_RECORD_KEYS": "short"}, tmp_path)
    with pytest.raises(SettingsError, match="is not a readable file"):
        load_settings({"GATEKEEPER_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "none.pem")}, tmp_path)
    with pytest.raises(SettingsError, match="GATEKEEPER_AUDIT_SIGNING_KEY_FILE is empty"):
        load_settings({"GATEKEEPER_AUDIT_SIGNING_KEY_FILE": " , "}, tmp_path)
