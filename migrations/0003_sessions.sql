-- Browser sessions (web/auth.c): one row per login. Only the SHA-256 of the session id (the
-- cookie's value) is stored, so a copy of the database does not log anyone in. csrf is the token
-- the UI sends as X-CSRF-Token on every state change. Times are ms since the Unix epoch (UTC).
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,              -- hex SHA-256 of the cookie value
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,                     -- 64 hex digits
    created_at   INTEGER NOT NULL,                  -- the absolute timeout counts from here
    last_seen_at INTEGER NOT NULL,                  -- the idle timeout counts from here
    ended_at     INTEGER                            -- logout, user disabled: NULL while live
) STRICT;

CREATE INDEX sessions_user ON sessions(user_id);
