//! Who wrote a reply and to whom it goes.

use super::*;

fn dossier() -> Dossier {
    let mut d = Dossier {
        id: "D1".to_owned(),
        step: "depose".to_owned(),
        status: "Déposé".to_owned(),
        fields: crate::model::Fields::default(),
    };
    d.fields
        .insert_text("beneficiary.email", "Claire@Asso.fr; autre@asso.fr");
    d.fields.insert_text("instructor.email", "marc@region.fr");
    d.fields.insert_text("service.email", "culture@region.fr");
    d
}

fn incoming(sender: &str, kind: ExchangeKind, text: &str) -> Incoming {
    Incoming {
        message_id: "<r@x>".into(),
        sender: sender.into(),
        subject: "Re: Dossier".into(),
        recipients: Vec::new(),
        answers: Vec::new(),
        kind,
        text: text.into(),
        bounced: Vec::new(),
        diagnostic: Some("550 5.1.1 unknown".into()),
    }
}

#[test]
fn a_beneficiarys_reply_goes_to_the_instructor() {
    let e = exchange(
        &incoming("claire@asso.fr", ExchangeKind::Message, "Voici."),
        b"raw",
        7,
        &dossier(),
        None,
        None,
    );
    assert_eq!((e.dossier, e.side), (7, Side::Beneficiary));
    assert_eq!(e.recipient.as_deref(), Some("marc@region.fr"));
    assert_eq!(
        (e.author.as_str(), e.body.as_str()),
        ("claire@asso.fr", "Voici.")
    );
    assert_eq!(e.received_id.as_deref(), Some("<r@x>"));
    assert_eq!(e.original.as_deref(), Some("raw"));
}

#[test]
fn the_services_reply_goes_to_the_beneficiary() {
    for sender in ["marc@region.fr", "culture@region.fr"] {
        let e = exchange(
            &incoming(sender, ExchangeKind::Message, "OK"),
            b"",
            7,
            &dossier(),
            None,
            None,
        );
        assert_eq!(e.side, Side::Service);
        assert_eq!(e.recipient.as_deref(), Some("claire@asso.fr"));
    }
}

#[test]
fn an_unknown_sender_is_on_the_side_the_answered_message_went_to() {
    let answered = Answered {
        dossier: 7,
        sent_to: Side::Service,
        alerts: vec![1],
        exchange: None,
    };
    let m = incoming("collegue@region.fr", ExchangeKind::Message, "");
    let e = exchange(&m, b"", 7, &dossier(), Some(&answered), None);
    assert_eq!(e.side, Side::Service);
    assert_eq!(e.recipient.as_deref(), Some("claire@asso.fr"));
    assert_eq!(e.body, "(message sans texte nouveau)");
    let e = exchange(&m, b"", 7, &dossier(), None, None);
    assert_eq!(e.side, Side::Beneficiary);
}

#[test]
fn automatic_replies_and_bounces_are_never_forwarded() {
    let oof = exchange(
        &incoming("claire@asso.fr", ExchangeKind::AutoReply, "Absente"),
        b"",
        7,
        &dossier(),
        None,
        None,
    );
    assert_eq!((oof.kind, oof.recipient), (ExchangeKind::AutoReply, None));
    let bounce = exchange(
        &incoming("mailer-daemon@mx.fr", ExchangeKind::Bounce, "report"),
        b"",
        7,
        &dossier(),
        None,
        None,
    );
    assert_eq!(
        (bounce.kind, bounce.recipient),
        (ExchangeKind::Bounce, None)
    );
    assert_eq!(bounce.body, "Message non remis : 550 5.1.1 unknown");
}

#[test]
fn without_instructor_or_service_the_reply_goes_to_the_service_address() {
    let mut d = dossier();
    d.fields.insert_text("instructor.email", "");
    d.fields.insert_text("service.email", "");
    let m = incoming("claire@asso.fr", ExchangeKind::Message, "Bonjour");
    let e = exchange(&m, b"", 7, &d, None, Some("aides@region.fr"));
    assert_eq!(e.recipient.as_deref(), Some("aides@region.fr"));
    assert_eq!(exchange(&m, b"", 7, &d, None, None).recipient, None);
    // The instructor first, then the service: as the front office resolves it.
    let e = exchange(&m, b"", 7, &dossier(), None, Some("aides@region.fr"));
    assert_eq!(e.recipient.as_deref(), Some("marc@region.fr"));
}
