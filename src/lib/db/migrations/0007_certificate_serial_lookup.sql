-- Every MQTT connect looks its certificate up by the normalised serial (policy.ts authenticate) and
-- checks for predecessors to supersede (certificates.ts supersedePredecessors). Without these
-- expression indexes both were sequential scans, so each connect cost grew with the fleet
-- (measured: ~8 ms per lookup at 10,000 certificates → 0.2–0.3 ms; bench connections --what-if-serial-index).
CREATE INDEX certificates_serial_normalised ON certificates ((ltrim(serial, '0')));
CREATE INDEX certificates_replaced_by_normalised ON certificates ((ltrim(replaced_by, '0')));
