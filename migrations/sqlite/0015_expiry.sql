-- The expiry sweep (issue 14): a pending invitation past its expiry is marked 'expired' once,
-- its live link voided and its unsent token scrubbed, so that it is stored, not only computed.
--
-- Widening the status CHECK in the stored schema, as 0010 did for 'declined' (see there why:
-- every stored row stays valid, and rebuilding `invitations` would need foreign keys off).
PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql, '''pending'', ''accepted'', ''revoked'', ''declined'')',
                       '''pending'', ''accepted'', ''revoked'', ''declined'', ''expired'')')
WHERE type = 'table' AND name = 'invitations';

-- The sweep's search: pending invitations by expiry (most have one; accepted ones leave it).
CREATE INDEX invitations_expiry ON invitations (expires) WHERE status = 'pending';

PRAGMA writable_schema = RESET;
