-- Device shadows (issue 5): one document per device, every accepted version kept in shadow_history.
-- The document is the AWS-shaped JSON of src/lib/shadow/document.ts; version and pending_since are
-- copied out of it for locking, conflicts and `shadow drift` (oldest unmet desired leaf).
CREATE TABLE shadows (
  device_id     text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
  document      jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object'),
  version       bigint NOT NULL CHECK (version >= 0),
  pending_since timestamptz,
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shadows_pending ON shadows (pending_since) WHERE pending_since IS NOT NULL;

CREATE TABLE shadow_history (
  device_id text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
  version   bigint NOT NULL,
  -- who: 'device', 'cli:<os user>', 'selector:<os user>'
  actor     text NOT NULL,
  -- the update as applied: {"state": {"desired"|"reported": …}}
  change    jsonb NOT NULL,
  -- the whole document at this version (what `shadow watch` streams, one per version)
  document  jsonb NOT NULL,
  at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (device_id, version)
);
