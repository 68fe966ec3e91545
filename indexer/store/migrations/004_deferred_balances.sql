-- Backfill speed without losing exactness.
-- 1. Balances may trail the cursor during backfill: `balances` holds every event up to
--    cursors.balances_as_of; events above it are added at read time (head_balance) and folded in
--    by one aggregate statement every few hundred thousand events, in the same transaction that
--    moves balances_as_of. Live batches fold in every commit.
ALTER TABLE cursors ADD COLUMN balances_as_of bigint NOT NULL DEFAULT -1;
UPDATE cursors SET balances_as_of = indexed_number;
ALTER TABLE balances SET (fillfactor = 70);  -- room for HOT updates of hot accounts

-- 2. The primary key leads with the transaction hash, so it also serves /tx lookups and the
--    separate (chain, tx_hash) index goes: one index fewer to maintain per inserted event.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (chain, tx_hash, log_index, block_hash);
DROP INDEX events_chain_tx;
