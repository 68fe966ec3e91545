-- Events carry their block's unix time as an integer (`block_unix`, 0 when unknown) and
-- PostgreSQL derives `block_time` from it. The writer then hands its event tuples to COPY as
-- they are: no per-event record tuple and no datetime encoding in Python (measured: 7.1 -> 4.6
-- us/event of indexer CPU for the COPY). Readers keep reading `block_time`.
ALTER TABLE events ADD COLUMN block_unix bigint NOT NULL DEFAULT 0;
UPDATE events SET block_unix = coalesce(extract(epoch FROM block_time)::bigint, 0);
ALTER TABLE events ALTER COLUMN block_unix DROP DEFAULT;
ALTER TABLE events DROP COLUMN block_time;
ALTER TABLE events ADD COLUMN block_time timestamptz
    GENERATED ALWAYS AS (CASE WHEN block_unix > 0 THEN to_timestamp(block_unix) END) STORED;
