-- Sending limits count every email queued to a mailbox (`recipient_key`: the lower-cased
-- address without the local part's `+tag`, in every namespace) and every email an inviter
-- caused. An invitation's first email is counted by its row; later ones (resends, and any
-- email added later) each leave a row in `extra_emails`.
ALTER TABLE invitations ADD COLUMN recipient_key TEXT NOT NULL DEFAULT '';
-- As `EmailAddress::recipient_key`: the tag runs from the first `+` to the `@` (a domain has
-- no `+`; a local part that starts with `+` keeps it).
UPDATE invitations SET recipient_key = CASE
    WHEN instr(email_key, '+') > 1 AND instr(email_key, '+') < instr(email_key, '@')
    THEN substr(email_key, 1, instr(email_key, '+') - 1) || substr(email_key, instr(email_key, '@'))
    ELSE email_key END;
DROP INDEX invitations_recent_by_recipient;
CREATE INDEX invitations_recent_by_recipient_key ON invitations (recipient_key, created);

CREATE TABLE extra_emails (
    id            INTEGER PRIMARY KEY,
    recipient_key TEXT    NOT NULL,
    sender_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created       INTEGER NOT NULL
);
CREATE INDEX extra_emails_recipient ON extra_emails (recipient_key, created);
CREATE INDEX extra_emails_sender ON extra_emails (sender_id, created);
