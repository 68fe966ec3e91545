-- "Transfers of at least X" (`/api/v1/transfers?min_amount=`, `usd1-indexer query transfers
-- --min-amount`): the question incident responders ask first. Without an index on the amount it
-- walks the chain's whole history when few transfers qualify (measured: 1.2M events,
-- min_amount=999999 tokens, p50 429 ms, growing with the history). Each chain's partition gets a
-- fourth secondary index, (amount, block_number), deferred with the others during a first sync.

CREATE OR REPLACE FUNCTION usd1_event_index_ddl(c text) RETURNS TABLE (name text, ddl text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'events_' || c || '_' || suffix,
           format('CREATE INDEX %I ON %I (%s)', 'events_' || c || '_' || suffix, 'events_' || c, cols)
    FROM (VALUES ('tx', 'tx_hash'),
                 ('from', 'from_addr, block_number'),
                 ('to', 'to_addr, block_number'),
                 ('amount', 'amount, block_number')) AS v(suffix, cols)
$$;

-- Partitions whose other secondary indexes are in place get the new one now; a partition in a
-- deferred first sync gets it with the others when that backfill ends.
SELECT usd1_build_event_indexes(c)
FROM (
    SELECT substr(child.relname, length('events_') + 1) AS c
    FROM pg_inherits i JOIN pg_class child ON child.oid = i.inhrelid
    WHERE i.inhparent = 'events'::regclass AND child.relname <> 'events_default'
) AS partitions
WHERE to_regclass(quote_ident('events_' || c || '_tx')) IS NOT NULL
  AND to_regclass(quote_ident('events_' || c || '_from')) IS NOT NULL
  AND to_regclass(quote_ident('events_' || c || '_to')) IS NOT NULL;
