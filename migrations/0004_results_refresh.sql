-- The results' refresh (analyze/refresh.c). Every computation of an experiment's results is kept
-- in results_history (pruned after the retention period), so a user can see what the results
-- said at an earlier time; results_refresh holds the outcome of the last attempt per experiment,
-- so that results whose refresh failed are shown as stale, with the error.
CREATE TABLE results_history (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    phase         INTEGER NOT NULL,
    computed_at   INTEGER NOT NULL,                   -- ms since epoch
    results_json  TEXT NOT NULL,
    PRIMARY KEY (experiment_id, computed_at)
) STRICT, WITHOUT ROWID;

CREATE TABLE results_refresh (
    experiment_id INTEGER PRIMARY KEY REFERENCES experiments(id) ON DELETE CASCADE,
    attempted_at  INTEGER NOT NULL,                   -- ms since epoch, the last attempt
    error_code    TEXT,                               -- NULL: the last attempt succeeded
    error_message TEXT
) STRICT;
