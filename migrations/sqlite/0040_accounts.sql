-- no-transaction
-- Accounts, sessions, MFA, consent, audit (issue 6).
--
-- Same tables and columns as migrations/postgres/0040_accounts.sql, in SQLite's types.
--
-- `users.phone` becomes optional: a person who registers on the web has no phone until they
-- link one (confirmed by a code sent by SMS). SQLite cannot drop a NOT NULL constraint in
-- place, so `users` is rebuilt with the documented procedure (sqlite.org/lang_altertable.html
-- section 7): foreign keys off, outside sqlx's transaction (hence `no-transaction` above),
-- otherwise dropping `users` would cascade-delete every user's data; then a transaction of
-- its own; then a foreign-key check. The copy uses `SELECT *`, so a column added to `users`
-- by an earlier migration makes this one fail loudly instead of dropping it silently: add it
-- to `users_new` below. New columns are added with ALTER TABLE after the rebuild.

PRAGMA foreign_keys = OFF;

BEGIN;

CREATE TABLE users_new (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    display_name  TEXT    NOT NULL,
    -- The user's own phone, E.164; NULL until a web-registered user links one.
    phone         TEXT,
    language      TEXT    NOT NULL CHECK (language IN ('en', 'fr')),
    time_zone     TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'standard' CHECK (role IN ('standard', 'premium', 'admin')),
    sms_opted_out INTEGER NOT NULL DEFAULT 0 CHECK (sms_opted_out IN (0, 1)),
    created_at    TEXT    NOT NULL,
    CONSTRAINT users_phone_key UNIQUE (phone)
) STRICT;

INSERT INTO users_new SELECT * FROM users;

DROP TABLE users;

ALTER TABLE users_new RENAME TO users;

-- Quiet hours, in minutes after local midnight: no nudges from start to end (which may wrap
-- past midnight). Both set or both NULL.
ALTER TABLE users ADD COLUMN quiet_start INTEGER CHECK (quiet_start BETWEEN 0 AND 1439);
ALTER TABLE users ADD COLUMN quiet_end INTEGER CHECK (quiet_end BETWEEN 0 AND 1439);

-- Email and password sign-in of a user (at most one per user; SMS-only users have none until
-- they claim their account).
CREATE TABLE accounts (
    user_id             BLOB    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- Trimmed and lower-cased: the sign-in identifier.
    email               TEXT    NOT NULL,
    -- argon2id PHC string (its parameters travel with it).
    password_hash       TEXT    NOT NULL,
    password_changed_at TEXT    NOT NULL,
    -- TOTP secret, sealed; set once enrollment is confirmed.
    totp_secret         TEXT,
    -- TOTP secret being enrolled, sealed; moved to totp_secret on confirmation.
    totp_pending        TEXT,
    -- The last TOTP time step accepted: a code is accepted once.
    totp_last_step      INTEGER,
    created_at          TEXT    NOT NULL,
    CONSTRAINT accounts_email_key UNIQUE (email)
) STRICT;

-- One-time MFA recovery codes (SHA-256 of the normalized code; the codes are random).
CREATE TABLE recovery_codes (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

-- A sign-in: the family of refresh tokens that descend from one login. Its id is the `sid`
-- claim of access tokens, so revoking it refuses them too.
CREATE TABLE sessions (
    id             BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id        BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- When the password (and TOTP) were checked: "fresh" authentication is measured from it.
    auth_time      TEXT    NOT NULL,
    mfa            INTEGER NOT NULL CHECK (mfa IN (0, 1)),
    created_at     TEXT    NOT NULL,
    last_used_at   TEXT    NOT NULL,
    -- Absolute end of the family, however often it is refreshed.
    expires_at     TEXT    NOT NULL,
    revoked_at     TEXT,
    revoked_reason TEXT
) STRICT;

CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at);

-- Opaque refresh tokens, stored as SHA-256; each is used once (rotation). A used token
-- presented again is reuse: the whole session is revoked.
CREATE TABLE refresh_tokens (
    token_hash TEXT NOT NULL PRIMARY KEY,
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;

CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id, session_id);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

-- Devices a user signed in from (opaque token, stored as SHA-256): failed sign-ins by others
-- never lock these out.
CREATE TABLE trusted_devices (
    token_hash   TEXT NOT NULL PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) STRICT;

CREATE INDEX trusted_devices_user_id_idx ON trusted_devices (user_id);

-- Failed sign-ins per account and per (account, client): `scope` is `account` or
-- `client:<hash of the address>`.
CREATE TABLE login_throttle (
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope        TEXT    NOT NULL,
    failures     INTEGER NOT NULL CHECK (failures >= 0),
    -- Lockouts in a row: each lasts twice the previous one, up to a cap.
    lockouts     INTEGER NOT NULL DEFAULT 0 CHECK (lockouts >= 0),
    locked_until TEXT,
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (user_id, scope)
) STRICT;

-- A code sent by SMS to prove a phone: `link` adds a phone to a web account, `claim` adds
-- an email and password to an SMS user. One pending code per user.
CREATE TABLE phone_verifications (
    user_id    BLOB    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phone      TEXT    NOT NULL,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('link', 'claim')),
    -- Keyed hash of the code (`<key id>.<hex>`).
    code_hash  TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    expires_at TEXT    NOT NULL,
    created_at TEXT    NOT NULL
) STRICT;

-- What a user agreed to, when; revocable.
CREATE TABLE consents (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL,
    -- The version of the text agreed to.
    version    TEXT    NOT NULL,
    granted_at TEXT    NOT NULL,
    revoked_at TEXT
) STRICT;

CREATE INDEX consents_user_id_idx ON consents (user_id, purpose);

-- Previous password hashes: a new password may not repeat one of the last few.
CREATE TABLE password_history (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT    NOT NULL,
    created_at    TEXT    NOT NULL
) STRICT;

CREATE INDEX password_history_user_id_idx ON password_history (user_id, id);

-- Security events, append-only. No foreign key and no `user_id` column on purpose: the log
-- outlives the people it mentions (erasure removes a person's own entries and blanks them
-- as the subject of others'). Never secrets, never message text.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    outcome    TEXT    NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    -- Who acted; NULL when anonymous (an unknown email) or erased.
    actor_id   BLOB,
    -- Whose account or data it concerns.
    subject_id BLOB,
    ip         TEXT,
    -- JSON object with the event's particulars.
    detail     TEXT
) STRICT;

CREATE INDEX audit_events_actor_id_idx ON audit_events (actor_id, id);
CREATE INDEX audit_events_subject_id_idx ON audit_events (subject_id, id);
CREATE INDEX audit_events_at_idx ON audit_events (at);

COMMIT;

PRAGMA foreign_keys = ON;
