-- Notes: free text the user keeps. The body is personal text, stored sealed
-- (`seal::place("notes.body", user)`), so searching happens after opening, in the
-- application, over one user's notes. Same table as migrations/sqlite/0013_notes.sql.

CREATE TABLE notes (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX notes_user_id_id_idx ON notes (user_id, id);
