-- Solana control events order within a slot by the transaction's place in the block: their
-- log_index is `tx_index * 100000 + instruction path` (indexer.chains.solana_parse
-- .control_log_index), which outgrows integer on large blocks. EVM log indexes are unchanged.
ALTER TABLE control_events ALTER COLUMN log_index TYPE bigint;
