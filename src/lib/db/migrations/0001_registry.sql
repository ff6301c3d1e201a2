-- The device registry (issue 2). Labels and metadata are JSONB; selectors compile to indexed SQL.
CREATE TABLE devices (
  device_id        text PRIMARY KEY CHECK (device_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  owner_user_id    bigint,
  device_type      text NOT NULL CHECK (device_type <> ''),
  firmware_version text,
  -- Byte order of firmware_key equals SemVer 2.0.0 precedence (src/lib/registry/firmware-key.ts),
  -- so semver ranges become btree range scans.
  firmware_key     text COLLATE "C",
  last_seen_at     timestamptz,
  status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'offline', 'deprovisioned')),
  metadata         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
  labels           jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(labels) = 'object'),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  row_version      bigint NOT NULL DEFAULT 1,
  CHECK ((firmware_version IS NULL) = (firmware_key IS NULL))
);

-- jsonb_ops (the default) serves both containment (labels @> '{"site":"berlin"}') and key
-- existence (labels ? 'gpu'), the two shapes selectors compile to.
CREATE INDEX devices_labels_gin ON devices USING gin (labels);
CREATE INDEX devices_type_id ON devices (device_type, device_id);
CREATE INDEX devices_status_id ON devices (status, device_id);
CREATE INDEX devices_firmware_key ON devices (firmware_key);
CREATE INDEX devices_owner ON devices (owner_user_id) WHERE owner_user_id IS NOT NULL;
