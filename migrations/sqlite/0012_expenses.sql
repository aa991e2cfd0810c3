-- Expenses: amounts in integer minor units of an ISO 4217 currency (cents for EUR, yen for
-- JPY), never floating point. The note is personal text, stored sealed
-- (`seal::place("expenses.note", user)`). Same table as migrations/postgres/0012_expenses.sql.

CREATE TABLE expenses (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    currency     TEXT    NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    category     TEXT    NOT NULL,
    note         TEXT,
    spent_at     TEXT    NOT NULL,
    created_at   TEXT    NOT NULL
) STRICT;

-- Totals by week / month / category scan one user's range.
CREATE INDEX expenses_user_id_spent_at_idx ON expenses (user_id, spent_at);
