-- Retention (`CBH_OUTBOX_RETENTION`): the outbox rows of sent messages are deleted after a
-- while, and the invitation keeps what its row said about the delivery. The janitor copies the
-- row's status, attempts, last error and time of sending here in the transaction that deletes
-- it; while an invitation has an outbox row (a resend adds one again), the row is what counts.
ALTER TABLE invitations ADD COLUMN delivery_status TEXT;
ALTER TABLE invitations ADD COLUMN delivery_attempts INTEGER;
ALTER TABLE invitations ADD COLUMN delivery_last_error TEXT;
ALTER TABLE invitations ADD COLUMN delivery_sent_at INTEGER;
