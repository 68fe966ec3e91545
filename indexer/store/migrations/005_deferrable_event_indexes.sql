-- Backfill without paying for random-order index inserts.
-- 1. The primary key leads with the block number: a batch's rows land at the right edge of the
--    index (sequential, cheap) instead of at random places (tx hashes). It keeps the event
--    identity (chain, block hash, tx hash, log index) unique (block_number is a function of
--    block_hash), serves block-range scans, rollbacks and the API's (block_number, log_index,
--    tx_hash) order, so the separate block index goes.
-- 2. The secondary indexes (tx hash, sender, receiver) belong to each chain's partition rather
--    than to the parent, so a chain's long first backfill may drop them and build them once at
--    the end by sorting (usd1_drop_event_indexes / usd1_build_event_indexes), which is several
--    times cheaper than maintaining them row by row. Reads stay correct meanwhile, only slower.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (chain, block_number, log_index, tx_hash, block_hash);
DROP INDEX events_chain_block;
DROP INDEX events_chain_from;
DROP INDEX events_chain_to;

-- The secondary indexes of chain c's partition: (index name, CREATE statement).
CREATE FUNCTION usd1_event_index_ddl(c text) RETURNS TABLE (name text, ddl text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'events_' || c || '_' || suffix,
           format('CREATE INDEX %I ON %I (%s)', 'events_' || c || '_' || suffix, 'events_' || c, cols)
    FROM (VALUES ('tx', 'tx_hash'),
                 ('from', 'from_addr, block_number'),
                 ('to', 'to_addr, block_number')) AS v(suffix, cols)
$$;

-- Create chain c's missing secondary indexes; returns how many were built.
CREATE FUNCTION usd1_build_event_indexes(c text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    r record;
    built integer := 0;
BEGIN
    FOR r IN SELECT * FROM usd1_event_index_ddl(c) LOOP
        IF to_regclass(quote_ident(r.name)) IS NULL THEN
            EXECUTE r.ddl;
            built := built + 1;
        END IF;
    END LOOP;
    RETURN built;
END
$$;

-- Drop chain c's secondary indexes; returns how many were dropped.
CREATE FUNCTION usd1_drop_event_indexes(c text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    r record;
    dropped integer := 0;
BEGIN
    FOR r IN SELECT * FROM usd1_event_index_ddl(c) LOOP
        IF to_regclass(quote_ident(r.name)) IS NOT NULL THEN
            EXECUTE format('DROP INDEX %I', r.name);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$$;

-- How many of chain c's secondary indexes are missing (0: all in place).
CREATE FUNCTION usd1_missing_event_indexes(c text) RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT count(*)::integer FROM usd1_event_index_ddl(c) WHERE to_regclass(quote_ident(name)) IS NULL
$$;

CREATE OR REPLACE FUNCTION usd1_ensure_partition(c text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_inherits i
        JOIN pg_class child ON child.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND child.relname = 'events_' || c
    ) THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES IN (%L)', 'events_' || c, c);
        PERFORM usd1_build_event_indexes(c);
    END IF;
END
$$;

-- Partitions that exist get their indexes now.
SELECT usd1_build_event_indexes(substr(child.relname, length('events_') + 1))
FROM pg_inherits i JOIN pg_class child ON child.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass AND child.relname <> 'events_default';
