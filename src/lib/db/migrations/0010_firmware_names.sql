-- Firmware objects have names (manifests refer to them: `kind: Firmware`, a Rollout's `firmware:`).
-- An upload without one is named TYPE-VERSION with every character outside [a-z0-9_-] made '-'.
ALTER TABLE firmware ADD COLUMN name text;
UPDATE firmware SET name = regexp_replace(lower(device_type || '-' || version), '[^a-z0-9_-]', '-', 'g') WHERE name IS NULL;
ALTER TABLE firmware ALTER COLUMN name SET NOT NULL;
ALTER TABLE firmware ADD CONSTRAINT firmware_name_unique UNIQUE (name);
