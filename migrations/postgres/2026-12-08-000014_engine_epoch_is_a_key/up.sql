-- The epoch is made a key column: a submit share-locks its engine's row for the epoch it stamps on
-- new orders, with FOR KEY SHARE. Raising the epoch (a join, a takeover) changes a key column, so
-- it waits for every submit in flight; a renewal changes none, so it waits for none. Under a steady
-- stream of submits a renewal would otherwise wait for a moment with no submit in flight, past the
-- lock timeout and past the lease.
CREATE UNIQUE INDEX engines_fence ON engines (id, epoch);
