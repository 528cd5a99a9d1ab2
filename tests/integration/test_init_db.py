"""deploy/init-db.sql on a real PostgreSQL: two databases, two roles, and
neither role can reach the other's data.

The cluster is a private :class:`LocalPostgres`; its pg_hba is switched to
password authentication for every role but ``postgres``, so the passwords
that init-db.sql reads from the environment are checked too. The script runs
exactly as the docs say: ``psql -v ON_ERROR_STOP=1 -d postgres -f init-db.sql``
with HATCHET_DB_PASSWORD and OWLCLAW_DB_PASSWORD set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from owlclaw.backends.hatchet.local.engine import LocalEngine
from owlclaw.backends.hatchet.local.postgres import LocalPostgres, PostgresError, PostgresNotInstalledError

pytestmark = pytest.mark.integration

INIT_DB = Path(__file__).resolve().parents[2] / "deploy" / "init-db.sql"
PASSWORDS = {"hatchet": "hatchet-pw-" + "a1" * 8, "owlclaw": "owlclaw-pw-" + "b2" * 8}
_PG_HBA = """\
local all postgres trust
host  all postgres 127.0.0.1/32 trust
host  all all      127.0.0.1/32 scram-sha-256
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"init-db.sql test needs PostgreSQL: {reason}", pytrace=False)
    pytest.skip(reason)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PG") and k not in ("HATCHET_DB_PASSWORD", "OWLCLAW_DB_PASSWORD")
    }
    env.update(extra)
    return env


class Cluster:
    def __init__(self, pg: LocalPostgres) -> None:
        self.pg = pg

    def psql(
        self, user: str, db: str, *args: str, password: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        extra = dict(env)
        if password is not None:
            extra["PGPASSWORD"] = password
        command = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", self.pg.host, "-p", str(self.pg.port), "-U", user, "-d", db, *args]
        return subprocess.run(command, env=_clean_env(**extra), capture_output=True, text=True, timeout=60)

    def init_db(self, **passwords: str) -> subprocess.CompletedProcess[str]:
        return self.psql("postgres", "postgres", "-f", str(INIT_DB), **passwords)

    def sql(self, query: str) -> str:
        result = self.psql("postgres", "postgres", "-c", query)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def as_role(
        self, role: str, db: str, query: str, password: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.psql(role, db, "-c", query, password=password or PASSWORDS[role])


def _env_passwords(
    hatchet: str = PASSWORDS["hatchet"], owlclaw: str = PASSWORDS["owlclaw"]
) -> dict[str, str]:
    return {"HATCHET_DB_PASSWORD": hatchet, "OWLCLAW_DB_PASSWORD": owlclaw}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if shutil.which("psql") is None:
        _unavailable("no psql client on PATH (apt-get install postgresql-client)")
    try:
        pg = LocalPostgres().start()
    except (PostgresNotInstalledError, PostgresError) as exc:
        _unavailable(str(exc))
    try:
        (pg.data_dir / "pg_hba.conf").write_text(_PG_HBA, encoding="utf-8")
        c = Cluster(pg)
        assert c.sql("select pg_reload_conf()") == "t"
        result = c.init_db(**_env_passwords())
        assert result.returncode == 0, result.stderr
        assert "databases hatchet and owlclaw are ready" in result.stdout
        yield c
    finally:
        pg.stop()


@pytest.mark.parametrize("role", ["hatchet", "owlclaw"])
def test_each_role_owns_and_uses_its_database(cluster: Cluster, role: str) -> None:
    query = (
        "create table notes (id serial primary key, body text);"
        "insert into notes (body) values ('mine');"
        "select current_user, current_setting('TimeZone'), body from notes;"
        "drop table notes;"
    )
    result = cluster.as_role(role, role, query)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{role}|UTC|mine"


@pytest.mark.parametrize(("role", "other"), [("hatchet", "owlclaw"), ("owlclaw", "hatchet")])
def test_a_role_cannot_connect_to_the_other_database(cluster: Cluster, role: str, other: str) -> None:
    result = cluster.as_role(role, other, "select 1")
    assert result.returncode != 0
    assert f'permission denied for database "{other}"' in result.stderr


def test_the_other_role_cannot_read_a_table_even_when_granted_connect(cluster: Cluster) -> None:
    # defence in depth: a later GRANT CONNECT by mistake still exposes no data
    created = cluster.as_role(
        "hatchet", "hatchet", "create table secrets (v text); insert into secrets values ('x')"
    )
    assert created.returncode == 0, created.stderr
    try:
        cluster.sql("grant connect on database hatchet to owlclaw")
        result = cluster.as_role("owlclaw", "hatchet", "select v from public.secrets")
        assert result.returncode != 0
        assert "permission denied for schema public" in result.stderr
    finally:
        cluster.sql("revoke connect on database hatchet from owlclaw")
        cluster.as_role("hatchet", "hatchet", "drop table secrets")


def test_public_has_no_connect_on_either_database(cluster: Cluster) -> None:
    public_privileges = cluster.sql(
        "select d.datname, a.privilege_type from pg_database d, aclexplode(d.datacl) a "
        "where d.datname in ('hatchet', 'owlclaw') and a.grantee = 0"
    )
    assert public_privileges == ""
    owners = cluster.sql(
        "select string_agg(datname || '=' || pg_get_userbyid(datdba), ',' order by datname) "
        "from pg_database where datname in ('hatchet', 'owlclaw')"
    )
    assert owners == "hatchet=hatchet,owlclaw=owlclaw"
    cluster.sql("create role outsider login password 'outsider-password-1'")
    try:
        for db in ("hatchet", "owlclaw"):
            result = cluster.psql("outsider", db, "-c", "select 1", password="outsider-password-1")
            assert result.returncode != 0
            assert f'permission denied for database "{db}"' in result.stderr
    finally:
        cluster.sql("drop role outsider")


def test_the_roles_have_no_privileges_beyond_login(cluster: Cluster) -> None:
    flags = cluster.sql(
        "select rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
        "from pg_roles where rolname in ('hatchet', 'owlclaw') order by rolname"
    )
    assert flags.splitlines() == ["hatchet|f|f|f|f|f|t", "owlclaw|f|f|f|f|f|t"]


def test_the_passwords_come_from_the_environment(cluster: Cluster) -> None:
    wrong = cluster.as_role("hatchet", "hatchet", "select 1", password="not-the-password")
    assert wrong.returncode != 0
    assert "password authentication failed" in wrong.stderr
    rotated = "hatchet-rotated-" + "c3" * 8
    try:
        result = cluster.init_db(**_env_passwords(hatchet=rotated))
        assert result.returncode == 0, result.stderr
        assert cluster.as_role("hatchet", "hatchet", "select 1", password=rotated).returncode == 0
        assert cluster.as_role("hatchet", "hatchet", "select 1").returncode != 0
    finally:
        assert cluster.init_db(**_env_passwords()).returncode == 0
    assert cluster.as_role("hatchet", "hatchet", "select 1").returncode == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OWLCLAW_DB_PASSWORD": PASSWORDS["owlclaw"]}, "HATCHET_DB_PASSWORD is not set"),
        ({"HATCHET_DB_PASSWORD": PASSWORDS["hatchet"]}, "OWLCLAW_DB_PASSWORD is not set"),
        (_env_passwords(owlclaw="change-me"), "must each be at least 12 characters"),
    ],
    ids=["no-hatchet-password", "no-owlclaw-password", "placeholder-password"],
)
def test_missing_or_placeholder_passwords_stop_the_script(
    cluster: Cluster, env: dict[str, str], message: str
) -> None:
    result = cluster.init_db(**env)
    assert result.returncode == 3  # psql: a statement failed under ON_ERROR_STOP
    assert message in result.stderr
    assert "change-me" not in result.stderr
    # nothing was changed: the current passwords still work
    assert cluster.as_role("owlclaw", "owlclaw", "select 1").returncode == 0


def test_the_engine_migrates_and_starts_as_the_restricted_hatchet_role(
    cluster: Cluster, local_engine_binaries: None
) -> None:
    url = f"postgresql://hatchet:{PASSWORDS['hatchet']}@127.0.0.1:{cluster.pg.port}/hatchet?sslmode=disable"
    with LocalEngine(url, startup_timeout=180) as engine:
        assert engine.running
    tables = cluster.psql(
        "hatchet",
        "hatchet",
        "-c",
        "select count(*), string_agg(distinct tableowner, ',') from pg_tables where schemaname = 'public'",
        password=PASSWORDS["hatchet"],
    )
    count, owner = tables.stdout.strip().split("|")
    assert int(count) > 50 and owner == "hatchet"
    assert cluster.as_role("owlclaw", "hatchet", "select 1").returncode != 0


async def test_the_owlclaw_role_keeps_schedule_state(cluster: Cluster) -> None:
    # the schedule tables are created on first use by the restricted owlclaw role, in its own
    # database; the hatchet role cannot reach them, and a wrong password names the setting only
    from owlclaw.backends.hatchet.store import ScheduleStore
    from owlclaw.scheduler.errors import SchedulerConnectionError

    port = cluster.pg.port
    store = ScheduleStore(f"postgresql://owlclaw:{PASSWORDS['owlclaw']}@127.0.0.1:{port}/owlclaw")
    try:
        await store.ensure_schema()
        async with store.transaction() as conn:
            now = await store.now(conn)
            assert await store.claim(conn, "ns", "s", now, "test", now)
    finally:
        await store.close()
    owners = cluster.sql(
        "select string_agg(distinct tableowner, ',') from pg_tables where tablename like 'owlclaw_%'"
    )
    assert owners == ""  # they are in the owlclaw database, not in postgres
    listed = cluster.as_role(
        "owlclaw", "owlclaw", "select tableowner from pg_tables where tablename = 'owlclaw_schedules'"
    )
    assert listed.stdout.strip() == "owlclaw", listed.stderr
    assert cluster.as_role("hatchet", "owlclaw", "select 1 from owlclaw_schedules").returncode != 0
    wrong = ScheduleStore(
        f"postgresql://owlclaw:not-the-password@127.0.0.1:{port}/owlclaw", connect_timeout=5
    )
    try:
        with pytest.raises(SchedulerConnectionError, match="state_database_url") as err:
            await wrong.ensure_schema()
        assert "not-the-password" not in str(err.value) and "password authentication failed" in str(err.value)
    finally:
        await wrong.close()
