-- Read-side index for the history API: time -> block lookups and supply history buckets.
-- The supply table has one row per block with events, so this index stays small next to events.
CREATE INDEX IF NOT EXISTS supply_chain_time ON supply (chain, block_time, block_number);
