-- Webhook endpoints (one namespace each) and their deliveries: the webhooks' outbox. A
-- delivery row is written in the transaction of the change it announces.
CREATE TABLE webhook_endpoints (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace TEXT    NOT NULL,
    url       TEXT    NOT NULL,
    -- `whsec_` + base64 of 32 random bytes; needed in clear to sign.
    secret    TEXT    NOT NULL,
    -- '*' (every event) or ',a,b,' (matched with LIKE '%,a,%').
    events    TEXT    NOT NULL,
    created   BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_namespace ON webhook_endpoints (namespace);

CREATE TABLE webhook_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace       TEXT    NOT NULL,
    endpoint_id     BIGINT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event           TEXT    NOT NULL,
    -- `webhook-id`: one per event, the same on every attempt and every endpoint.
    webhook_id      TEXT    NOT NULL,
    -- The body exactly as signed and sent.
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    created         BIGINT NOT NULL,
    sent_at         BIGINT,
    UNIQUE (endpoint_id, webhook_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'queued';
