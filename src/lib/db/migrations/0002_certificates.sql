-- Device and service certificates (issue 3). Private keys are never stored here.
CREATE TABLE certificates (
  serial              text PRIMARY KEY CHECK (serial ~ '^[0-9a-f]{16,40}$'),
  issuer              text NOT NULL CHECK (issuer IN ('device-ca', 'service-ca')),
  kind                text NOT NULL CHECK (kind IN ('device', 'operator')),
  device_id           text REFERENCES devices (device_id),
  subject_name        text NOT NULL,
  fingerprint_sha256  text NOT NULL UNIQUE,
  -- SHA-256 of the SubjectPublicKeyInfo: one key may never serve two identities.
  public_key_sha256   text NOT NULL,
  not_before          timestamptz NOT NULL,
  not_after           timestamptz NOT NULL,
  status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  revoked_at          timestamptz,
  revocation_reason   text,
  replaced_by         text REFERENCES certificates (serial),
  -- For rotation: the old certificate is revoked (superseded) at this time unless the device
  -- connects with the new one earlier.
  supersede_after     timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  CHECK ((kind = 'device') = (device_id IS NOT NULL)),
  CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX certificates_device ON certificates (device_id, not_after) WHERE device_id IS NOT NULL;
CREATE INDEX certificates_not_after ON certificates (not_after) WHERE status = 'active';
CREATE INDEX certificates_revoked ON certificates (issuer) WHERE status = 'revoked';
CREATE INDEX certificates_public_key ON certificates (public_key_sha256);

-- CRL numbers must increase for every CRL a CA issues (RFC 5280 §5.2.3).
CREATE TABLE crl_numbers (
  ca      text PRIMARY KEY,
  number  bigint NOT NULL
);
