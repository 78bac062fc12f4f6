-- Times are milliseconds since the Unix epoch (UTC).
-- Every row carries its namespace: namespaces never see each other's data.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    namespace     TEXT    NOT NULL,
    email         TEXT    NOT NULL,  -- first spelling given, domain lower-cased
    email_key     TEXT    NOT NULL,  -- lower-cased: the identity
    first_name    TEXT    NOT NULL DEFAULT '',
    last_name     TEXT    NOT NULL DEFAULT '',
    password_hash TEXT,              -- NULL while pending
    is_superuser  INTEGER NOT NULL DEFAULT 0,
    is_active     INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL,
    UNIQUE (namespace, email_key)
);

CREATE TABLE projects (
    id        INTEGER PRIMARY KEY,
    namespace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    created   INTEGER NOT NULL
);
CREATE INDEX projects_namespace ON projects (namespace);

CREATE TABLE grants (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('viewer', 'editor', 'owner')),
    PRIMARY KEY (user_id, project_id)
);

CREATE TABLE sessions (
    id_hash   BLOB    PRIMARY KEY,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_hash BLOB    NOT NULL,
    created   INTEGER NOT NULL,
    expires   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_keys (
    id       INTEGER PRIMARY KEY,
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash BLOB    NOT NULL UNIQUE,
    created  INTEGER NOT NULL
);

CREATE TABLE invitations (
    id         INTEGER PRIMARY KEY,
    namespace  TEXT    NOT NULL,
    invitee_id INTEGER NOT NULL REFERENCES users (id),
    email      TEXT    NOT NULL,
    email_key  TEXT    NOT NULL,
    first_name TEXT    NOT NULL DEFAULT '',
    last_name  TEXT    NOT NULL DEFAULT '',
    created_by INTEGER NOT NULL REFERENCES users (id),
    kind       TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked')),
    expires    INTEGER,          -- NULL when there is no link to expire
    created    INTEGER NOT NULL,
    modified   INTEGER NOT NULL
);
CREATE INDEX invitations_creator ON invitations (namespace, created_by, id);
CREATE INDEX invitations_namespace ON invitations (namespace, id);
CREATE INDEX invitations_invitee ON invitations (invitee_id);

CREATE TABLE invitation_projects (
    invitation_id INTEGER NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    project_id    INTEGER NOT NULL REFERENCES projects (id),
    PRIMARY KEY (invitation_id, project_id)
);

-- Accept links: only the SHA-256 of the token is kept.
CREATE TABLE invite_tokens (
    token_hash    BLOB    PRIMARY KEY,
    invitation_id INTEGER NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state         TEXT    NOT NULL CHECK (state IN ('live', 'used', 'void')),
    expires       INTEGER NOT NULL
);
CREATE INDEX invite_tokens_user ON invite_tokens (user_id, state);

-- The transactional outbox: one row per email, written with its invitation.
-- accept_token holds the plain link token until the message is sent, then is scrubbed.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    namespace       TEXT    NOT NULL,
    invitation_id   INTEGER NOT NULL UNIQUE REFERENCES invitations (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    message_id      TEXT    NOT NULL UNIQUE,
    accept_token    TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT,
    created         INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'queued';

CREATE TABLE idempotency_keys (
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    request_hash  BLOB    NOT NULL,
    invitation_id INTEGER NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    created       INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);
