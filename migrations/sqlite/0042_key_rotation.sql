-- Key rotation bookkeeping (issue 6): which keys were active, and how far a re-seal pass got.
-- Same tables in migrations/sqlite/ and migrations/postgres/. Neither holds personal data.

-- The active key id of each key ring (`seal`, `jwt`) as last seen at start-up: a change is
-- logged as a `key_rotated` security event.
CREATE TABLE key_state (
    kind       TEXT NOT NULL PRIMARY KEY,
    active_kid TEXT NOT NULL,
    changed_at TEXT NOT NULL
) STRICT;

-- How far `nudge admin rotate-key` got for each sealed column, per target key: a pass that
-- stops (crash, Ctrl-C) resumes after the last user it finished.
CREATE TABLE reseal_progress (
    table_name   TEXT NOT NULL,
    column_name  TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    last_user_id BLOB NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (table_name, column_name, key_id)
) STRICT;
