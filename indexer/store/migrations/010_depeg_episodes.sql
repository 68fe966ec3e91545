-- Depeg episodes (indexer/depegs.py): per venue (`scope` venue, `venue` its name) and across
-- venues (`scope` aggregate, `venue` NULL). Deviations are exact bps (numeric), signed: below the
-- peg is negative. `ended_at` is NULL while the episode is open; `duration_seconds` is computed.
-- Not block-scoped: market readings are not reorganised, so no rollback registry entry.
CREATE TABLE depeg_episodes (
    id bigserial PRIMARY KEY,
    scope text NOT NULL CHECK (scope IN ('venue', 'aggregate')),
    venue text CHECK ((scope = 'aggregate') = (venue IS NULL)),
    started_at timestamptz NOT NULL,
    start_bps numeric NOT NULL,
    peak_bps numeric NOT NULL,
    peak_at timestamptz NOT NULL,
    ended_at timestamptz CHECK (ended_at IS NULL OR ended_at >= started_at),
    end_bps numeric,
    duration_seconds numeric GENERATED ALWAYS AS (extract(epoch FROM ended_at - started_at)) STORED,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- One row per episode (the upsert key), and at most one open episode per scope and venue.
CREATE UNIQUE INDEX depeg_episodes_key ON depeg_episodes (scope, (coalesce(venue, '')), started_at);
CREATE UNIQUE INDEX depeg_episodes_one_open ON depeg_episodes (scope, (coalesce(venue, ''))) WHERE ended_at IS NULL;
CREATE INDEX depeg_episodes_started ON depeg_episodes (started_at DESC, id DESC);
