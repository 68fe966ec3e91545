-- Event families (issue #14). Each family is a record type with its own block-scoped table:
-- `events` (transfers, unchanged) and now `control_events` (ownership, proxy, pause, role, freeze
-- and blacklist events). Rollback of every block-scoped table is driven by one registry in
-- indexer/store/blocktables.py (a test checks that every table keyed by block is in it).

-- One row per control event. Identity: (chain, block_hash, tx_hash, log_index) as for events.
-- The kind vocabulary is closed here as in indexer.model.ControlKind.
CREATE TABLE control_events (
    chain        text NOT NULL,
    block_number bigint NOT NULL,
    block_hash   text COLLATE "C" NOT NULL,
    tx_hash      text COLLATE "C" NOT NULL,
    log_index    integer NOT NULL,
    kind         text NOT NULL CHECK (kind IN (
        'ownership_transfer_started', 'ownership_transferred', 'upgraded', 'admin_changed',
        'beacon_upgraded', 'paused', 'unpaused', 'role_granted', 'role_revoked',
        'role_admin_changed', 'frozen', 'unfrozen', 'frozen_funds_destroyed', 'minter_configured',
        'minter_removed', 'minter_admin_changed', 'pauser_changed', 'blacklister_changed',
        'mint_authority_changed', 'freeze_authority_changed', 'authority_changed')),
    event        text NOT NULL,             -- the original event / instruction name
    address      text COLLATE "C" NOT NULL, -- emitting contract (EVM), mint or account (Solana)
    subject      text COLLATE "C",          -- the account acted on / the new holder
    previous     text COLLATE "C",
    actor        text COLLATE "C",
    role         text COLLATE "C",
    amount       numeric(78, 0) CHECK (amount >= 0),
    block_unix   bigint NOT NULL,
    block_time   timestamptz GENERATED ALWAYS AS (CASE WHEN block_unix > 0 THEN to_timestamp(block_unix) END) STORED,
    PRIMARY KEY (chain, block_number, log_index, tx_hash, block_hash)
);
CREATE INDEX control_events_kind ON control_events (chain, kind, block_number);
CREATE INDEX control_events_subject ON control_events (chain, subject, block_number);

-- Which heights each family of a chain is complete for: from `from_block` up to the chain's
-- cursor, for the family's configuration identified by `fingerprint` (`config` says what it
-- decodes). A family enabled on an indexed chain starts at the cursor + 1 and is filled below it
-- by `usd1-indexer backfill --family NAME`, which moves `from_block` down.
CREATE TABLE coverage (
    chain       text NOT NULL,
    family      text NOT NULL CHECK (family IN ('transfers', 'controls')),
    from_block  bigint NOT NULL,
    fingerprint text NOT NULL,
    config      jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, family)
);

-- Orphaned rows per family of each handled reorg (`orphaned_events` keeps the transfers count).
ALTER TABLE reorgs ADD COLUMN orphaned jsonb NOT NULL DEFAULT '{}';
