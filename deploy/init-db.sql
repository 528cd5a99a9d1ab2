-- Two databases on one PostgreSQL, isolated from each other:
--
--   hatchet   owned by role hatchet   (the Hatchet engine: migrations, runs, crons)
--   owlclaw   owned by role owlclaw   (the OwlClaw application's own data)
--
-- Neither role can connect to the other's database, PUBLIC can connect to
-- neither, and both databases run in UTC (Hatchet refuses any other time zone).
--
-- The passwords come from the environment, never from this file:
--   HATCHET_DB_PASSWORD, OWLCLAW_DB_PASSWORD
-- psql reads them with \getenv, so this needs psql 15 or newer.
--
-- Run it as a superuser, connected to the "postgres" database:
--   Docker:     mounted into /docker-entrypoint-initdb.d/ (see compose.*.yml);
--               runs once, when the data volume is first created.
--   No Docker:  sudo --preserve-env=HATCHET_DB_PASSWORD,OWLCLAW_DB_PASSWORD \
--                 -u postgres psql -v ON_ERROR_STOP=1 -d postgres < deploy/init-db.sql
-- Running it again is safe: it creates what is missing and resets the passwords
-- and privileges.

\set ON_ERROR_STOP on

SELECT :VERSION_NUM >= 150000 AS psql_is_new_enough \gset
\if :psql_is_new_enough
\else
  DO $$ BEGIN RAISE EXCEPTION 'init-db.sql needs psql 15 or newer: it reads the passwords with \getenv'; END $$;
\endif

\getenv hatchet_password HATCHET_DB_PASSWORD
\getenv owlclaw_password OWLCLAW_DB_PASSWORD
\if :{?hatchet_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'HATCHET_DB_PASSWORD is not set: export it (see deploy/.env.example) and run init-db.sql again'; END $$;
\endif
\if :{?owlclaw_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'OWLCLAW_DB_PASSWORD is not set: export it (see deploy/.env.example) and run init-db.sql again'; END $$;
\endif

-- the passwords below must not reach the server log
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = 'panic';

SELECT length(:'hatchet_password') >= 12 AND length(:'owlclaw_password') >= 12 AS passwords_ok \gset
\if :passwords_ok
\else
  DO $$ BEGIN RAISE EXCEPTION 'HATCHET_DB_PASSWORD and OWLCLAW_DB_PASSWORD must each be at least 12 characters'; END $$;
\endif

-- roles: log in, nothing more
SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY['hatchet', 'owlclaw']) AS r
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec

ALTER ROLE hatchet WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'hatchet_password';
ALTER ROLE owlclaw WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owlclaw_password';

-- databases, each owned by its role (CREATE DATABASE cannot run in a DO block)
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', d, d, 'UTF8')
FROM unnest(ARRAY['hatchet', 'owlclaw']) AS d
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d) \gexec

ALTER DATABASE hatchet OWNER TO hatchet;
ALTER DATABASE owlclaw OWNER TO owlclaw;
ALTER DATABASE hatchet SET timezone TO 'UTC';
ALTER DATABASE owlclaw SET timezone TO 'UTC';

-- isolation: only the owner may connect
REVOKE ALL ON DATABASE hatchet FROM PUBLIC;
REVOKE ALL ON DATABASE owlclaw FROM PUBLIC;
REVOKE ALL ON DATABASE hatchet FROM owlclaw;
REVOKE ALL ON DATABASE owlclaw FROM hatchet;

-- inside each database the owner owns the public schema (PostgreSQL 15 does
-- this already; older servers let PUBLIC create objects there)
\connect hatchet
ALTER SCHEMA public OWNER TO hatchet;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

\connect owlclaw
ALTER SCHEMA public OWNER TO owlclaw;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

\echo 'init-db.sql: databases hatchet and owlclaw are ready, each reachable only by its own role'
