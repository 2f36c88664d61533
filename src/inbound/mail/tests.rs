//! Samples of what mail clients and servers send, in French and English.

use super::*;

fn mail(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

const GMAIL_FR: &str = "From: Claire Martin <Claire@Asso.fr>
To: =?UTF-8?Q?R=C3=A9gion?= <suivi-aides+0a1b2c3d4e5f60718293@region.fr>
Subject: Re: Dossier AR-1 : pièce manquante
Message-ID: <CAF=reply-1@mail.gmail.com>
In-Reply-To: <abc.alertissimo@region.fr>
References: <first@region.fr> <abc.alertissimo@region.fr>
Content-Type: multipart/alternative; boundary=\"b1\"

--b1
Content-Type: text/plain; charset=\"UTF-8\"
Content-Transfer-Encoding: quoted-printable

Bonjour,

Voici le RIB demand=C3=A9.

Claire

Le lun. 2 mars 2026 =C3=A0 10:00, R=C3=A9gion <suivi-aides+0a1b2c3d4e5f60718293@region.fr> a =C3=A9crit :

> Bonjour,
> Il manque une pi=C3=A8ce.
--b1
Content-Type: text/html; charset=\"UTF-8\"

<div>Bonjour,</div>
--b1--
";

#[test]
fn a_reply_from_gmail_in_french() {
    let m = parse(&mail(GMAIL_FR)).unwrap();
    assert_eq!(m.message_id, "<CAF=reply-1@mail.gmail.com>");
    assert_eq!(m.sender, "claire@asso.fr");
    assert_eq!(m.kind, ExchangeKind::Message);
    assert_eq!(m.text, "Bonjour,\n\nVoici le RIB demandé.\n\nClaire");
    assert_eq!(
        m.answers,
        vec!["<first@region.fr>", "<abc.alertissimo@region.fr>"]
    );
    let mailbox: lettre::Address = "suivi-aides@region.fr".parse().unwrap();
    assert_eq!(
        tokens(&m.recipients, &mailbox),
        vec!["0a1b2c3d4e5f60718293"]
    );
    let other: lettre::Address = "aides@region.fr".parse().unwrap();
    assert!(tokens(&m.recipients, &other).is_empty());
}

#[test]
fn an_html_only_reply_from_outlook_in_english() {
    let m = parse(&mail(
        "From: Marc <marc@region.fr>
To: suivi-aides@region.fr
Delivered-To: suivi-aides+ffff0000ffff0000ffff@region.fr
Subject: RE: Dossier AR-1
Message-ID: <outlook-2@region.fr>
Content-Type: text/html; charset=utf-8

<html><body><p>Approved, see you.</p>
<div>-----Original Message-----<br>From: Alertissimo<br>Sent: Monday</div>
<p>old text</p></body></html>
",
    ))
    .unwrap();
    assert_eq!(m.kind, ExchangeKind::Message);
    assert!(m.text.starts_with("Approved, see you."), "{:?}", m.text);
    assert!(!m.text.contains("old text"), "{:?}", m.text);
    let mailbox: lettre::Address = "Suivi-Aides@Region.fr".parse().unwrap();
    assert_eq!(
        tokens(&m.recipients, &mailbox),
        vec!["ffff0000ffff0000ffff"]
    );
    assert!(m.answers.is_empty());
}

#[test]
fn automatic_replies_in_both_languages() {
    for headers in [
        "Auto-Submitted: auto-replied\nSubject: Re: Dossier AR-1",
        "Precedence: auto_reply\nSubject: Re: Dossier AR-1",
        "X-Autoreply: yes\nSubject: Re: Dossier AR-1",
        "Subject: Réponse automatique : Dossier AR-1",
        "Subject: Absence du 2 au 6 mars",
        "Subject: Automatic reply: Dossier AR-1",
        "Subject: Out of Office: Dossier AR-1",
    ] {
        let m = parse(&mail(&format!(
            "From: a@asso.fr\nTo: suivi-aides@region.fr\n{headers}\nMessage-ID: <oof@asso.fr>\n\nJe suis absente.\n"
        )))
        .unwrap();
        assert_eq!(m.kind, ExchangeKind::AutoReply, "{headers}");
    }
    let person = parse(&mail(
        "From: a@asso.fr\nAuto-Submitted: no\nSubject: Re: Absence de pièce ?\nMessage-ID: <p@x>\n\nVoici.\n",
    ))
    .unwrap();
    assert_eq!(person.kind, ExchangeKind::Message);
}

#[test]
fn a_delivery_status_notification() {
    let m = parse(&mail(
        "From: Mail Delivery System <MAILER-DAEMON@mx.region.fr>
To: suivi-aides@region.fr
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-1@mx.region.fr>
Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"

--r
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.
--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.region.fr

Final-Recipient: rfc822; nobody@asso.fr
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <nobody@asso.fr>: Recipient address rejected
--r
Content-Type: text/rfc822-headers

From: Alertissimo <ne-pas-repondre@region.fr>
To: nobody@asso.fr
Subject: Dossier AR-1
Message-ID: <abc.alertissimo@region.fr>
--r--
",
    ))
    .unwrap();
    assert_eq!(m.kind, ExchangeKind::Bounce);
    assert_eq!(m.bounced, vec!["<abc.alertissimo@region.fr>"]);
    assert_eq!(
        m.diagnostic.as_deref(),
        Some("smtp; 550 5.1.1 <nobody@asso.fr>: Recipient address rejected")
    );
    assert!(m.text.contains("could not be delivered"), "{}", m.text);
}

#[test]
fn a_bounce_with_the_whole_message_attached() {
    let m = parse(&mail(
        "From: postmaster@asso.fr
Subject: Non remis : Dossier AR-1
Message-ID: <ndr@asso.fr>
Content-Type: multipart/mixed; boundary=\"x\"

--x
Content-Type: text/plain; charset=utf-8

La remise a échoué.
--x
Content-Type: message/rfc822

From: ne-pas-repondre@region.fr
Message-ID: <xyz.alertissimo@region.fr>
Subject: Dossier AR-1

Bonjour
--x--
",
    ))
    .unwrap();
    assert_eq!(m.kind, ExchangeKind::Bounce);
    assert_eq!(m.bounced, vec!["<xyz.alertissimo@region.fr>"]);
    assert_eq!(m.diagnostic, None);
}

#[test]
fn a_message_without_message_id_gets_a_stable_one() {
    let raw = mail("From: a@b.fr\nSubject: x\n\nbonjour\n");
    let a = parse(&raw).unwrap();
    assert_eq!(a.message_id, parse(&raw).unwrap().message_id);
    assert!(a.message_id.ends_with("@sans-message-id.alertissimo>"));
    assert_ne!(
        a.message_id,
        parse(&mail("From: a@b.fr\nSubject: y\n\nbonjour\n"))
            .unwrap()
            .message_id
    );
    assert_eq!(a.text, "bonjour");
}
