-- Expiry per invitation (`expires_in` of the POST): the lifetime asked for, in seconds, so that
-- a resend gives the same lifetime again. Null: the default (`CBH_INVITE_TTL`) at the time of
-- each send.
ALTER TABLE invitations ADD COLUMN ttl_seconds INTEGER;
