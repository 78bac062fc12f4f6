# The web pages (templates/pages/*.html and the texts the page handlers write).
# A placeable such as { $platform } is filled in by the page; every value is escaped.

## The language switcher: each language is listed under its own name.
language-name = English
language-switcher = Language

## The frame of every page
nav-account = Account
nav-invite = Invite
nav-my-projects = My projects
nav-projects = Projects
nav-users = Users
nav-log-out = Log out

## Words several pages share
label-email = Email
label-password = Password
label-password-again = Password again
label-first-name = First name
label-last-name = Last name
label-name = Name
label-projects = Projects
label-role = Role
label-status = Status
label-actions = Actions
optional = (optional)
back-to-invite = Back to the invite page
have-an-account = Already have an account? Log in
no-project-yet = You have no project yet.
passwords-differ = The two passwords are not the same. Please type them again.
form-expired = This form has expired or was sent from another site. Please try again.
page-role-viewer = viewer
page-role-editor = editor
page-role-owner = owner
# A project with a role above viewer on the accept page: "Kinase screen (editor)".
project-with-role = { $project } ({ $role })

## Log in
login-title = Log in
login-submit = Log in

## Invite someone
invite-title = Invite someone
invite-send-reminder = Send Invite Reminder
invite-projects-hint = The projects where you are an editor or owner. Hold Ctrl (⌘ on a Mac) to choose several; choose none to invite to the platform alone.
invite-role-hint = On every chosen project. You may give at most your own role on a project; someone who already has a higher one keeps it.
label-invitee-language = Their language
invite-language-default = Default: { $name }
invite-language-hint = The invitation email and its reminders are written in this language.
invite-no-project = You are not an editor or owner of any project: you can invite people to the platform alone.
invite-send = Send Invite
invite-list-all = All invitations
invite-list-yours = Your invitations
invite-col-projects = Projects
invite-col-sent = Sent
invite-col-delivery = Delivery
invite-sent-by = by { $name }
invite-attempts = { $count } attempts
invite-resend = Resend
invite-resend-label = Resend the invitation to { $email }
invite-revoke = Revoke
invite-revoke-label = Revoke the invitation to { $email }
invite-more = More invitations
invite-newer = Newer
invite-older = Older
invite-none = No invitations yet.
no-such-invitation = There is no such invitation.
status-pending = pending
status-accepted = accepted
status-revoked = revoked
status-declined = declined
status-expired = expired
delivery-queued = queued
delivery-sent = sent
delivery-failed = failed

## Invite several people
bulk-title = Invite several people
bulk-projects-hint = Everyone on the list is invited to the projects chosen here; choose none to invite to the platform alone.
bulk-addresses = Addresses
bulk-addresses-hint-before = One address per line, or
bulk-addresses-hint-after = . At most 1,000 people.
bulk-roster-columns = email, first name, last name
bulk-file = Or a CSV file
bulk-file-hint = UTF-8, separated by , or ;. A first row naming the columns (email, first name, last name) is optional. A file is used instead of the addresses above.
bulk-preview = Preview
bulk-summary = { $valid } of { $rows } { $rows ->
        [one] row
       *[other] rows
    } will be sent{ $invalid ->
        [0] .
        [one] ; { $invalid } cannot be sent and is marked below.
       *[other] ; { $invalid } cannot be sent and are marked below.
    }
bulk-chosen = Projects: { $projects }
bulk-chosen-none = Projects: none (the platform alone)
bulk-col-line = Line
bulk-col-check = Check
bulk-invalid = invalid
bulk-ok = ok
bulk-send = Send { $count } { $count ->
        [one] invitation
       *[other] invitations
    }
bulk-results-title = Invitations sent
bulk-col-outcome = Outcome
bulk-download = Download the results (CSV)
bulk-too-large = The upload is larger than { $mib } MiB: split the list and send each part.
bulk-unreadable = The upload could not be read.
bulk-not-multipart = This form takes an upload (multipart/form-data).
bulk-list-unreadable = The list cannot be read: { $error }.

## Accept an invitation
accept-title = Accept your invitation
accept-heading = Join { $platform }
# After the inviter's name (and address): "Ada Lovelace (ada@lab.example) invited you to these projects:"
accept-invited-you-projects = invited you to these projects:
accept-invited-you-platform = invited you to the platform.
accept-choose-password = Choose a password of at least { $min } characters to activate your account.
accept-submit = Activate my account
accept-not-for-you = Not for you?
accept-decline = Decline

## A link that no longer works (410)
gone-title = This invitation link no longer works
gone-explanation = It has expired, been used already, or been revoked.
gone-ask = Ask the person who invited you for a new invitation.
# Around the inviter's name and address: "Ask Ada Lovelace (ada@lab.example) for a new invitation."
gone-ask-inviter-before = Ask
gone-ask-inviter-after = for a new invitation.

## A link replaced by a newer email (410)
superseded-title = This link was replaced by a newer one
# Around the date: "A newer email with a new link was sent to you on 31 January 2026 09:05. Only the link in the newest email works."
superseded-sent-on-before = A newer email with a new link was sent to you on
superseded-sent-on-after = . Only the link in the newest email works.
superseded-offer = Can't find it? We can send a new link to the address this invitation was sent to.
superseded-email-me = Email me a new link
superseded-queued = A new link is on its way to the address this invitation was sent to. Only the link in that email works.
superseded-limited = Too many emails were sent to this address lately, so no new link was sent. Please try again later.

## Decline an invitation
decline-title = Decline the invitation
# After the inviter's name (and address).
decline-invited-projects = invited { $email } to { $platform }, to these projects:
decline-invited-platform = invited { $email } to { $platform }.
decline-explanation = Declining removes the access this invitation gave, and its link stops working.
decline-block-future = Don't send me invitations from { $platform } again
decline-confirm = Decline the invitation
decline-accept-instead = Accept it instead
declined-title = Invitation declined
declined-outcome = You declined the invitation. Its link no longer works.
declined-suppressed = { $platform } will not send you invitations again. If you change your mind, ask the person who invited you to contact the platform's administrator.

## Unsubscribe (the email's List-Unsubscribe link)
unsubscribe-title = Unsubscribe
unsubscribe-question = Stop invitations from { $platform } to { $email }? A pending invitation is declined, and no more invitations will be sent to this address.
unsubscribe-submit = Unsubscribe
unsubscribed-title = Unsubscribed
unsubscribed-outcome = You are unsubscribed: no more invitations will be sent to this address.
unsubscribed-nothing = There is nothing to unsubscribe from at this link.
unsubscribe-not-one-click = A one-click unsubscribe carries the form field List-Unsubscribe=One-Click.

## Welcome
welcome-title = Welcome
welcome-heading = Welcome, { $name }
welcome-active = Your account on { $platform } is active.
welcome-your-projects = Your projects
welcome-invite-colleague = Invite a colleague
welcome-email-settings = Email settings
welcome-notify-outcomes = Email me when someone accepts or declines my invitation
welcome-notify-failures = You are always told when an invitation could not be delivered.
welcome-save = Save
welcome-settings-saved = Your email settings are saved.

## First-run setup
setup-title = Set up
setup-heading = Set up { $platform }
setup-intro = Nobody has an account in { $ns } yet. Create its first administrator (a superuser, who may invite people to every project).
setup-password-hint = (at least { $min } characters)
setup-submit = Create administrator
setup-gone-title = This setup link no longer works
setup-gone-explanation = The first administrator has been created already, or the link expired.
setup-gone-ask = Log in with an existing account. While there is still no user, restarting the service prints a new setup link.

## Projects
projects-title = Projects
projects-col-project = Project
projects-col-your-role = Your role
projects-no-role = none (superuser)
projects-create = Create a project
projects-you-become-owner = You become its owner.
projects-create-submit = Create project
projects-created = The project is created; you are its owner.
project-all = All projects
project-members = Members
project-you = (you)
project-role-of = Role of { $email }
project-change = Change
project-change-label = Change the role of { $email }
project-remove = Remove
project-remove-label = Remove { $email } from the project
project-no-members = This project has no members.
project-invite-heading = Invite someone to { $project }
project-invite-role-hint = Their role on this project: at most your own. Someone who already has a higher one keeps it.
project-role-changed = The role is changed.
project-member-removed = The member is removed from the project.
project-members-refused = Only the project's editors, owners and superusers can see its members.

## Users
users-title = Users
users-hint = A deactivated user cannot log in: its sessions end, and its API keys and invitation links stop working until it is activated again.
users-superuser = (superuser)
users-activate = Activate
users-activate-label = Activate { $email }
users-deactivate = Deactivate
users-deactivate-label = Deactivate { $email }
users-more = More users
users-previous = Previous
users-next = Next
users-refused = Only a superuser can see the users.
users-change-refused = Only a superuser can change users.
no-such-user = There is no such user.
users-not-yourself = You cannot deactivate yourself: ask another superuser.
account-active = active
account-pending = pending
account-deactivated = deactivated

## Error pages
error-request-id = Request id:
error-back = Back to the invitations
error-title = Error
error-title-400 = Bad Request
error-title-401 = Unauthorized
error-title-403 = Forbidden
error-title-404 = Not Found
error-title-405 = Method Not Allowed
error-title-409 = Conflict
error-title-410 = Gone
error-title-413 = Payload Too Large
error-title-415 = Unsupported Media Type
error-title-422 = Unprocessable Entity
error-title-429 = Too Many Requests
error-title-500 = Internal Server Error
error-title-503 = Service Unavailable
error-title-unavailable = Unavailable
error-no-such-page = There is no such page.
error-html-form = This page takes an HTML form.
error-form-unreadable = The form could not be read.
error-form-too-large = The form is larger than { $limit } bytes.
error-unavailable = the service is temporarily unavailable, try again shortly
error-internal = an internal error occurred
delivery-none = none
users-done-activated = { $email } is activated.
users-done-deactivated = { $email } is deactivated.
