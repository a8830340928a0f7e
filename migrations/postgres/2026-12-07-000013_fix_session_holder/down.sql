ALTER TABLE fix_sessions DROP COLUMN holder_epoch;
ALTER TABLE fix_sessions DROP COLUMN holder;
