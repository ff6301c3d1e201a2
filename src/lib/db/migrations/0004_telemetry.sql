-- Telemetry (issue 4): raw points partitioned by day, with 1-minute, 1-hour and 1-day rollups kept
-- from the rows actually inserted (a redelivered message never counts twice).
CREATE TABLE telemetry (
  device_id   text NOT NULL,
  metric      text NOT NULL,
  ts          timestamptz NOT NULL,
  value       double precision NOT NULL,
  seq         bigint,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (device_id, metric, ts)
) PARTITION BY RANGE (ts);
-- Daily partitions are created on demand by the ingest (telemetry_pYYYYMMDD); anything else lands here.
CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT;

CREATE TABLE telemetry_1m (device_id text NOT NULL, metric text NOT NULL, bucket timestamptz NOT NULL,
  count bigint NOT NULL, sum double precision NOT NULL, min double precision NOT NULL, max double precision NOT NULL,
  PRIMARY KEY (device_id, metric, bucket));
CREATE TABLE telemetry_1h (LIKE telemetry_1m INCLUDING ALL);
CREATE TABLE telemetry_1d (LIKE telemetry_1m INCLUDING ALL);
