-- Notes: free text the user keeps. The body is personal text, stored sealed
-- (`seal::place("notes.body", user)`), so searching happens after opening, in the
-- application, over one user's notes. Same table as migrations/postgres/0013_notes.sql.

CREATE TABLE notes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body       TEXT    NOT NULL,
    created_at TEXT    NOT NULL
) STRICT;

CREATE INDEX notes_user_id_id_idx ON notes (user_id, id);
