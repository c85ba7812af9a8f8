-- Results of the analysis (analyze/): one row per experiment and phase, replaced by every
-- recomputation (so recomputing is idempotent). results_json has the shape of
-- tests/data/results.schema.json.
CREATE TABLE results (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    phase         INTEGER NOT NULL,
    computed_at   INTEGER NOT NULL,                   -- ms since epoch
    results_json  TEXT NOT NULL,
    PRIMARY KEY (experiment_id, phase)
) STRICT;
