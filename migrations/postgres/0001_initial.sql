-- PostgreSQL schema; the same tables as migrations/sqlite.
-- Times are milliseconds since the Unix epoch (UTC).
-- Every row carries its namespace: namespaces never see each other's data.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace     TEXT    NOT NULL,
    email         TEXT    NOT NULL,  -- first spelling given, domain lower-cased
    email_key     TEXT    NOT NULL,  -- lower-cased: the identity
    first_name    TEXT    NOT NULL DEFAULT '',
    last_name     TEXT    NOT NULL DEFAULT '',
    password_hash TEXT,              -- NULL while pending
    is_superuser  BOOLEAN NOT NULL DEFAULT FALSE,
    is_active     BOOLEAN NOT NULL DEFAULT FALSE,
    created       BIGINT NOT NULL,
    UNIQUE (namespace, email_key)
);

CREATE TABLE projects (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    created   BIGINT NOT NULL
);
CREATE INDEX projects_namespace ON projects (namespace);

CREATE TABLE grants (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('viewer', 'editor', 'owner')),
    PRIMARY KEY (user_id, project_id)
);

CREATE TABLE sessions (
    id_hash   BYTEA    PRIMARY KEY,
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_hash BYTEA    NOT NULL,
    created   BIGINT NOT NULL,
    expires   BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_keys (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash BYTEA    NOT NULL UNIQUE,
    created  BIGINT NOT NULL
);

CREATE TABLE invitations (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace  TEXT    NOT NULL,
    invitee_id BIGINT NOT NULL REFERENCES users (id),
    email      TEXT    NOT NULL,
    email_key  TEXT    NOT NULL,
    first_name TEXT    NOT NULL DEFAULT '',
    last_name  TEXT    NOT NULL DEFAULT '',
    created_by BIGINT NOT NULL REFERENCES users (id),
    kind       TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked')),
    expires    BIGINT,          -- NULL when there is no link to expire
    created    BIGINT NOT NULL,
    modified   BIGINT NOT NULL
);
CREATE INDEX invitations_creator ON invitations (namespace, created_by, id);
CREATE INDEX invitations_namespace ON invitations (namespace, id);
CREATE INDEX invitations_invitee ON invitations (invitee_id);

CREATE TABLE invitation_projects (
    invitation_id BIGINT NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    project_id    BIGINT NOT NULL REFERENCES projects (id),
    PRIMARY KEY (invitation_id, project_id)
);

-- Accept links: only the SHA-256 of the token is kept.
CREATE TABLE invite_tokens (
    token_hash    BYTEA    PRIMARY KEY,
    invitation_id BIGINT NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state         TEXT    NOT NULL CHECK (state IN ('live', 'used', 'void')),
    expires       BIGINT NOT NULL
);
CREATE INDEX invite_tokens_user ON invite_tokens (user_id, state);

-- The transactional outbox: one row per email, written with its invitation.
-- accept_token holds the plain link token until the message is sent, then is scrubbed.
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace       TEXT    NOT NULL,
    invitation_id   BIGINT NOT NULL UNIQUE REFERENCES invitations (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    message_id      TEXT    NOT NULL UNIQUE,
    accept_token    TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    created         BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'queued';

CREATE TABLE idempotency_keys (
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    request_hash  BYTEA    NOT NULL,
    invitation_id BIGINT NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    created       BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
