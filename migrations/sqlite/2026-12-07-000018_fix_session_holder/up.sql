-- The engine that holds a FIX session now, and the epoch it holds it under. A session has one
-- line to the venue, so one engine of a fleet holds it at a time; each claim raises the epoch, and
-- a write under an older one is refused, so an engine that paused while holding it cannot move
-- the sequence numbers after another has taken it on.
ALTER TABLE fix_sessions ADD COLUMN holder TEXT;
ALTER TABLE fix_sessions ADD COLUMN holder_epoch BIGINT NOT NULL DEFAULT 0;
