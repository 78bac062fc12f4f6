-- The inviter is told (issue 14): when an invitation is accepted or declined, and when its
-- email fails for good.
--
-- Whether the user wants the accepted and declined notices (the failure notice always goes:
-- it asks for something to be done).
ALTER TABLE users ADD COLUMN notify_outcomes INTEGER NOT NULL DEFAULT 1;
-- When the creator was told that the invitation's email failed for good: once per invitation,
-- so a resend that fails again says nothing more. Never cleared.
ALTER TABLE invitations ADD COLUMN failure_notified_at INTEGER;

-- The notices to the creators, queued in the transaction of what they announce (the accept,
-- the decline, the failed delivery) and sent by the outbox worker with the outbox's retries.
-- A table of their own because `outbox` holds one row per invitation, its email to the
-- invitee (`invitation_id` is UNIQUE, and the delivery the API shows is that row).
CREATE TABLE notices (
    id              INTEGER PRIMARY KEY,
    namespace       TEXT    NOT NULL,
    invitation_id   INTEGER NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL
        CHECK (kind IN ('invitation_accepted', 'invitation_declined', 'invitation_failed')),
    recipient_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient       TEXT    NOT NULL,
    -- The random part of the Message-ID; the worker adds the sender's domain.
    message_key     TEXT    NOT NULL UNIQUE,
    -- When it happened: the accept, the decline, the failure.
    event_at        INTEGER NOT NULL,
    -- A failure's words from the relay.
    detail          TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT,
    created         INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX notices_due ON notices (next_attempt_at) WHERE status = 'queued';
CREATE INDEX notices_invitation ON notices (invitation_id);
