-- Declarative manifests (issue 8). 0008 is reserved for firmware and rollouts (issue 7).

-- A DeviceGroup: a named selector over devices, re-evaluated whenever it is used.
CREATE TABLE device_groups (
  name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  selector    text NOT NULL,
  description text,
  labels      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(labels) = 'object'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A DesiredState: desired shadow values for one device or for every device of a group. The row
-- keeps what was declared (for `get`, `diff` and `delete`); the values themselves live in the shadows.
CREATE TABLE desired_states (
  name          text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  target_device text REFERENCES devices (device_id),
  target_group  text REFERENCES device_groups (name),
  desired       jsonb NOT NULL CHECK (jsonb_typeof(desired) = 'object'),
  labels        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(labels) = 'object'),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  CHECK ((target_device IS NULL) <> (target_group IS NULL))
);
CREATE INDEX desired_states_group ON desired_states (target_group) WHERE target_group IS NOT NULL;
CREATE INDEX desired_states_device ON desired_states (target_device) WHERE target_device IS NOT NULL;

-- Which objects an applyset (`apply --applyset NAME`) applied: `--prune` deletes the members that
-- the files no longer contain, and nothing else.
CREATE TABLE applyset_members (
  applyset   text NOT NULL CHECK (applyset ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  kind       text NOT NULL,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (applyset, kind, name)
);
