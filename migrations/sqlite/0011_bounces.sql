-- Bounces (`cbh-invite bounce`): a message the relay accepted and a server later refused.
-- The outbox row keeps when its bounce came, the DSN status code (`5.1.1`; the notice's words
-- come from it), and when the creator's notice went out (told once). The Diagnostic-Code goes
-- to `last_error`. A resend gives the row a new Message-ID and clears all three. The delivery
-- shows `bounced` while `bounced_at` is set (a column rather than a status, so the worker's
-- claims and marks, and the CHECK on `status`, stay as they are).
ALTER TABLE outbox ADD COLUMN bounced_at INTEGER;
ALTER TABLE outbox ADD COLUMN bounce_status TEXT;
ALTER TABLE outbox ADD COLUMN bounce_notified_at INTEGER;
