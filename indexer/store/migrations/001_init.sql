-- usd1-indexer schema v1. Amounts are exact: numeric(78,0) holds any uint256.

CREATE TABLE chains (
    chain       text PRIMARY KEY,
    kind        text NOT NULL,
    token       text NOT NULL,
    decimals    integer NOT NULL
);

-- One row per token event. Identity: (chain, block_hash, tx_hash, log_index).
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
);
CREATE INDEX events_chain_block ON events (chain, block_number, log_index);
CREATE INDEX events_chain_from ON events (chain, from_addr, block_number);
CREATE INDEX events_chain_to ON events (chain, to_addr, block_number);
CREATE INDEX events_chain_tx ON events (chain, tx_hash);

-- The unfinalized window of block refs (plus one finalized anchor) per chain, for reorg detection.
CREATE TABLE blocks (
    chain        text NOT NULL,
    number       bigint NOT NULL,
    hash         text NOT NULL,
    parent_hash  text NOT NULL,
    block_time   timestamptz,
    PRIMARY KEY (chain, number)
);

-- Where each chain's index stands. Moved in the same transaction as the events it covers.
CREATE TABLE cursors (
    chain            text PRIMARY KEY,
    indexed_number   bigint NOT NULL,
    indexed_hash     text NOT NULL,
    indexed_parent   text NOT NULL,
    indexed_time     timestamptz,
    finalized_number bigint NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Cumulative totals after each block that had events: supply at block N is the last row <= N.
CREATE TABLE supply (
    chain        text NOT NULL,
    block_number bigint NOT NULL,
    block_hash   text NOT NULL,
    block_time   timestamptz,
    minted       numeric(78, 0) NOT NULL,
    burned       numeric(78, 0) NOT NULL,
    mints        bigint NOT NULL,
    burns        bigint NOT NULL,
    transfers    bigint NOT NULL,
    PRIMARY KEY (chain, block_number)
);

-- Balances as of the indexed head (rolled back with the events on a reorg).
CREATE TABLE balances (
    chain    text NOT NULL,
    address  text NOT NULL,
    raw      numeric(78, 0) NOT NULL,
    PRIMARY KEY (chain, address)
);

CREATE TABLE reorgs (
    id               bigserial PRIMARY KEY,
    chain            text NOT NULL,
    detected_at      timestamptz NOT NULL DEFAULT now(),
    depth            integer NOT NULL,
    ancestor_number  bigint NOT NULL,
    ancestor_hash    text NOT NULL,
    old_tip_number   bigint NOT NULL,
    old_tip_hash     text NOT NULL,
    new_tip_number   bigint,
    new_tip_hash     text,
    orphaned_events  integer NOT NULL,
    orphaned_blocks  jsonb NOT NULL
);
CREATE INDEX reorgs_chain ON reorgs (chain, detected_at DESC);
