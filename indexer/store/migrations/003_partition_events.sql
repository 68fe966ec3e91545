-- Partition the event history by chain (LIST). Each chain's rows and indexes live in their own
-- table, so scans, index sizes, VACUUM and a chain's removal stay proportional to that chain
-- while the whole history grows to tens of millions of rows. Rows of chains without a partition
-- land in events_default. New chains get a partition at registration (usd1_ensure_partition).

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey;
ALTER INDEX events_chain_block RENAME TO events_unpartitioned_chain_block;
ALTER INDEX events_chain_from RENAME TO events_unpartitioned_chain_from;
ALTER INDEX events_chain_to RENAME TO events_unpartitioned_chain_to;
ALTER INDEX events_chain_tx RENAME TO events_unpartitioned_chain_tx;

CREATE TABLE events (
    chain        text NOT NULL,
    block_number bigint NOT NULL,
    block_hash   text NOT NULL,
    tx_hash      text NOT NULL,
    log_index    integer NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('mint', 'burn', 'transfer')),
    from_addr    text,
    to_addr      text,
    amount       numeric(78, 0) NOT NULL CHECK (amount >= 0),
    block_time   timestamptz,
    PRIMARY KEY (chain, block_hash, tx_hash, log_index)
) PARTITION BY LIST (chain);

CREATE TABLE events_default PARTITION OF events DEFAULT;

CREATE FUNCTION usd1_ensure_partition(c text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_inherits i
        JOIN pg_class child ON child.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND child.relname = 'events_' || c
    ) THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES IN (%L)', 'events_' || c, c);
    END IF;
END
$$;

SELECT usd1_ensure_partition(c)
FROM (SELECT chain AS c FROM chains UNION SELECT DISTINCT chain FROM events_unpartitioned) AS known;

INSERT INTO events SELECT * FROM events_unpartitioned;
DROP TABLE events_unpartitioned;

CREATE INDEX events_chain_block ON events (chain, block_number, log_index);
CREATE INDEX events_chain_from ON events (chain, from_addr, block_number);
CREATE INDEX events_chain_to ON events (chain, to_addr, block_number);
CREATE INDEX events_chain_tx ON events (chain, tx_hash);
