-- The expiry sweep (issue 14): a pending invitation past its expiry is marked 'expired' once,
-- its live link voided and its unsent token scrubbed, so that it is stored, not only computed.
ALTER TABLE invitations DROP CONSTRAINT invitations_status_check;
ALTER TABLE invitations ADD CONSTRAINT invitations_status_check
    CHECK (status IN ('pending', 'accepted', 'revoked', 'declined', 'expired'));

-- The sweep's search: pending invitations by expiry.
CREATE INDEX invitations_expiry ON invitations (expires) WHERE status = 'pending';
