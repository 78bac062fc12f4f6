# The emails (templates/*.txt, *.html, *.subject.txt). The English ones are the original's
# words, byte for byte: change them here, not in the templates.
#
# Arguments: $inviter and $invitee are names, $email an address (in HTML a mailto link),
# $platform the platform's name, $projects how many projects the invitation names, $url a link,
# $expires when a link expires written in this language (`datetime`), $expires_iso the same as
# ISO 8601 UTC. Messages may carry HTML (only those whose key ends in -html); values are escaped.

## Shared

greeting = Hello,
# $name: the reader's first name
greeting-name = Hello { $name },

role-viewer = viewer
role-editor = editor
role-owner = owner

open-address = Or open this address: { $url }
# $expires: the date in words ($expires_iso: the same as ISO 8601 UTC, for an override).
link-expires = This link works once and expires on { $expires } (UTC).
new-link-expires = This new link replaces any earlier one, works once and expires on { $expires } (UTC).
ignore-if-unexpected = If you were not expecting this invitation, you can ignore this email.
not-accepted-yet = You have not accepted yet.
choose-password = Choose your password
choose-password-here = Choose your password here:
decline-text = Not for you? Decline this invitation (you can also ask for no more):
decline-html = Not for you? <a href="{ $url }">Decline this invitation</a> (you can also ask for no more).

## new_user: the invitation of someone who has no account yet

new-user-subject = You have been invited to view { $platform } by { $inviter }
new-user-intro = { $inviter } ({ $email }) has invited you to { $platform }{ $projects ->
        [0] .
       *[other] , to view:
    }
new-user-accept-button = Accept the invitation
new-user-accept-here = To accept, choose your password here:

## project_access_changed: projects given to someone who has an account

access-changed-subject = { $inviter } has edited your project access on { $platform }
access-changed-intro = { $inviter } ({ $email }) has given you access on { $platform } to:
access-changed-password-text = You have not chosen a password yet. Choose one here to log on:
access-changed-password-html = You have not chosen a password yet. <a href="{ $url }">Choose one here to log on</a> ({ $url }).
access-changed-login-text = Log on to see them:
access-changed-login-html = <a href="{ $url }">Log on to see them</a>.

## reminder, reminder_active: sent by the inviter; reminder_auto: sent on a schedule

reminder-subject = { $inviter } would like to remind you to log on to { $platform }
reminder-intro = { $inviter } ({ $email }) invited you to { $platform }{ $projects ->
        [0] .
       *[other] {" "}to view:
    }
reminder-active-intro = { $inviter } ({ $email }) would like you to log on to { $platform }{ $projects ->
        [0] .
       *[other] {" "}and look at:
    }
log-on = Log on
reminder-auto-subject = Reminder: { $inviter } invited you to { $platform }
reminder-auto-intro = A reminder: { $inviter } ({ $email }) invited you to { $platform }{ $projects ->
        [0] .
       *[other] {" "}to view:
    }

## bounced: to the inviter, when an invitation's email could not be delivered

# $email: the invitee's address
bounced-subject = Your invitation to { $email } could not be delivered
# $invitee: the address, with the name in brackets when there is one (in HTML, in bold);
# $reason: one of the bounce-reason messages (in HTML, in bold)
bounced-intro = Your invitation to { $invitee } to { $platform } could not be delivered: { $reason }.
bounce-reason-no-such-address = the address does not exist
bounce-reason-mailbox-full = the mailbox is full
bounce-reason-refused = the receiving mail server refused the message
bounce-reason-gave-up = the mail server could not take the message, after several tries
bounced-server-said = The receiving mail server said:
# $name: the invitee's name (or address)
bounced-check-text = Check the address with { $name }. The invitation stays on your invitations page, marked "bounced":
bounced-check-html = Check the address with { $name }. The invitation stays on <a href="{ $url }">your invitations page</a>, marked "bounced".
bounced-no-reminders = No reminders go to this address automatically. You can resend the invitation from that page once the address works, or invite the right address instead.

## invitation_accepted, invitation_declined, invitation_failed: to the inviter (notices)
# $invitee: the invitee's name, with the address in brackets when the name is not it (in HTML,
# the name in bold); $when: when it happened, written in this language
notice-accepted-subject = { $invitee } accepted your invitation to { $platform }
notice-accepted-intro = { $invitee } accepted your invitation to { $platform } on { $when }.
notice-declined-subject = { $invitee } declined your invitation to { $platform }
notice-declined-intro = { $invitee } declined your invitation to { $platform } on { $when }.
notice-declined-taken-back = Any access the invitation gave has been taken back.
notice-projects = The invitation was for:
notice-your-invitations-text = Your invitations:
notice-your-invitations-link = Your invitations
notice-turn-off-text = You can turn off these emails on your welcome page: { $url }
notice-turn-off-html = You can turn off these emails on <a href="{ $url }">your welcome page</a>.
notice-failed-server-said = The mail server said:
# $name: the invitee's name (or address)
notice-failed-check-text = Check the address with { $name }. You can resend the invitation, or invite the right address, from your invitations page:
notice-failed-check-html = Check the address with { $name }. You can resend the invitation, or invite the right address, from <a href="{ $url }">your invitations page</a>.
