-- Bulk invitations (`POST /{ns}/api/invitations/bulk/`): the whole answer of a request made with
-- an `Idempotency-Key`, so that a retry gets it again without creating anything twice. The key is
-- claimed (answer null) before the rows are worked on, so that a retry arriving meanwhile waits
-- its turn instead of working on them too. Kept as long as the single POST's keys (24 hours);
-- older rows are deleted when a new key is claimed.
CREATE TABLE bulk_requests (
    user_id      BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          TEXT    NOT NULL,
    request_hash BYTEA   NOT NULL,
    answer       TEXT,
    created      BIGINT  NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX bulk_requests_created ON bulk_requests (created);
