import re
from pathlib import Path

import pytest

from service.settings import ROOT, Settings, SettingsError, cpu_count, setting_names


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.port, s.workers, s.tuning.use_orjson, s.http.access_log) == (2080, cpu_count(), True, False)


@pytest.mark.parametrize("env, name", [
    ({"PORT": "abc"}, "PORT"), ({"PORT": "70000"}, "PORT"), ({"WORKERS": "0"}, "WORKERS"),
    ({"USE_ORJSON": "maybe"}, "USE_ORJSON"), ({"CACHE_TTL_JITTER": "2"}, "CACHE_TTL_JITTER"),
    ({"ENV": "staging"}, "ENV"), ({"REDIS_SOCKET_TIMEOUT": "fast"}, "REDIS_SOCKET_TIMEOUT"),
    ({"DB_POOL_MAX": "50", "WORKERS": "2"}, "DB_POOL_MAX"),
])
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_workers_auto_is_one_per_usable_cpu() -> None:
    assert Settings.from_env({"WORKERS": "auto"}).workers == cpu_count() >= 1
    assert Settings.from_env({"WORKERS": "AUTO"}).workers == cpu_count()
    s = Settings.from_env({"WORKERS": "auto"})
    assert s.pool_max * s.workers <= s.db.db_connection_budget  # the budget divided among them
    with pytest.raises(SettingsError):
        Settings.from_env({"WORKERS": "many"})


@pytest.mark.parametrize("workers", [1, 2, 4, 12, 80])
def test_pools_stay_within_budget(workers: int) -> None:
    s = Settings.from_env({"WORKERS": str(workers)})
    assert s.pool_max * workers <= s.db.db_connection_budget < 100


@pytest.mark.parametrize("secret", ["", "secret", "changeme", "short-but-random-1234"])
def test_production_refuses_weak_secrets(secret: str) -> None:
    with pytest.raises(SettingsError, match="TOKEN_SECRET"):
        Settings.from_env({"ENV": "production", "TOKEN_SECRET": secret})


def test_production_accepts_strong_secret() -> None:
    s = Settings.from_env({"ENV": "production", "TOKEN_SECRET": "k" * 20 + "Zq81-x_" * 4})
    assert s.with_secret().token_secret == s.token_secret


def test_development_secret_generated_once(tmp_path: Path) -> None:
    a = Settings.from_env({"DATA_DIR": str(tmp_path)}).with_secret()
    b = Settings.from_env({"DATA_DIR": str(tmp_path)}).with_secret()
    assert a.token_secret == b.token_secret and len(a.token_secret) >= 32
    assert (tmp_path / "token_secret").stat().st_mode & 0o077 == 0


def test_env_template_lists_every_setting() -> None:
    names = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.tpl").read_text(), re.M))
    assert names == set(setting_names())
    assert len(setting_names()) == len(set(setting_names())) == 83  # each variable in one place


def test_settings_are_grouped_and_changed_by_name_wherever_they_live() -> None:
    s = Settings.from_env({"DB_POOL_MAX": "7", "CACHE_PREFIX": "p", "REQUEST_TIMEOUT": "3",
                           "USE_FAST_HITS": "0", "SLOWDOWN_HIT_US": "5", "PORT": "2999", "WORKERS": "2"})
    assert (s.db.db_pool_max, s.cache.cache_prefix, s.http.request_timeout, s.tuning.use_fast_hits,
            s.hooks.slowdown_hit_us, s.port) == (7, "p", 3.0, False, 5, 2999)
    changed = s.replaced(db_pool_max=3, use_fast_hits=True, port=3000)
    assert (changed.db.db_pool_max, changed.tuning.use_fast_hits, changed.port) == (3, True, 3000)
    assert changed.cache is s.cache and changed.replaced(db_pool_max=7, use_fast_hits=False, port=2999) == s
    assert s.get("cache_prefix") == "p" and s.get("workers") == 2


def test_migrations_never_run_through_a_transaction_pooler() -> None:
    """A session lock and prepared statements do not survive a transaction pooler (found when a
    service started through PgBouncer migrated through it and hit another client's statement)."""
    with pytest.raises(SettingsError, match="MIGRATE_DATABASE_URL"):
        Settings.from_env({"DB_TRANSACTION_POOLER": "true"})
    pooled = {"DB_TRANSACTION_POOLER": "true", "DATABASE_NOTICES": "false"}
    assert Settings.from_env({**pooled, "MIGRATE_ON_START": "false"}).db.db_transaction_pooler
    direct = "postgresql://u:p@127.0.0.1:5432/simple_twitter"
    assert Settings.from_env({**pooled, "MIGRATE_DATABASE_URL": direct}).migrate_on_start


def test_database_notices_behind_a_transaction_pooler_need_postgresql_itself() -> None:
    """LISTEN holds a session, which a transaction pooler does not keep: notices would go unheard
    while its heartbeats still answered."""
    pooled = {"DB_TRANSACTION_POOLER": "true", "MIGRATE_ON_START": "false"}
    with pytest.raises(SettingsError, match="NOTICES_DATABASE_URL"):
        Settings.from_env(pooled)
    direct = "postgresql://u:p@127.0.0.1:5432/simple_twitter"
    assert Settings.from_env({**pooled, "NOTICES_DATABASE_URL": direct}).notices_url() == direct
    assert Settings.from_env({**pooled, "MIGRATE_DATABASE_URL": direct}).notices_url() == direct
    assert Settings.from_env({"DATABASE_URL": direct}).notices_url() == direct
