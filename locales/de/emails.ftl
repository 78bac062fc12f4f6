# Die E-Mails (templates/*.txt, *.html, *.subject.txt), förmlich („Sie“).
# Argumente wie in locales/en/emails.ftl; $expires ist Datum und Uhrzeit in Worten.

## Gemeinsam

greeting = Guten Tag,
greeting-name = Guten Tag { $name },

role-viewer = Leserechte
role-editor = Bearbeitungsrechte
role-owner = Eigentümerrechte

open-address = Oder öffnen Sie diese Adresse: { $url }
link-expires = Dieser Link kann nur einmal verwendet werden und ist gültig bis zum { $expires } (UTC).
new-link-expires = Dieser neue Link ersetzt alle früheren, kann nur einmal verwendet werden und ist gültig bis zum { $expires } (UTC).
ignore-if-unexpected = Falls Sie diese Einladung nicht erwartet haben, können Sie diese E-Mail einfach ignorieren.
not-accepted-yet = Sie haben die Einladung noch nicht angenommen.
choose-password = Passwort festlegen
choose-password-here = Legen Sie hier Ihr Passwort fest:
decline-text = Nicht für Sie bestimmt? Hier können Sie die Einladung ablehnen (und auf Wunsch keine weiteren erhalten):
decline-html = Nicht für Sie bestimmt? <a href="{ $url }">Einladung ablehnen</a> (auf Wunsch erhalten Sie dann keine weiteren).

## new_user

new-user-subject = { $inviter } hat Sie zu { $platform } eingeladen
new-user-intro = { $projects ->
        [0] { $inviter } ({ $email }) hat Sie zu { $platform } eingeladen.
        [one] { $inviter } ({ $email }) hat Sie zu { $platform } eingeladen, um folgendes Projekt einzusehen:
       *[other] { $inviter } ({ $email }) hat Sie zu { $platform } eingeladen, um folgende Projekte einzusehen:
    }
new-user-accept-button = Einladung annehmen
new-user-accept-here = Um die Einladung anzunehmen, legen Sie hier Ihr Passwort fest:

## project_access_changed

access-changed-subject = { $inviter } hat Ihren Projektzugriff auf { $platform } geändert
access-changed-intro = { $projects ->
        [one] { $inviter } ({ $email }) hat Ihnen auf { $platform } Zugriff auf folgendes Projekt gegeben:
       *[other] { $inviter } ({ $email }) hat Ihnen auf { $platform } Zugriff auf folgende Projekte gegeben:
    }
access-changed-password-text = Sie haben noch kein Passwort festgelegt. Legen Sie hier eines fest, um sich anzumelden:
access-changed-password-html = Sie haben noch kein Passwort festgelegt. <a href="{ $url }">Legen Sie hier eines fest, um sich anzumelden</a> ({ $url }).
access-changed-login-text = { $projects ->
        [one] Melden Sie sich an, um es zu sehen:
       *[other] Melden Sie sich an, um sie zu sehen:
    }
access-changed-login-html = { $projects ->
        [one] <a href="{ $url }">Melden Sie sich an, um es zu sehen</a>.
       *[other] <a href="{ $url }">Melden Sie sich an, um sie zu sehen</a>.
    }

## reminder, reminder_active, reminder_auto

reminder-subject = { $inviter } erinnert Sie daran, sich bei { $platform } anzumelden
reminder-intro = { $projects ->
        [0] { $inviter } ({ $email }) hat Sie zu { $platform } eingeladen.
        [one] { $inviter } ({ $email }) hat Sie zu { $platform } eingeladen, um folgendes Projekt einzusehen:
       *[other] { $inviter } ({ $email }) hat Sie zu { $platform } eingeladen, um folgende Projekte einzusehen:
    }
reminder-active-intro = { $projects ->
        [0] { $inviter } ({ $email }) bittet Sie, sich bei { $platform } anzumelden.
        [one] { $inviter } ({ $email }) bittet Sie, sich bei { $platform } anzumelden und sich folgendes Projekt anzusehen:
       *[other] { $inviter } ({ $email }) bittet Sie, sich bei { $platform } anzumelden und sich folgende Projekte anzusehen:
    }
log-on = Anmelden
reminder-auto-subject = Erinnerung: { $inviter } hat Sie zu { $platform } eingeladen
reminder-auto-intro = { $projects ->
        [0] Zur Erinnerung: { $inviter } ({ $email }) hat Sie zu { $platform } eingeladen.
        [one] Zur Erinnerung: { $inviter } ({ $email }) hat Sie zu { $platform } eingeladen, um folgendes Projekt einzusehen:
       *[other] Zur Erinnerung: { $inviter } ({ $email }) hat Sie zu { $platform } eingeladen, um folgende Projekte einzusehen:
    }

## bounced (an die einladende Person)

bounced-subject = Ihre Einladung an { $email } konnte nicht zugestellt werden
bounced-intro = Ihre Einladung an { $invitee } zu { $platform } konnte nicht zugestellt werden: { $reason }.
bounce-reason-no-such-address = Die Adresse existiert nicht
bounce-reason-mailbox-full = Das Postfach ist voll
bounce-reason-refused = Der empfangende Mailserver hat die Nachricht abgelehnt
bounce-reason-gave-up = Der Mailserver konnte die Nachricht auch nach mehreren Versuchen nicht annehmen
bounced-server-said = Der empfangende Mailserver meldete:
bounced-check-text = Bitte klären Sie die Adresse mit { $name } ab. Die Einladung bleibt auf Ihrer Einladungsseite, als „unzustellbar“ markiert:
bounced-check-html = Bitte klären Sie die Adresse mit { $name } ab. Die Einladung bleibt auf <a href="{ $url }">Ihrer Einladungsseite</a>, als „unzustellbar“ markiert.
bounced-no-reminders = An diese Adresse gehen keine automatischen Erinnerungen. Sobald die Adresse funktioniert, können Sie die Einladung von dieser Seite aus erneut senden oder stattdessen die richtige Adresse einladen.

## invitation_accepted, invitation_declined, invitation_failed: an die einladende Person
notice-accepted-subject = { $invitee } hat Ihre Einladung zu { $platform } angenommen
notice-accepted-intro = { $invitee } hat Ihre Einladung zu { $platform } am { $when } angenommen.
notice-declined-subject = { $invitee } hat Ihre Einladung zu { $platform } abgelehnt
notice-declined-intro = { $invitee } hat Ihre Einladung zu { $platform } am { $when } abgelehnt.
notice-declined-taken-back = Alle Zugriffsrechte, die die Einladung gewährt hatte, wurden wieder entzogen.
notice-projects = Die Einladung galt für:
notice-your-invitations-text = Ihre Einladungen:
notice-your-invitations-link = Ihre Einladungen
notice-turn-off-text = Sie können diese E-Mails auf Ihrer Willkommensseite abbestellen: { $url }
notice-turn-off-html = Sie können diese E-Mails auf <a href="{ $url }">Ihrer Willkommensseite</a> abbestellen.
notice-failed-server-said = Der Mailserver meldete:
notice-failed-check-text = Bitte prüfen Sie die Adresse mit { $name }. Auf Ihrer Einladungsseite können Sie die Einladung erneut senden oder die richtige Adresse einladen:
notice-failed-check-html = Bitte prüfen Sie die Adresse mit { $name }. Auf <a href="{ $url }">Ihrer Einladungsseite</a> können Sie die Einladung erneut senden oder die richtige Adresse einladen.
