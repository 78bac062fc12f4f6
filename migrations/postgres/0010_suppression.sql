-- Declining (issue 14) and one-click unsubscribe (issue 17).
ALTER TABLE invitations DROP CONSTRAINT invitations_status_check;
ALTER TABLE invitations ADD CONSTRAINT invitations_status_check
    CHECK (status IN ('pending', 'accepted', 'revoked', 'declined'));

-- The addresses that asked not to be invited again, per namespace, by mailbox (the sending
-- limits' `recipient_key`: lower-cased, without the local part's `+tag`). No foreign key to the
-- invitation: retention may delete it, the wish stays.
CREATE TABLE suppressions (
    namespace     TEXT   NOT NULL,
    recipient_key TEXT   NOT NULL,
    -- The address as it was invited, for the operator.
    email         TEXT   NOT NULL,
    invitation_id BIGINT,
    created       BIGINT NOT NULL,
    PRIMARY KEY (namespace, recipient_key)
);

-- The one-click unsubscribe link (`List-Unsubscribe`) carries its own token, derived from the
-- accept token (`Token::unsubscribe_token`) and stored hashed, so the header never carries the
-- secret that accepts. Null for links issued before this migration.
ALTER TABLE invite_tokens ADD COLUMN unsubscribe_hash BYTEA;
CREATE INDEX invite_tokens_unsubscribe ON invite_tokens (unsubscribe_hash);
