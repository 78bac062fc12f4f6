//! Bounce reports as Postfix, Exim, Microsoft 365 and Gmail write them (after each one's
//! published format and real samples), about a message the test's SMTP server received: what
//! `tests/api/bounces.rs` feeds to `cbh-invite bounce`.

use crate::support::smtp::ReceivedMail;

/// Headers of the message that bounced, as reports quote them.
pub fn quoted_headers(mail: &ReceivedMail) -> String {
    format!(
        "Return-Path: <{}>\r\nFrom: ChemBio Hub <noreply@invite.test.example>\r\nTo: {}\r\n\
         Subject: {}\r\nMessage-ID: <{}>\r\nDate: Mon, 30 Nov 2026 12:00:00 +0000\r\n",
        mail.mail_from,
        mail.rcpt_to[0],
        mail.subject(),
        mail.message_id()
    )
}

/// Postfix's bounce(8): a DSN with the notice, the delivery report and the headers of the
/// message (`text/rfc822-headers`).
pub fn postfix_report(verp: &str, mail: &ReceivedMail, status: &str, diagnostic: &str) -> String {
    let rcpt = &mail.rcpt_to[0];
    let headers = quoted_headers(mail);
    format!(
        "Return-Path: <>\r\n\
         Delivered-To: {verp}\r\n\
         Date: Mon, 30 Nov 2026 12:00:05 +0000 (UTC)\r\n\
         From: MAILER-DAEMON@mx.lab.example (Mail Delivery System)\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         To: {verp}\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"3F1E21C0A2.1764504005/mx.lab.example\"\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         Message-Id: <20261130120005.3F1E21C0A2@mx.lab.example>\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --3F1E21C0A2.1764504005/mx.lab.example\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host mx.lab.example.\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients. It's attached below.\r\n\
         \r\n\
         <{rcpt}>: host mx.example.org[192.0.2.1] said: {diagnostic}\r\n\
         \x20   (in reply to RCPT TO command)\r\n\
         \r\n\
         --3F1E21C0A2.1764504005/mx.lab.example\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.lab.example\r\n\
         X-Postfix-Queue-ID: 3F1E21C0A2\r\n\
         X-Postfix-Sender: rfc822; {verp}\r\n\
         Arrival-Date: Mon, 30 Nov 2026 12:00:00 +0000 (UTC)\r\n\
         \r\n\
         Final-Recipient: rfc822; {rcpt}\r\n\
         Original-Recipient: rfc822;{rcpt}\r\n\
         Action: failed\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mx.example.org\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --3F1E21C0A2.1764504005/mx.lab.example\r\n\
         Content-Description: Undelivered Message Headers\r\n\
         Content-Type: text/rfc822-headers\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         {headers}\
         \r\n\
         --3F1E21C0A2.1764504005/mx.lab.example--\r\n"
    )
}

/// Exim's bounce: `Status: 5.0.0` (or `4.0.0` in a delay warning) with the remote server's
/// code in `Diagnostic-Code`, and the whole message attached (`message/rfc822`). Addressed by
/// `To` only: no `--recipient`.
pub fn exim_report(
    verp: &str,
    mail: &ReceivedMail,
    action: &str,
    status: &str,
    diagnostic: &str,
) -> String {
    let rcpt = &mail.rcpt_to[0];
    let headers = quoted_headers(mail);
    let (subject, words) = if action == "delayed" {
        (
            "Warning: message 1kPq2x-000123-AB delayed 24 hours",
            "This message was created automatically by mail delivery software.\r\n\
             A message that you sent has not yet been delivered to one or more of its\r\n\
             recipients after more than 24 hours on the queue on mx.example.net.\r\n\
             No action is required on your part. Delivery attempts will continue.",
        )
    } else {
        (
            "Mail delivery failed: returning message to sender",
            "This message was created automatically by mail delivery software.\r\n\
             \r\n\
             A message that you sent could not be delivered to one or more of its\r\n\
             recipients. This is a permanent error. The following address(es) failed:",
        )
    };
    format!(
        "Return-path: <>\r\n\
         Received: from mail by mx.example.net with local (Exim 4.96)\r\n\
         \tid 1kPq2y-000124-CD; Mon, 30 Nov 2026 12:00:05 +0000\r\n\
         X-Failed-Recipients: {rcpt}\r\n\
         Auto-Submitted: auto-replied\r\n\
         From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\n\
         To: {verp}\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=1764504005-eximdsn-1804289383\r\n\
         MIME-Version: 1.0\r\n\
         Subject: {subject}\r\n\
         Message-Id: <E1kPq2y-000124-CD@mx.example.net>\r\n\
         Date: Mon, 30 Nov 2026 12:00:05 +0000\r\n\
         \r\n\
         --1764504005-eximdsn-1804289383\r\n\
         Content-type: text/plain; charset=us-ascii\r\n\
         \r\n\
         {words}\r\n\
         \r\n\
         \x20 {rcpt}\r\n\
         \x20   host mx2.example.net [192.0.2.7]\r\n\
         \x20   SMTP error from remote mail server after RCPT TO:<{rcpt}>:\r\n\
         \x20   {diagnostic}\r\n\
         \r\n\
         --1764504005-eximdsn-1804289383\r\n\
         Content-type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         \r\n\
         Action: {action}\r\n\
         Final-Recipient: rfc822;{rcpt}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mx2.example.net\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --1764504005-eximdsn-1804289383\r\n\
         Content-type: message/rfc822\r\n\
         \r\n\
         {headers}\
         \r\n\
         Hello Nobody,\r\n\
         \r\n\
         --1764504005-eximdsn-1804289383--\r\n"
    )
}

/// Microsoft 365's non-delivery report: the readable part in `multipart/alternative`, then the
/// delivery status and the original message. Its own codes have a two-digit detail (`5.1.10`).
pub fn microsoft_365_report(
    verp: &str,
    mail: &ReceivedMail,
    status: &str,
    diagnostic: &str,
) -> String {
    let rcpt = &mail.rcpt_to[0];
    let headers = quoted_headers(mail);
    format!(
        "Received: from AM0PR01MB1234.eurprd01.prod.exchangelabs.com ([::1]) by\r\n\
         \x20AM0PR01MB1234.eurprd01.prod.exchangelabs.com with mapi; Mon, 30 Nov 2026 12:00:05 +0000\r\n\
         MIME-Version: 1.0\r\n\
         From: <postmaster@contoso.onmicrosoft.com>\r\n\
         To: <{verp}>\r\n\
         Date: Mon, 30 Nov 2026 12:00:05 +0000\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"0d2f1e4c-7f3e-4f6b-9a38-b1d7f2e0a111\"\r\n\
         X-MS-Exchange-Message-Is-Ndr:\r\n\
         Content-Language: en-US\r\n\
         Message-ID: <5c1d2e3f-aaaa-bbbb-cccc-ddddeeeeffff@AM0PR01MB1234.eurprd01.prod.exchangelabs.com>\r\n\
         Subject: Undeliverable: {subject}\r\n\
         Auto-Submitted: auto-replied\r\n\
         \r\n\
         --0d2f1e4c-7f3e-4f6b-9a38-b1d7f2e0a111\r\n\
         Content-Type: multipart/alternative; differences=Content-Type;\r\n\
         \tboundary=\"b1b9e7a0-2222-4c0e-8d9a-000000000002\"\r\n\
         \r\n\
         --b1b9e7a0-2222-4c0e-8d9a-000000000002\r\n\
         Content-Type: text/plain; charset=\"us-ascii\"\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\
         \r\n\
         Your message to {rcpt} couldn't be delivered.\r\n\
         {rcpt}'s mailbox is full.\r\n\
         \r\n\
         --b1b9e7a0-2222-4c0e-8d9a-000000000002\r\n\
         Content-Type: text/html; charset=\"us-ascii\"\r\n\
         \r\n\
         <html><body><p>Your message to {rcpt} couldn't be delivered.</p></body></html>\r\n\
         \r\n\
         --b1b9e7a0-2222-4c0e-8d9a-000000000002--\r\n\
         \r\n\
         --0d2f1e4c-7f3e-4f6b-9a38-b1d7f2e0a111\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com\r\n\
         Received-From-MTA: dns;mail.lab.example\r\n\
         Arrival-Date: Mon, 30 Nov 2026 12:00:00 +0000\r\n\
         \r\n\
         Final-Recipient: rfc822;{rcpt}\r\n\
         Action: failed\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp;{diagnostic}\r\n\
         \r\n\
         --0d2f1e4c-7f3e-4f6b-9a38-b1d7f2e0a111\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         {headers}\
         \r\n\
         Hello Nobody,\r\n\
         \r\n\
         --0d2f1e4c-7f3e-4f6b-9a38-b1d7f2e0a111--\r\n",
        subject = mail.subject()
    )
}

/// Gmail's "Delivery Status Notification (Failure)": a readable part in `multipart/related`, the
/// delivery status (its Diagnostic-Code folded over the server's multi-line reply) and the
/// message. Sent to `to`; here a plain address with no VERP id, so only the quoted Message-ID
/// names the message.
pub fn gmail_report(to: &str, mail: &ReceivedMail) -> String {
    let rcpt = &mail.rcpt_to[0];
    let headers = quoted_headers(mail);
    format!(
        "Received: by 2002:a05:6a10:1234:b0:5b0:1234:5678 with SMTP id a1csp123; Mon, 30 Nov 2026 04:00:05 -0800 (PST)\r\n\
         Return-Path: <>\r\n\
         From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n\
         To: {to}\r\n\
         Auto-Submitted: auto-replied\r\n\
         Subject: Delivery Status Notification (Failure)\r\n\
         References: <{message_id}>\r\n\
         In-Reply-To: <{message_id}>\r\n\
         X-Failed-Recipients: {rcpt}\r\n\
         Message-ID: <6564f1a5.050a0220.1234.abcd.GMR@mx.google.com>\r\n\
         Date: Mon, 30 Nov 2026 04:00:05 -0800 (PST)\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; boundary=\"000000000000a1b2c3d4e5f60718\"; report-type=delivery-status\r\n\
         \r\n\
         --000000000000a1b2c3d4e5f60718\r\n\
         Content-Type: multipart/related; boundary=\"000000000000a1b2c3d4e5f60729\"\r\n\
         \r\n\
         --000000000000a1b2c3d4e5f60729\r\n\
         Content-Type: multipart/alternative; boundary=\"000000000000a1b2c3d4e5f6073a\"\r\n\
         \r\n\
         --000000000000a1b2c3d4e5f6073a\r\n\
         Content-Type: text/plain; charset=\"UTF-8\"\r\n\
         \r\n\
         \r\n\
         ** Address not found **\r\n\
         \r\n\
         Your message wasn't delivered to {rcpt} because the address couldn't be found, or is unable to receive mail.\r\n\
         \r\n\
         The response from the remote server was:\r\n\
         550 5.1.1 The email account that you tried to reach does not exist.\r\n\
         \r\n\
         --000000000000a1b2c3d4e5f6073a--\r\n\
         --000000000000a1b2c3d4e5f60729--\r\n\
         --000000000000a1b2c3d4e5f60718\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; googlemail.com\r\n\
         Received-From-MTA: dns; mail.lab.example\r\n\
         Arrival-Date: Mon, 30 Nov 2026 04:00:04 -0800 (PST)\r\n\
         X-Original-Message-ID: <{message_id}>\r\n\
         \r\n\
         Final-Recipient: rfc822; {rcpt}\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Remote-MTA: dns; gmail-smtp-in.l.google.com. (2a00:1450:400c:c0b::1a, the server for the domain gmail.com.)\r\n\
         Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n\
         \x20550-5.1.1 double-checking the recipient's email address for typos or\r\n\
         \x20550-5.1.1 unnecessary spaces. For more information, go to\r\n\
         \x20550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si123 - gsmtp\r\n\
         Last-Attempt-Date: Mon, 30 Nov 2026 04:00:05 -0800 (PST)\r\n\
         \r\n\
         --000000000000a1b2c3d4e5f60718\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         {headers}\
         \r\n\
         Hello Nobody,\r\n\
         \r\n\
         --000000000000a1b2c3d4e5f60718--\r\n",
        message_id = mail.message_id()
    )
}
