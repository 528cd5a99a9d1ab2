"""The schedule state's tables (``store.py`` creates them on first use)."""

from __future__ import annotations

from typing import Final

__all__ = ["COMPONENT", "DDL", "LOCK_KEY", "SCHEMA_VERSION"]

SCHEMA_VERSION: Final = 1
LOCK_KEY: Final = 0x6F776C636C6177  # "owlclaw": the schema's advisory lock
COMPONENT: Final = "schedules"

DDL: Final = """
CREATE TABLE IF NOT EXISTS owlclaw_schema_version (
  component  text        PRIMARY KEY,
  version    integer     NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS owlclaw_schedules (
  namespace     text        NOT NULL,
  id            text        NOT NULL,
  task_name     text        NOT NULL,
  spec          jsonb       NOT NULL,
  payload       jsonb       NOT NULL,
  gen           bigint      NOT NULL DEFAULT 1,
  handled_until timestamptz NOT NULL,
  next_fire_at  timestamptz,
  paused_at     timestamptz,
  note          text,
  skips         integer     NOT NULL DEFAULT 0 CHECK (skips >= 0),
  buffered      timestamptz,
  fired         bigint      NOT NULL DEFAULT 0,
  skipped       bigint      NOT NULL DEFAULT 0,
  coalesced     bigint      NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  PRIMARY KEY (namespace, id)
);
CREATE INDEX IF NOT EXISTS owlclaw_schedules_due
  ON owlclaw_schedules (namespace, next_fire_at) WHERE paused_at IS NULL;
CREATE TABLE IF NOT EXISTS owlclaw_occurrences (
  namespace    text        NOT NULL,
  schedule_id  text        NOT NULL,
  nominal      timestamptz NOT NULL,
  claimed_by   text        NOT NULL,
  claimed_at   timestamptz NOT NULL,
  offered_at   timestamptz,
  run_id       text,
  triggered_at timestamptz,
  began_by     text,
  began_at     timestamptz,
  ended_at     timestamptz,
  PRIMARY KEY (namespace, schedule_id, nominal)
);
CREATE INDEX IF NOT EXISTS owlclaw_occurrences_unstarted
  ON owlclaw_occurrences (namespace, claimed_at) WHERE run_id IS NULL;
"""
