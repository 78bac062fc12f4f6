-- A deactivated user cannot log in by any means (password, session, API key, accept link)
-- until a superuser activates it again. Separate from `is_active`, which means "has accepted"
-- (a pending invitee is not active yet, but is not deactivated either).
ALTER TABLE users ADD COLUMN deactivated INTEGER NOT NULL DEFAULT 0;

-- The members of a project, for its page and the "at least one owner" rule.
CREATE INDEX grants_project ON grants (project_id, role);
