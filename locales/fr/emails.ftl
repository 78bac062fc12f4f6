# Les courriels (templates/*.txt, *.html, *.subject.txt), au vouvoiement.
# Arguments comme dans locales/en/emails.ftl ; $expires est la date et l’heure en toutes lettres.
# Espace insécable avant « : », « ? » et à l’intérieur des guillemets.

## Commun

greeting = Bonjour,
greeting-name = Bonjour { $name },

role-viewer = lecture
role-editor = modification
role-owner = propriétaire

open-address = Ou ouvrez cette adresse : { $url }
link-expires = Ce lien ne fonctionne qu’une fois et expire le { $expires } (UTC).
new-link-expires = Ce nouveau lien remplace les précédents, ne fonctionne qu’une fois et expire le { $expires } (UTC).
ignore-if-unexpected = Si vous n’attendiez pas cette invitation, vous pouvez ignorer ce message.
not-accepted-yet = Vous n’avez pas encore accepté l’invitation.
choose-password = Choisir votre mot de passe
choose-password-here = Choisissez votre mot de passe ici :
decline-text = Cette invitation ne vous concerne pas ? Vous pouvez la refuser (et demander à ne plus en recevoir) :
decline-html = Cette invitation ne vous concerne pas ? <a href="{ $url }">Refuser l’invitation</a> (vous pouvez aussi demander à ne plus en recevoir).

## new_user

new-user-subject = { $inviter } vous invite à rejoindre { $platform }
new-user-intro = { $projects ->
        [0] { $inviter } ({ $email }) vous invite à rejoindre { $platform }.
        [one] { $inviter } ({ $email }) vous invite à rejoindre { $platform } pour consulter le projet suivant :
       *[other] { $inviter } ({ $email }) vous invite à rejoindre { $platform } pour consulter les projets suivants :
    }
new-user-accept-button = Accepter l’invitation
new-user-accept-here = Pour accepter, choisissez votre mot de passe ici :

## project_access_changed

access-changed-subject = { $inviter } a modifié vos accès aux projets sur { $platform }
access-changed-intro = { $projects ->
        [one] { $inviter } ({ $email }) vous a donné accès, sur { $platform }, au projet suivant :
       *[other] { $inviter } ({ $email }) vous a donné accès, sur { $platform }, aux projets suivants :
    }
access-changed-password-text = Vous n’avez pas encore choisi de mot de passe. Choisissez-en un ici pour vous connecter :
access-changed-password-html = Vous n’avez pas encore choisi de mot de passe. <a href="{ $url }">Choisissez-en un ici pour vous connecter</a> ({ $url }).
access-changed-login-text = { $projects ->
        [one] Connectez-vous pour le consulter :
       *[other] Connectez-vous pour les consulter :
    }
access-changed-login-html = { $projects ->
        [one] <a href="{ $url }">Connectez-vous pour le consulter</a>.
       *[other] <a href="{ $url }">Connectez-vous pour les consulter</a>.
    }

## reminder, reminder_active, reminder_auto

reminder-subject = { $inviter } vous rappelle de vous connecter à { $platform }
reminder-intro = { $projects ->
        [0] { $inviter } ({ $email }) vous a adressé une invitation à rejoindre { $platform }.
        [one] { $inviter } ({ $email }) vous a adressé une invitation à rejoindre { $platform } pour consulter le projet suivant :
       *[other] { $inviter } ({ $email }) vous a adressé une invitation à rejoindre { $platform } pour consulter les projets suivants :
    }
reminder-active-intro = { $projects ->
        [0] { $inviter } ({ $email }) vous invite à vous connecter à { $platform }.
        [one] { $inviter } ({ $email }) vous invite à vous connecter à { $platform } pour consulter le projet suivant :
       *[other] { $inviter } ({ $email }) vous invite à vous connecter à { $platform } pour consulter les projets suivants :
    }
log-on = Se connecter
reminder-auto-subject = Rappel : { $inviter } vous invite à rejoindre { $platform }
reminder-auto-intro = { $projects ->
        [0] Petit rappel : { $inviter } ({ $email }) vous a adressé une invitation à rejoindre { $platform }.
        [one] Petit rappel : { $inviter } ({ $email }) vous a adressé une invitation à rejoindre { $platform } pour consulter le projet suivant :
       *[other] Petit rappel : { $inviter } ({ $email }) vous a adressé une invitation à rejoindre { $platform } pour consulter les projets suivants :
    }

## bounced (à la personne qui a invité)

bounced-subject = Votre invitation à { $email } n’a pas pu être remise
bounced-intro = Votre invitation à { $invitee } sur { $platform } n’a pas pu être remise : { $reason }.
bounce-reason-no-such-address = l’adresse n’existe pas
bounce-reason-mailbox-full = la boîte aux lettres est pleine
bounce-reason-refused = le serveur de messagerie du destinataire a refusé le message
bounce-reason-gave-up = le serveur de messagerie n’a pas pu accepter le message, même après plusieurs tentatives
bounced-server-said = Le serveur de messagerie du destinataire a répondu :
bounced-check-text = Vérifiez l’adresse auprès de { $name }. L’invitation reste sur votre page d’invitations, marquée « non remise » :
bounced-check-html = Vérifiez l’adresse auprès de { $name }. L’invitation reste sur <a href="{ $url }">votre page d’invitations</a>, marquée « non remise ».
bounced-no-reminders = Aucun rappel automatique n’est envoyé à cette adresse. Vous pourrez renvoyer l’invitation depuis cette page une fois l’adresse corrigée, ou inviter la bonne adresse à la place.

## invitation_accepted, invitation_declined, invitation_failed : à la personne qui a invité
notice-accepted-subject = { $invitee } a accepté votre invitation à { $platform }
notice-accepted-intro = { $invitee } a accepté votre invitation à { $platform } le { $when }.
notice-declined-subject = { $invitee } a décliné votre invitation à { $platform }
notice-declined-intro = { $invitee } a décliné votre invitation à { $platform } le { $when }.
notice-declined-taken-back = Tous les accès que l’invitation avait accordés ont été retirés.
notice-projects = L’invitation portait sur :
notice-your-invitations-text = Vos invitations :
notice-your-invitations-link = Vos invitations
notice-turn-off-text = Vous pouvez désactiver ces e-mails sur votre page d’accueil : { $url }
notice-turn-off-html = Vous pouvez désactiver ces e-mails sur <a href="{ $url }">votre page d’accueil</a>.
notice-failed-server-said = Le serveur de messagerie a répondu :
notice-failed-check-text = Vérifiez l’adresse auprès de { $name }. Depuis votre page d’invitations, vous pouvez renvoyer l’invitation ou inviter la bonne adresse :
notice-failed-check-html = Vérifiez l’adresse auprès de { $name }. Depuis <a href="{ $url }">votre page d’invitations</a>, vous pouvez renvoyer l’invitation ou inviter la bonne adresse.
