-- Automatic reminders (`CBH_REMINDERS`): the reminders sent, the next slot of the schedule, and
-- when the schedule started (null: at `created`; a resend starts it again).
ALTER TABLE invitations ADD COLUMN reminders_sent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE invitations ADD COLUMN reminder_slot INTEGER NOT NULL DEFAULT 0;
ALTER TABLE invitations ADD COLUMN reminder_base INTEGER;
CREATE INDEX invitations_reminders ON invitations (reminder_slot) WHERE status = 'pending';
-- A link voided because a newer email of the same person carries a fresh one: when that email
-- was queued. Such a link answers the "superseded" page, which offers a new link.
ALTER TABLE invite_tokens ADD COLUMN superseded_at INTEGER;
-- An email counted against the recipient's limit only: queued by the service (a reminder) or
-- asked for by the invitee (a new link), not by the inviter whose limit `sender_id` names.
ALTER TABLE extra_emails ADD COLUMN automatic BOOLEAN NOT NULL DEFAULT FALSE;
