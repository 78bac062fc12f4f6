-- Security events, for the operator (`cbh-invite audit`) and for login throttling, which counts
-- recent failures here by account and by client address.
CREATE TABLE audit_log (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace TEXT    NOT NULL,
    at        BIGINT NOT NULL,
    event     TEXT    NOT NULL,
    actor_id  BIGINT,          -- the user who acted, when known
    subject   TEXT,             -- what it was about: an email key, an invitation id
    client_ip TEXT,
    detail    TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_subject ON audit_log (event, namespace, subject, at);
CREATE INDEX audit_log_client ON audit_log (event, client_ip, at);

-- Sending limits count recent invitations by inviter and by recipient.
CREATE INDEX invitations_recent_by_creator ON invitations (created_by, created);
CREATE INDEX invitations_recent_by_recipient ON invitations (namespace, email_key, created);
