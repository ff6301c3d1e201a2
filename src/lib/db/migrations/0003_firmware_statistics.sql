-- Firmware range filters test right(firmware_key, 1) = '~' (release versions, see firmware-key.ts).
-- Without statistics on that expression the planner guesses ~1% and picks a slow bitmap scan over a
-- whole label match instead of walking the primary key (measured: 573 ms → 9.5 ms on 1M devices).
CREATE STATISTICS devices_firmware_release ON (right(firmware_key, 1)) FROM devices;
