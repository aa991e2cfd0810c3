-- Accounts, sessions, MFA, consent, audit (issue 6).
--
-- Same tables and columns as migrations/sqlite/0040_accounts.sql. Constraint names are
-- spelled out: the store maps unique violations to `StoreError::Conflict` by them.

-- The user's own phone is optional: a person who registers on the web has none until they
-- link one (confirmed by a code sent by SMS).
ALTER TABLE users ALTER COLUMN phone DROP NOT NULL;

-- Quiet hours, in minutes after local midnight: no nudges from start to end (which may wrap
-- past midnight). Both set or both NULL.
ALTER TABLE users ADD COLUMN quiet_start INTEGER CHECK (quiet_start BETWEEN 0 AND 1439);
ALTER TABLE users ADD COLUMN quiet_end INTEGER CHECK (quiet_end BETWEEN 0 AND 1439);

-- Email and password sign-in of a user (at most one per user; SMS-only users have none until
-- they claim their account).
CREATE TABLE accounts (
    user_id             UUID        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- Trimmed and lower-cased: the sign-in identifier.
    email               TEXT        NOT NULL,
    -- argon2id PHC string (its parameters travel with it).
    password_hash       TEXT        NOT NULL,
    password_changed_at TIMESTAMPTZ NOT NULL,
    -- TOTP secret, sealed; set once enrollment is confirmed.
    totp_secret         TEXT,
    -- TOTP secret being enrolled, sealed; moved to totp_secret on confirmation.
    totp_pending        TEXT,
    -- The last TOTP time step accepted: a code is accepted once.
    totp_last_step      BIGINT,
    created_at          TIMESTAMPTZ NOT NULL,
    CONSTRAINT accounts_email_key UNIQUE (email)
);

-- One-time MFA recovery codes (SHA-256 of the normalized code; the codes are random).
CREATE TABLE recovery_codes (
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT        NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- A sign-in: the family of refresh tokens that descend from one login. Its id is the `sid`
-- claim of access tokens, so revoking it refuses them too.
CREATE TABLE sessions (
    id             UUID        PRIMARY KEY,
    user_id        UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- When the password (and TOTP) were checked: "fresh" authentication is measured from it.
    auth_time      TIMESTAMPTZ NOT NULL,
    mfa            BOOLEAN     NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ NOT NULL,
    -- Absolute end of the family, however often it is refreshed.
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at);

-- Opaque refresh tokens, stored as SHA-256; each is used once (rotation). A used token
-- presented again is reuse: the whole session is revoked.
CREATE TABLE refresh_tokens (
    token_hash TEXT        PRIMARY KEY,
    session_id UUID        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id, session_id);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

-- Devices a user signed in from (opaque token, stored as SHA-256): failed sign-ins by others
-- never lock these out.
CREATE TABLE trusted_devices (
    token_hash   TEXT        PRIMARY KEY,
    user_id      UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX trusted_devices_user_id_idx ON trusted_devices (user_id);

-- Failed sign-ins per account and per (account, client): `scope` is `account` or
-- `client:<hash of the address>`.
CREATE TABLE login_throttle (
    user_id      UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope        TEXT        NOT NULL,
    failures     INTEGER     NOT NULL CHECK (failures >= 0),
    -- Lockouts in a row: each lasts twice the previous one, up to a cap.
    lockouts     INTEGER     NOT NULL DEFAULT 0 CHECK (lockouts >= 0),
    locked_until TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, scope)
);

-- A code sent by SMS to prove a phone: `link` adds a phone to a web account, `claim` adds
-- an email and password to an SMS user. One pending code per user.
CREATE TABLE phone_verifications (
    user_id    UUID        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phone      TEXT        NOT NULL,
    purpose    TEXT        NOT NULL CHECK (purpose IN ('link', 'claim')),
    -- Keyed hash of the code (`<key id>.<hex>`).
    code_hash  TEXT        NOT NULL,
    attempts   INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- What a user agreed to, when; revocable.
CREATE TABLE consents (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT        NOT NULL,
    -- The version of the text agreed to.
    version    TEXT        NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE INDEX consents_user_id_idx ON consents (user_id, purpose);

-- Previous password hashes: a new password may not repeat one of the last few.
CREATE TABLE password_history (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX password_history_user_id_idx ON password_history (user_id, id);

-- Security events, append-only. No foreign key and no `user_id` column on purpose: the log
-- outlives the people it mentions (erasure removes a person's own entries and blanks them
-- as the subject of others'). Never secrets, never message text.
CREATE TABLE audit_events (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    event      TEXT        NOT NULL,
    outcome    TEXT        NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    -- Who acted; NULL when anonymous (an unknown email) or erased.
    actor_id   UUID,
    -- Whose account or data it concerns.
    subject_id UUID,
    ip         TEXT,
    -- JSON object with the event's particulars.
    detail     TEXT
);

CREATE INDEX audit_events_actor_id_idx ON audit_events (actor_id, id);
CREATE INDEX audit_events_subject_id_idx ON audit_events (subject_id, id);
CREATE INDEX audit_events_at_idx ON audit_events (at);
