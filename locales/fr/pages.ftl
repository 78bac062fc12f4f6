# Les pages web (templates/pages/*.html et les textes des gestionnaires de pages), en français.

## Sélecteur de langue : chaque langue figure sous son propre nom.
language-name = Français
language-switcher = Langue

## Cadre de chaque page
nav-account = Compte
nav-invite = Inviter
nav-my-projects = Mes projets
nav-projects = Projets
nav-users = Utilisateurs
nav-log-out = Se déconnecter

## Mots communs
label-email = Adresse e-mail
label-password = Mot de passe
label-password-again = Confirmez le mot de passe
label-first-name = Prénom
label-last-name = Nom
label-name = Nom
label-projects = Projets
label-role = Rôle
label-status = Statut
label-actions = Actions
optional = (facultatif)
back-to-invite = Retour à la page d’invitation
have-an-account = Vous avez déjà un compte ? Connectez-vous
no-project-yet = Vous n’avez encore aucun projet.
passwords-differ = Les deux mots de passe ne sont pas identiques. Veuillez les saisir à nouveau.
form-expired = Ce formulaire a expiré ou a été envoyé depuis un autre site. Veuillez réessayer.
page-role-viewer = lecteur
page-role-editor = éditeur
page-role-owner = propriétaire
project-with-role = { $project } ({ $role })

## Connexion
login-title = Connexion
login-submit = Se connecter

## Inviter quelqu’un
invite-title = Inviter quelqu’un
invite-send-reminder = Envoyer un rappel d’invitation
invite-projects-hint = Les projets dont vous êtes éditeur ou propriétaire. Maintenez Ctrl (⌘ sur Mac) pour en choisir plusieurs ; n’en choisissez aucun pour inviter sur la plateforme seule.
invite-role-hint = Pour chaque projet choisi. Vous pouvez attribuer au plus votre propre rôle dans un projet ; une personne qui a déjà un rôle plus élevé le conserve.
label-invitee-language = Langue de l’invitation
invite-language-default = Par défaut : { $name }
invite-language-hint = L’e-mail d’invitation et ses rappels sont rédigés dans cette langue.
invite-no-project = Vous n’êtes éditeur ou propriétaire d’aucun projet : vous pouvez seulement inviter des personnes sur la plateforme.
invite-send = Envoyer l’invitation
invite-list-all = Toutes les invitations
invite-list-yours = Vos invitations
invite-col-projects = Projets
invite-col-sent = Envoyée
invite-col-delivery = Distribution
invite-sent-by = par { $name }
invite-attempts = { $count } tentatives
invite-resend = Renvoyer
invite-resend-label = Renvoyer l’invitation à { $email }
invite-revoke = Révoquer
invite-revoke-label = Révoquer l’invitation à { $email }
invite-more = Plus d’invitations
invite-newer = Plus récentes
invite-older = Plus anciennes
invite-none = Aucune invitation pour l’instant.
no-such-invitation = Cette invitation n’existe pas.
status-pending = en attente
status-accepted = acceptée
status-revoked = révoquée
status-declined = refusée
status-expired = expirée
delivery-queued = en file d’attente
delivery-sent = envoyée
delivery-failed = échec

## Inviter plusieurs personnes
bulk-title = Inviter plusieurs personnes
bulk-projects-hint = Toutes les personnes de la liste sont invitées aux projets choisis ici ; n’en choisissez aucun pour inviter sur la plateforme seule.
bulk-addresses = Adresses
bulk-addresses-hint-before = Une adresse par ligne, ou
bulk-addresses-hint-after = . 1 000 personnes au plus.
bulk-roster-columns = e-mail, prénom, nom
bulk-file = Ou un fichier CSV
bulk-file-hint = UTF-8, séparé par , ou ;. Une première ligne nommant les colonnes (email, first name, last name) est facultative. Un fichier remplace les adresses saisies ci-dessus.
bulk-preview = Aperçu
bulk-summary = { $valid } { $valid ->
        [one] ligne sur { $rows } sera envoyée
       *[other] lignes sur { $rows } seront envoyées
    }{ $invalid ->
        [0] .
        [one]  ; { $invalid } ne peut pas être envoyée et est signalée ci-dessous.
       *[other]  ; { $invalid } ne peuvent pas être envoyées et sont signalées ci-dessous.
    }
bulk-chosen = Projets : { $projects }
bulk-chosen-none = Projets : aucun (la plateforme seule)
bulk-col-line = Ligne
bulk-col-check = Vérification
bulk-invalid = invalide
bulk-ok = ok
bulk-send = { $count ->
        [one] Envoyer { $count } invitation
       *[other] Envoyer { $count } invitations
    }
bulk-results-title = Invitations envoyées
bulk-col-outcome = Résultat
bulk-download = Télécharger les résultats (CSV)
bulk-too-large = Le fichier envoyé dépasse { $mib } Mio : découpez la liste et envoyez chaque partie séparément.
bulk-unreadable = Le fichier envoyé n’a pas pu être lu.
bulk-not-multipart = Ce formulaire attend un fichier (multipart/form-data).
bulk-list-unreadable = La liste ne peut pas être lue : { $error }.

## Accepter une invitation
accept-title = Acceptez votre invitation
accept-heading = Rejoignez { $platform }
accept-invited-you-projects = vous a invité(e) aux projets suivants :
accept-invited-you-platform = vous a invité(e) sur la plateforme.
accept-choose-password = Choisissez un mot de passe d’au moins { $min } caractères pour activer votre compte.
accept-submit = Activer mon compte
accept-not-for-you = Cette invitation ne vous concerne pas ?
accept-decline = Refuser

## Un lien qui ne fonctionne plus (410)
gone-title = Ce lien d’invitation ne fonctionne plus
gone-explanation = Il a expiré, a déjà été utilisé ou a été révoqué.
gone-ask = Demandez une nouvelle invitation à la personne qui vous a invité(e).
gone-ask-inviter-before = Demandez à
gone-ask-inviter-after = une nouvelle invitation.

## Un lien remplacé par un e-mail plus récent (410)
superseded-title = Ce lien a été remplacé par un lien plus récent
superseded-sent-on-before = Un e-mail plus récent contenant un nouveau lien vous a été envoyé le
superseded-sent-on-after = . Seul le lien du dernier e-mail fonctionne.
superseded-offer = Vous ne le trouvez pas ? Nous pouvons envoyer un nouveau lien à l’adresse à laquelle cette invitation a été envoyée.
superseded-email-me = M’envoyer un nouveau lien
superseded-queued = Un nouveau lien est en route vers l’adresse à laquelle cette invitation a été envoyée. Seul le lien de cet e-mail fonctionne.
superseded-limited = Trop d’e-mails ont été envoyés récemment à cette adresse ; aucun nouveau lien n’a donc été envoyé. Veuillez réessayer plus tard.

## Refuser une invitation
decline-title = Refuser l’invitation
decline-invited-projects = a invité { $email } sur { $platform }, aux projets suivants :
decline-invited-platform = a invité { $email } sur { $platform }.
decline-explanation = Refuser supprime les accès que cette invitation accordait, et son lien cesse de fonctionner.
decline-block-future = Ne plus m’envoyer d’invitations de { $platform }
decline-confirm = Refuser l’invitation
decline-accept-instead = L’accepter plutôt
declined-title = Invitation refusée
declined-outcome = Vous avez refusé l’invitation. Son lien ne fonctionne plus.
declined-suppressed = { $platform } ne vous enverra plus d’invitations. Si vous changez d’avis, demandez à la personne qui vous a invité(e) de contacter l’administrateur de la plateforme.

## Désinscription (lien List-Unsubscribe de l’e-mail)
unsubscribe-title = Se désinscrire
unsubscribe-question = Ne plus recevoir d’invitations de { $platform } à l’adresse { $email } ? Une invitation en attente est refusée, et plus aucune invitation ne sera envoyée à cette adresse.
unsubscribe-submit = Se désinscrire
unsubscribed-title = Désinscription effectuée
unsubscribed-outcome = Vous êtes désinscrit(e) : plus aucune invitation ne sera envoyée à cette adresse.
unsubscribed-nothing = Il n’y a rien à désinscrire avec ce lien.
unsubscribe-not-one-click = Une désinscription en un clic contient le champ de formulaire List-Unsubscribe=One-Click.

## Bienvenue
welcome-title = Bienvenue
welcome-heading = Bienvenue, { $name }
welcome-active = Votre compte sur { $platform } est actif.
welcome-your-projects = Vos projets
welcome-invite-colleague = Inviter un collègue
welcome-email-settings = Préférences d’e-mail
welcome-notify-outcomes = M’envoyer un e-mail quand quelqu’un accepte ou décline mon invitation
welcome-notify-failures = Vous êtes toujours prévenu lorsqu’une invitation n’a pas pu être remise.
welcome-save = Enregistrer
welcome-settings-saved = Vos préférences d’e-mail ont été enregistrées.

## Première installation
setup-title = Installation
setup-heading = Installer { $platform }
setup-intro = Personne n’a encore de compte dans { $ns }. Créez son premier administrateur (un superutilisateur, qui peut inviter des personnes à tous les projets).
setup-password-hint = (au moins { $min } caractères)
setup-submit = Créer l’administrateur
setup-gone-title = Ce lien d’installation ne fonctionne plus
setup-gone-explanation = Le premier administrateur a déjà été créé, ou le lien a expiré.
setup-gone-ask = Connectez-vous avec un compte existant. Tant qu’il n’y a aucun utilisateur, un redémarrage du service affiche un nouveau lien d’installation.

## Projets
projects-title = Projets
projects-col-project = Projet
projects-col-your-role = Votre rôle
projects-no-role = aucun (superutilisateur)
projects-create = Créer un projet
projects-you-become-owner = Vous en devenez le propriétaire.
projects-create-submit = Créer le projet
projects-created = Le projet est créé ; vous en êtes le propriétaire.
project-all = Tous les projets
project-members = Membres
project-you = (vous)
project-role-of = Rôle de { $email }
project-change = Modifier
project-change-label = Modifier le rôle de { $email }
project-remove = Retirer
project-remove-label = Retirer { $email } du projet
project-no-members = Ce projet n’a aucun membre.
project-invite-heading = Inviter quelqu’un à { $project }
project-invite-role-hint = Son rôle dans ce projet : au plus le vôtre. Une personne qui a déjà un rôle plus élevé le conserve.
project-role-changed = Le rôle a été modifié.
project-member-removed = Le membre a été retiré du projet.
project-members-refused = Seuls les éditeurs, les propriétaires et les superutilisateurs d’un projet peuvent en voir les membres.

## Utilisateurs
users-title = Utilisateurs
users-hint = Un utilisateur désactivé ne peut pas se connecter : ses sessions prennent fin, et ses clés d’API et liens d’invitation cessent de fonctionner jusqu’à sa réactivation.
users-superuser = (superutilisateur)
users-activate = Activer
users-activate-label = Activer { $email }
users-deactivate = Désactiver
users-deactivate-label = Désactiver { $email }
users-more = Plus d’utilisateurs
users-previous = Précédents
users-next = Suivants
users-refused = Seul un superutilisateur peut voir les utilisateurs.
users-change-refused = Seul un superutilisateur peut modifier les utilisateurs.
no-such-user = Cet utilisateur n’existe pas.
users-not-yourself = Vous ne pouvez pas vous désactiver vous-même : demandez à un autre superutilisateur.
account-active = actif
account-pending = en attente
account-deactivated = désactivé

## Pages d’erreur
error-request-id = Identifiant de la requête :
error-back = Retour aux invitations
error-title = Erreur
error-title-400 = Requête incorrecte
error-title-401 = Non connecté
error-title-403 = Accès refusé
error-title-404 = Page introuvable
error-title-405 = Méthode non autorisée
error-title-409 = Conflit
error-title-410 = Plus disponible
error-title-413 = Trop volumineux
error-title-415 = Format non pris en charge
error-title-422 = Requête non traitable
error-title-429 = Trop de requêtes
error-title-500 = Erreur interne
error-title-503 = Service indisponible
error-title-unavailable = Indisponible
error-no-such-page = Cette page n’existe pas.
error-html-form = Cette page attend un formulaire HTML.
error-form-unreadable = Le formulaire n’a pas pu être lu.
error-form-too-large = Le formulaire dépasse { $limit } octets.
error-unavailable = Le service est momentanément indisponible, veuillez réessayer dans un instant
error-internal = Une erreur interne s’est produite
delivery-none = aucune
users-done-activated = { $email } est activé.
users-done-deactivated = { $email } est désactivé.
