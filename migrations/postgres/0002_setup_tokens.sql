-- First-run setup links: while a namespace has no user, `serve` prints a URL with one of these
-- tokens, where the first superuser is created. Only the SHA-256 of the token is kept. Every
-- start issues one (so each node's printed link works); the first use deletes them all, and a
-- namespace with a user accepts none.
CREATE TABLE setup_tokens (
    token_hash BYTEA    PRIMARY KEY,
    namespace  TEXT    NOT NULL,
    created    BIGINT NOT NULL,
    expires    BIGINT NOT NULL
);
CREATE INDEX setup_tokens_namespace ON setup_tokens (namespace);
