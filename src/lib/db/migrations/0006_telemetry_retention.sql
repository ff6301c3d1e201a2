-- Telemetry retention (issue 4): a policy per tier, and old data removed by dropping whole partitions,
-- never by DELETE. Raw points are already partitioned by day; the 1-minute rollup becomes partitioned by
-- day and the 1-hour rollup by month (existing rows are moved); the 1-day rollup is kept forever.
CREATE TABLE telemetry_retention (
  tier         text PRIMARY KEY CHECK (tier IN ('raw', '1m', '1h', '1d')),
  -- NULL: kept forever. At least a day: a partition is the smallest unit that is ever dropped.
  keep_seconds bigint CHECK (keep_seconds IS NULL OR keep_seconds >= 86400),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  CHECK (tier <> '1d' OR keep_seconds IS NULL)
);
INSERT INTO telemetry_retention (tier, keep_seconds) VALUES
  ('raw', 7 * 86400), ('1m', 30 * 86400), ('1h', 365 * 86400), ('1d', NULL);

-- Every metric name ever stored (kept by writeTelemetry), for "did you mean" over the whole fleet.
CREATE TABLE telemetry_metrics (
  metric        text PRIMARY KEY,
  first_seen_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO telemetry_metrics (metric) SELECT DISTINCT metric FROM telemetry_1d;

ALTER TABLE telemetry_1m RENAME TO telemetry_1m_unpartitioned;
ALTER INDEX telemetry_1m_pkey RENAME TO telemetry_1m_unpartitioned_pkey;
ALTER TABLE telemetry_1h RENAME TO telemetry_1h_unpartitioned;
ALTER INDEX telemetry_1h_pkey RENAME TO telemetry_1h_unpartitioned_pkey;

CREATE TABLE telemetry_1m (device_id text NOT NULL, metric text NOT NULL, bucket timestamptz NOT NULL,
  count bigint NOT NULL, sum double precision NOT NULL, min double precision NOT NULL, max double precision NOT NULL,
  PRIMARY KEY (device_id, metric, bucket)) PARTITION BY RANGE (bucket);
CREATE TABLE telemetry_1h (device_id text NOT NULL, metric text NOT NULL, bucket timestamptz NOT NULL,
  count bigint NOT NULL, sum double precision NOT NULL, min double precision NOT NULL, max double precision NOT NULL,
  PRIMARY KEY (device_id, metric, bucket)) PARTITION BY RANGE (bucket);
-- Partitions are created on demand by the ingest (telemetry_1m_pYYYYMMDD, telemetry_1h_pYYYYMM, UTC);
-- anything without one lands here, and is never dropped by retention.
CREATE TABLE telemetry_1m_default PARTITION OF telemetry_1m DEFAULT;
CREATE TABLE telemetry_1h_default PARTITION OF telemetry_1h DEFAULT;

DO $$
DECLARE
  t timestamp;
BEGIN
  FOR t IN SELECT DISTINCT date_trunc('day', bucket AT TIME ZONE 'UTC') FROM telemetry_1m_unpartitioned LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF telemetry_1m FOR VALUES FROM (%L) TO (%L)',
      'telemetry_1m_p' || to_char(t, 'YYYYMMDD'), to_char(t, 'YYYY-MM-DD HH24:MI:SS+00'),
      to_char(t + interval '1 day', 'YYYY-MM-DD HH24:MI:SS+00'));
  END LOOP;
  FOR t IN SELECT DISTINCT date_trunc('month', bucket AT TIME ZONE 'UTC') FROM telemetry_1h_unpartitioned LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF telemetry_1h FOR VALUES FROM (%L) TO (%L)',
      'telemetry_1h_p' || to_char(t, 'YYYYMM'), to_char(t, 'YYYY-MM-DD HH24:MI:SS+00'),
      to_char(t + interval '1 month', 'YYYY-MM-DD HH24:MI:SS+00'));
  END LOOP;
END $$;

INSERT INTO telemetry_1m SELECT device_id, metric, bucket, count, sum, min, max FROM telemetry_1m_unpartitioned;
INSERT INTO telemetry_1h SELECT device_id, metric, bucket, count, sum, min, max FROM telemetry_1h_unpartitioned;
DROP TABLE telemetry_1m_unpartitioned;
DROP TABLE telemetry_1h_unpartitioned;
