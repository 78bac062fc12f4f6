# Die Webseiten (templates/pages/*.html und die Texte der Seiten-Handler), auf Deutsch.

## Sprachauswahl: jede Sprache steht unter ihrem eigenen Namen.
language-name = Deutsch
language-switcher = Sprache

## Rahmen jeder Seite
nav-account = Konto
nav-invite = Einladen
nav-my-projects = Meine Projekte
nav-projects = Projekte
nav-users = Benutzer
nav-log-out = Abmelden

## Gemeinsame Wörter
label-email = E-Mail-Adresse
label-password = Passwort
label-password-again = Passwort wiederholen
label-first-name = Vorname
label-last-name = Nachname
label-name = Name
label-projects = Projekte
label-role = Rolle
label-status = Status
label-actions = Aktionen
optional = (optional)
back-to-invite = Zurück zur Einladungsseite
have-an-account = Sie haben bereits ein Konto? Melden Sie sich an
no-project-yet = Sie haben noch kein Projekt.
passwords-differ = Die beiden Passwörter stimmen nicht überein. Bitte geben Sie sie erneut ein.
form-expired = Dieses Formular ist abgelaufen oder wurde von einer anderen Website gesendet. Bitte versuchen Sie es erneut.
page-role-viewer = Betrachter
page-role-editor = Bearbeiter
page-role-owner = Eigentümer
project-with-role = { $project } ({ $role })

## Anmelden
login-title = Anmelden
login-submit = Anmelden

## Jemanden einladen
invite-title = Jemanden einladen
invite-send-reminder = Erinnerung an die Einladung senden
invite-projects-hint = Die Projekte, in denen Sie Bearbeiter oder Eigentümer sind. Halten Sie Strg (⌘ auf dem Mac) gedrückt, um mehrere auszuwählen; wählen Sie keines, um nur auf die Plattform einzuladen.
invite-role-hint = Gilt für jedes ausgewählte Projekt. Sie können höchstens Ihre eigene Rolle in einem Projekt vergeben; wer bereits eine höhere Rolle hat, behält sie.
label-invitee-language = Sprache der Einladung
invite-language-default = Standard: { $name }
invite-language-hint = In dieser Sprache werden die Einladungs-E-Mail und ihre Erinnerungen geschrieben.
invite-no-project = Sie sind in keinem Projekt Bearbeiter oder Eigentümer: Sie können Personen nur auf die Plattform einladen.
invite-send = Einladung senden
invite-list-all = Alle Einladungen
invite-list-yours = Ihre Einladungen
invite-col-projects = Projekte
invite-col-sent = Gesendet
invite-col-delivery = Zustellung
invite-sent-by = von { $name }
invite-attempts = { $count } Versuche
invite-resend = Erneut senden
invite-resend-label = Die Einladung an { $email } erneut senden
invite-revoke = Widerrufen
invite-revoke-label = Die Einladung an { $email } widerrufen
invite-more = Weitere Einladungen
invite-newer = Neuere
invite-older = Ältere
invite-none = Noch keine Einladungen.
no-such-invitation = Diese Einladung gibt es nicht.
status-pending = offen
status-accepted = angenommen
status-revoked = widerrufen
status-declined = abgelehnt
status-expired = abgelaufen
delivery-queued = in der Warteschlange
delivery-sent = gesendet
delivery-failed = fehlgeschlagen

## Mehrere Personen einladen
bulk-title = Mehrere Personen einladen
bulk-projects-hint = Alle Personen auf der Liste werden zu den hier ausgewählten Projekten eingeladen; wählen Sie keines, um nur auf die Plattform einzuladen.
bulk-addresses = Adressen
bulk-addresses-hint-before = Eine Adresse pro Zeile, oder
bulk-addresses-hint-after = . Höchstens 1.000 Personen.
bulk-roster-columns = E-Mail, Vorname, Nachname
bulk-file = Oder eine CSV-Datei
bulk-file-hint = UTF-8, getrennt durch , oder ;. Eine erste Zeile mit den Spaltennamen (email, first name, last name) ist optional. Eine Datei wird anstelle der obigen Adressen verwendet.
bulk-preview = Vorschau
bulk-summary = { $valid } von { $rows } { $rows ->
        [one] Zeile
       *[other] Zeilen
    } { $valid ->
        [one] wird
       *[other] werden
    } gesendet{ $invalid ->
        [0] .
        [one] ; { $invalid } kann nicht gesendet werden und ist unten markiert.
       *[other] ; { $invalid } können nicht gesendet werden und sind unten markiert.
    }
bulk-chosen = Projekte: { $projects }
bulk-chosen-none = Projekte: keine (nur die Plattform)
bulk-col-line = Zeile
bulk-col-check = Prüfung
bulk-invalid = ungültig
bulk-ok = in Ordnung
bulk-send = { $count ->
        [one] { $count } Einladung senden
       *[other] { $count } Einladungen senden
    }
bulk-results-title = Gesendete Einladungen
bulk-col-outcome = Ergebnis
bulk-download = Ergebnisse herunterladen (CSV)
bulk-too-large = Die hochgeladene Datei ist größer als { $mib } MiB: Teilen Sie die Liste auf und senden Sie jeden Teil einzeln.
bulk-unreadable = Die hochgeladene Datei konnte nicht gelesen werden.
bulk-not-multipart = Dieses Formular erwartet einen Upload (multipart/form-data).
bulk-list-unreadable = Die Liste kann nicht gelesen werden: { $error }.

## Eine Einladung annehmen
accept-title = Ihre Einladung annehmen
accept-heading = Willkommen bei { $platform }
accept-invited-you-projects = hat Sie zu diesen Projekten eingeladen:
accept-invited-you-platform = hat Sie auf die Plattform eingeladen.
accept-choose-password = Wählen Sie ein Passwort mit mindestens { $min } Zeichen, um Ihr Konto zu aktivieren.
accept-submit = Mein Konto aktivieren
accept-not-for-you = Nicht für Sie bestimmt?
accept-decline = Ablehnen

## Ein Link, der nicht mehr funktioniert (410)
gone-title = Dieser Einladungslink funktioniert nicht mehr
gone-explanation = Er ist abgelaufen, wurde bereits verwendet oder wurde widerrufen.
gone-ask = Bitten Sie die Person, die Sie eingeladen hat, um eine neue Einladung.
gone-ask-inviter-before = Bitten Sie
gone-ask-inviter-after = um eine neue Einladung.

## Ein durch eine neuere E-Mail ersetzter Link (410)
superseded-title = Dieser Link wurde durch einen neueren ersetzt
superseded-sent-on-before = Am
superseded-sent-on-after = {" "}wurde Ihnen eine neuere E-Mail mit einem neuen Link gesendet. Nur der Link in der neuesten E-Mail funktioniert.
superseded-offer = Sie finden sie nicht? Wir können einen neuen Link an die Adresse senden, an die diese Einladung ging.
superseded-email-me = Neuen Link per E-Mail senden
superseded-queued = Ein neuer Link ist unterwegs an die Adresse, an die diese Einladung ging. Nur der Link in dieser E-Mail funktioniert.
superseded-limited = An diese Adresse wurden in letzter Zeit zu viele E-Mails gesendet, daher wurde kein neuer Link verschickt. Bitte versuchen Sie es später erneut.

## Eine Einladung ablehnen
decline-title = Einladung ablehnen
decline-invited-projects = hat { $email } zu { $platform } eingeladen, und zwar zu diesen Projekten:
decline-invited-platform = hat { $email } zu { $platform } eingeladen.
decline-explanation = Wenn Sie ablehnen, wird der Zugang entfernt, den diese Einladung gewährt hat, und ihr Link funktioniert nicht mehr.
decline-block-future = Senden Sie mir keine Einladungen von { $platform } mehr
decline-confirm = Einladung ablehnen
decline-accept-instead = Doch lieber annehmen
declined-title = Einladung abgelehnt
declined-outcome = Sie haben die Einladung abgelehnt. Ihr Link funktioniert nicht mehr.
declined-suppressed = { $platform } wird Ihnen keine Einladungen mehr senden. Falls Sie es sich anders überlegen, bitten Sie die Person, die Sie eingeladen hat, sich an die Administration der Plattform zu wenden.

## Abmelden vom Empfang (List-Unsubscribe-Link der E-Mail)
unsubscribe-title = Abbestellen
unsubscribe-question = Keine Einladungen von { $platform } mehr an { $email } senden? Eine offene Einladung wird abgelehnt, und an diese Adresse werden keine Einladungen mehr gesendet.
unsubscribe-submit = Abbestellen
unsubscribed-title = Abbestellt
unsubscribed-outcome = Sie haben abbestellt: An diese Adresse werden keine Einladungen mehr gesendet.
unsubscribed-nothing = Über diesen Link gibt es nichts abzubestellen.
unsubscribe-not-one-click = Eine Abbestellung mit einem Klick enthält das Formularfeld List-Unsubscribe=One-Click.

## Willkommen
welcome-title = Willkommen
welcome-heading = Willkommen, { $name }
welcome-active = Ihr Konto bei { $platform } ist aktiv.
welcome-your-projects = Ihre Projekte
welcome-invite-colleague = Eine Kollegin oder einen Kollegen einladen
welcome-email-settings = E-Mail-Einstellungen
welcome-notify-outcomes = Mir eine E-Mail senden, wenn jemand meine Einladung annimmt oder ablehnt
welcome-notify-failures = Wenn eine Einladung nicht zugestellt werden kann, werden Sie immer benachrichtigt.
welcome-save = Speichern
welcome-settings-saved = Ihre E-Mail-Einstellungen wurden gespeichert.

## Ersteinrichtung
setup-title = Einrichtung
setup-heading = { $platform } einrichten
setup-intro = In { $ns } hat noch niemand ein Konto. Legen Sie die erste Administratorin oder den ersten Administrator an (einen Superuser, der Personen zu jedem Projekt einladen darf).
setup-password-hint = (mindestens { $min } Zeichen)
setup-submit = Administrator anlegen
setup-gone-title = Dieser Einrichtungslink funktioniert nicht mehr
setup-gone-explanation = Die erste Administratorin oder der erste Administrator wurde bereits angelegt, oder der Link ist abgelaufen.
setup-gone-ask = Melden Sie sich mit einem bestehenden Konto an. Solange es noch keinen Benutzer gibt, gibt ein Neustart des Dienstes einen neuen Einrichtungslink aus.

## Projekte
projects-title = Projekte
projects-col-project = Projekt
projects-col-your-role = Ihre Rolle
projects-no-role = keine (Superuser)
projects-create = Ein Projekt anlegen
projects-you-become-owner = Sie werden sein Eigentümer.
projects-create-submit = Projekt anlegen
projects-created = Das Projekt ist angelegt; Sie sind sein Eigentümer.
project-all = Alle Projekte
project-members = Mitglieder
project-you = (Sie)
project-role-of = Rolle von { $email }
project-change = Ändern
project-change-label = Die Rolle von { $email } ändern
project-remove = Entfernen
project-remove-label = { $email } aus dem Projekt entfernen
project-no-members = Dieses Projekt hat keine Mitglieder.
project-invite-heading = Jemanden zu { $project } einladen
project-invite-role-hint = Die Rolle in diesem Projekt: höchstens Ihre eigene. Wer bereits eine höhere hat, behält sie.
project-role-changed = Die Rolle wurde geändert.
project-member-removed = Das Mitglied wurde aus dem Projekt entfernt.
project-members-refused = Nur die Bearbeiter, Eigentümer und Superuser eines Projekts können seine Mitglieder sehen.

## Benutzer
users-title = Benutzer
users-hint = Ein deaktivierter Benutzer kann sich nicht anmelden: Seine Sitzungen enden, und seine API-Schlüssel und Einladungslinks funktionieren nicht mehr, bis er wieder aktiviert wird.
users-superuser = (Superuser)
users-activate = Aktivieren
users-activate-label = { $email } aktivieren
users-deactivate = Deaktivieren
users-deactivate-label = { $email } deaktivieren
users-more = Weitere Benutzer
users-previous = Zurück
users-next = Weiter
users-refused = Nur ein Superuser kann die Benutzer sehen.
users-change-refused = Nur ein Superuser kann Benutzer ändern.
no-such-user = Diesen Benutzer gibt es nicht.
users-not-yourself = Sie können sich nicht selbst deaktivieren: Bitten Sie einen anderen Superuser darum.
account-active = aktiv
account-pending = ausstehend
account-deactivated = deaktiviert

## Fehlerseiten
error-request-id = Anfrage-ID:
error-back = Zurück zu den Einladungen
error-title = Fehler
error-title-400 = Ungültige Anfrage
error-title-401 = Nicht angemeldet
error-title-403 = Zugriff verweigert
error-title-404 = Nicht gefunden
error-title-405 = Methode nicht erlaubt
error-title-409 = Konflikt
error-title-410 = Nicht mehr verfügbar
error-title-413 = Zu groß
error-title-415 = Nicht unterstütztes Format
error-title-422 = Nicht verarbeitbar
error-title-429 = Zu viele Anfragen
error-title-500 = Interner Fehler
error-title-503 = Dienst nicht verfügbar
error-title-unavailable = Nicht verfügbar
error-no-such-page = Diese Seite gibt es nicht.
error-html-form = Diese Seite erwartet ein HTML-Formular.
error-form-unreadable = Das Formular konnte nicht gelesen werden.
error-form-too-large = Das Formular ist größer als { $limit } Bytes.
error-unavailable = Der Dienst ist vorübergehend nicht verfügbar, bitte versuchen Sie es gleich noch einmal
error-internal = Ein interner Fehler ist aufgetreten
delivery-none = keine
users-done-activated = { $email } ist aktiviert.
users-done-deactivated = { $email } ist deaktiviert.
