-- Languages (issue 14). The invitation's `language` (a BCP 47 tag, as given): its emails to the
-- invitee are written in the closest language we have a catalog for. Null for invitations from
-- before: CBH_DEFAULT_LANGUAGE.
ALTER TABLE invitations ADD COLUMN language TEXT;
-- A user's language, from the Accept-Language of their last page visit: the notices to an
-- inviter are written in it. Null: not known yet, CBH_DEFAULT_LANGUAGE.
ALTER TABLE users ADD COLUMN language TEXT;
