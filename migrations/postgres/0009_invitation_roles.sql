-- Roles other than viewer (issue 13). Each project of an invitation keeps the role it offers
-- and what it did to the invitee's grant, so that revoking removes only what it gave.
-- `gave`: whether it added or raised the grant (an invitee who already held that role or a
-- higher one got nothing from it). `previous_role`: the role held before, when it raised one;
-- NULL when it added the project. Rows stored before count as viewer and as added, which is
-- what revoking assumed of them.
ALTER TABLE invitation_projects ADD COLUMN role TEXT NOT NULL DEFAULT 'viewer'
    CHECK (role IN ('viewer', 'editor', 'owner'));
ALTER TABLE invitation_projects ADD COLUMN gave BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE invitation_projects ADD COLUMN previous_role TEXT
    CHECK (previous_role IN ('viewer', 'editor', 'owner'));
