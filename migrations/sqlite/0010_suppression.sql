-- Declining (issue 14) and one-click unsubscribe (issue 17).
--
-- An invitation may now be 'declined'. SQLite cannot alter a CHECK constraint, and rebuilding
-- `invitations` would need foreign keys off (outside a transaction) and every index again.
-- Widening the list in the stored schema is SQLite's documented way for a change that leaves
-- every stored row valid ("Making Other Kinds Of Table Schema Changes", lang_altertable.html):
-- the CREATE TABLE below bumps the schema cookie, so every connection reads the new schema,
-- and `writable_schema = RESET` makes this one read it again at once.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql, '''pending'', ''accepted'', ''revoked'')',
                       '''pending'', ''accepted'', ''revoked'', ''declined'')')
WHERE type = 'table' AND name = 'invitations';

-- The addresses that asked not to be invited again, per namespace, by mailbox (the sending
-- limits' `recipient_key`: lower-cased, without the local part's `+tag`). No foreign key to the
-- invitation: retention may delete it, the wish stays.
CREATE TABLE suppressions (
    namespace     TEXT    NOT NULL,
    recipient_key TEXT    NOT NULL,
    -- The address as it was invited, for the operator.
    email         TEXT    NOT NULL,
    invitation_id INTEGER,
    created       INTEGER NOT NULL,
    PRIMARY KEY (namespace, recipient_key)
);

-- The one-click unsubscribe link (`List-Unsubscribe`) carries its own token, derived from the
-- accept token (`Token::unsubscribe_token`) and stored hashed, so the header never carries the
-- secret that accepts. Null for links issued before this migration.
ALTER TABLE invite_tokens ADD COLUMN unsubscribe_hash BLOB;
CREATE INDEX invite_tokens_unsubscribe ON invite_tokens (unsubscribe_hash);

PRAGMA writable_schema = RESET;
