-- Signed firmware and staged OTA rollouts (issue 7). PostgreSQL is the source of truth: an
-- assignment is committed here before it is published, and republished from here on reconnect.
CREATE TABLE firmware (
  firmware_id   bigserial PRIMARY KEY,
  device_type   text NOT NULL,
  version       text NOT NULL,
  firmware_key  text COLLATE "C" NOT NULL,
  version_code  bigint NOT NULL,
  min_version   text,
  sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size          bigint NOT NULL CHECK (size >= 0),
  artifact      text NOT NULL,
  -- The exact signed bytes: re-serialising a parsed manifest could change them.
  manifest      bytea NOT NULL,
  signature     text NOT NULL,
  key_id        text NOT NULL,
  notes         text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (device_type, version),
  UNIQUE (device_type, version_code)
);

CREATE TABLE rollouts (
  name              text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  firmware_id       bigint NOT NULL REFERENCES firmware,
  selector          text,
  canary_selector   text,
  stages            integer[] NOT NULL,
  soak_ms           bigint NOT NULL,
  max_failure_rate  double precision NOT NULL,
  min_decided       integer NOT NULL,
  min_coverage      double precision NOT NULL,
  rate_per_minute   double precision CHECK (rate_per_minute > 0),
  step_timeout_ms   bigint NOT NULL,
  health            text,
  rollback          boolean NOT NULL DEFAULT false,
  state             text NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'running', 'soaking', 'paused', 'completed', 'aborted', 'rolled-back')),
  paused_from       text,
  stage             integer NOT NULL DEFAULT 0,
  stage_started_at  timestamptz,
  soak_started_at   timestamptz,
  target_count      integer NOT NULL DEFAULT 0,
  reason            text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  finished_at       timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rollout_targets (
  rollout           text NOT NULL REFERENCES rollouts ON DELETE CASCADE,
  device_id         text NOT NULL,
  position          integer NOT NULL,
  stage             integer NOT NULL,
  state             text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dispatched', 'downloading', 'installing',
                      'succeeded', 'failed', 'timed-out', 'rolled-back', 'already-installed', 'rejected', 'unreached')),
  previous_version  text,
  assignment_id     text,
  dispatched_at     timestamptz,
  published_at      timestamptz,
  decided_at        timestamptz,
  reason            text,
  rollback_state    text CHECK (rollback_state IN ('sent', 'done', 'failed', 'impossible')),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rollout, device_id),
  UNIQUE (rollout, position)
);
CREATE INDEX rollout_targets_stage_state ON rollout_targets (rollout, stage, state);
-- A reconnecting device's open assignments (republished from the database on every connect).
CREATE INDEX rollout_targets_open ON rollout_targets (device_id)
  WHERE state IN ('dispatched', 'downloading', 'installing', 'unreached');
CREATE INDEX rollout_targets_unpublished ON rollout_targets (rollout) WHERE dispatched_at IS NOT NULL AND published_at IS NULL;

-- The dispatch log: one row per assignment sent (a unique key makes a second dispatch impossible).
CREATE TABLE rollout_events (
  event_id   bigserial PRIMARY KEY,
  rollout    text NOT NULL REFERENCES rollouts ON DELETE CASCADE,
  at         timestamptz NOT NULL DEFAULT now(),
  kind       text NOT NULL,
  detail     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX rollout_events_rollout ON rollout_events (rollout, event_id);
