//! What the administrators are told: the periodic digest of failed alerts,
//! refused snapshots, stale sources and connector files left out, and the notice
//! of a relay outage.
//!
//! The digest goes through the transport like any message, and retries with
//! the alerts' backoff when it cannot. The outage notice cannot count on the
//! broken relay: it is logged at ERROR once per outage and written as an `.eml`
//! file into `[delivery] notice_dir`, which any mail client opens and a
//! monitoring probe can watch.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::{Dispatcher, Inner, message, retry_at};
use crate::transport::{Outcome, file};

impl Dispatcher {
    /// Sends the administrators' digest when its schedule has ticked since the last
    /// one and something failed or was refused meanwhile; returns whether it sent.
    ///
    /// A digest that could not be sent is recorded and tried again with the
    /// alerts' backoff (`retry_initial` doubling up to `retry_max`), never on
    /// every loop; a relay-level failure pauses the transport as an alert's does.
    ///
    /// # Errors
    /// When the store fails; a transport failure is recorded and retried later.
    pub async fn admin_digest(&self) -> anyhow::Result<bool> {
        let inner = &self.inner;
        let Some(admin) = inner.config.admin_email.clone() else {
            return Ok(false);
        };
        let now = Utc::now();
        let (last, (failures, retry)) = inner
            .store
            .call(|s| -> Result<_, crate::store::StoreError> {
                Ok((s.last_admin_report()?, s.admin_backoff()?))
            })
            .await??;
        if retry.is_some_and(|at| at > now) {
            return Ok(false);
        }
        let tz = inner.rules.policy.tz;
        let due = match last {
            Some(last) => crate::timing::next_run(&inner.config.admin_digest, tz, last)
                .is_ok_and(|tick| tick <= now),
            None => true,
        };
        if !due {
            return Ok(false);
        }
        let sources = inner.sources.scheduled();
        let news = inner
            .store
            .call(move |s| s.admin_news(&sources, now))
            .await??;
        if news.is_empty() {
            // Nothing to tell: the next report starts from here.
            inner
                .store
                .call(move |s| s.record_admin_report(now, now, &news, None))
                .await??;
            return Ok(false);
        }
        let text = admin_text(&news, last, tz);
        let content = crate::rules::template::Message {
            subject: admin_subject(&news),
            html: crate::rules::template::to_html(&text),
            text,
        };
        let key = format!("admin/{}", crate::store::format_time(now));
        let message_id = message::message_id(&[key.as_str()], &inner.from);
        let outcome = match message::build(
            &content,
            &inner.from,
            None,
            &admin,
            &message_id,
            now,
            &message::Footer::Nothing,
        ) {
            Ok(email) => inner.transmit(email, &message_id).await,
            Err(reason) => Outcome::Permanent(reason),
        };
        let (kind, reply) = match outcome {
            Outcome::Sent(_) => {
                info!(to = %admin, failed = news.failed.len(), refused = news.refused.len(), stale = news.stale.len(), left_out = news.left_out.len(), "Sent the administrators' digest.");
                inner
                    .store
                    .call(move |s| s.record_admin_report(now, now, &news, Some(&message_id)))
                    .await??;
                if inner.recovering.swap(false, Ordering::Relaxed) {
                    inner.resume(now).await?;
                }
                return Ok(true);
            }
            Outcome::Relay(reply) => ("relay", reply),
            Outcome::Transient(reply) => ("transient", reply),
            Outcome::Permanent(reply) => ("permanent", reply),
        };
        let at = if kind == "relay" {
            inner.trip(&reply, now).await?
        } else {
            retry_at(now, failures + 1, 0, &inner.config)
        };
        warn!(to = %admin, outcome = kind, reply = %reply, retry_at = %at,
            "The administrators' digest was not delivered; it is tried again later.");
        inner
            .store
            .call(move |s| s.record_admin_attempt(kind, &reply, at, now))
            .await??;
        Ok(false)
    }
}

impl Inner {
    /// Pauses the transport after a relay-level failure, until the next try
    /// (the alerts' backoff, counted in failures in a row); returns that time.
    /// The start of an outage is logged at ERROR and noticed to the
    /// administrators by a file; a failure while already paused (another send
    /// of the same wave) changes nothing.
    pub(super) async fn trip(
        &self,
        reason: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<DateTime<Utc>> {
        self.tripped.store(true, Ordering::Relaxed);
        let (name, why, config) = (
            self.transport.name(),
            reason.to_owned(),
            self.config.clone(),
        );
        let (state, started) = self
            .store
            .call(move |s| -> Result<_, crate::store::StoreError> {
                let before = s.transport_state(name)?;
                if before.paused_until.is_some_and(|u| u > now) {
                    return Ok((before, false));
                }
                let until = retry_at(now, before.failures + 1, 0, &config);
                let after = s.pause_transport(name, &why, until, now)?;
                Ok((after, before.paused_since.is_none()))
            })
            .await??;
        let until = state.paused_until.unwrap_or(now);
        if started {
            error!(transport = name, reason, retry_at = %until,
                "The mail relay fails: delivery is paused and alerts wait (none is failed).");
            self.notice(&state).await;
        } else {
            warn!(transport = name, reason, retry_at = %until, failures = state.failures,
                "The mail relay still fails: delivery stays paused.");
        }
        Ok(until)
    }

    /// Records that the transport works again, and says so.
    pub(super) async fn resume(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let name = self.transport.name();
        if let Some(outage) = self
            .store
            .call(move |s| s.resume_transport(name, now))
            .await??
        {
            info!(transport = name, since = ?outage.paused_since, failures = outage.failures,
                "The mail relay works again: delivery goes on.");
        }
        Ok(())
    }

    /// Writes the outage notice into `notice_dir`, without the relay.
    async fn notice(&self, state: &crate::store::TransportState) {
        let tz = self.rules.policy.tz;
        let when = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.with_timezone(&tz).format("%d/%m/%Y à %H:%M").to_string())
                .unwrap_or_default()
        };
        let text = format!(
            "Bonjour,\n\nDepuis le {}, le relais de messagerie refuse les messages d'Alertissimo :\n{}\n\n\
             Aucune alerte n'est perdue ni abandonnée : elles attendent dans la file d'envoi et \
             partiront dès que le relais répondra. Alertissimo réessaie de lui-même (prochain essai \
             le {}).\n\nPour voir la file et l'état du relais : alertissimo outbox list\n\
             Une fois la cause corrigée, pour tout envoyer sans attendre : alertissimo outbox flush\n",
            when(state.paused_since),
            state.reason.as_deref().unwrap_or_default(),
            when(state.paused_until),
        );
        let content = crate::rules::template::Message {
            subject: "Alertissimo : le relais de messagerie ne répond plus".to_owned(),
            html: crate::rules::template::to_html(&text),
            text,
        };
        let since = crate::store::format_time(state.paused_since.unwrap_or_else(Utc::now));
        let id = message::message_id(&[format!("notice/{since}").as_str()], &self.from);
        let to = self
            .config
            .admin_email
            .clone()
            .unwrap_or_else(|| self.from.email.to_string());
        let dir = self.config.notice_dir.clone();
        let written = match message::build(
            &content,
            &self.from,
            None,
            &to,
            &id,
            Utc::now(),
            &message::Footer::Nothing,
        ) {
            Ok(email) => {
                let bytes = email.formatted();
                tokio::task::spawn_blocking(move || file::write(&dir, &id, &bytes))
                    .await
                    .unwrap_or_else(|e| Outcome::Relay(e.to_string()))
            }
            Err(reason) => Outcome::Permanent(reason),
        };
        match written {
            Outcome::Sent(place) => {
                warn!(notice = %place, "The administrators' notice of the outage is written.")
            }
            other => {
                error!(outcome = ?other, "Cannot write the administrators' notice of the outage.")
            }
        }
    }
}

/// The subject of the administrators' digest, in French: what it tells, counted.
fn admin_subject(news: &crate::store::AdminNews) -> String {
    let plural = |n: usize| if n > 1 { "s" } else { "" };
    let mut parts = vec![
        format!(
            "{} alerte{} en échec",
            news.failed.len(),
            plural(news.failed.len())
        ),
        format!(
            "{} import{} refusé{}",
            news.refused.len(),
            plural(news.refused.len()),
            plural(news.refused.len())
        ),
    ];
    if !news.stale.is_empty() {
        parts.push(format!(
            "{} source{} sans import récent",
            news.stale.len(),
            plural(news.stale.len())
        ));
    }
    if !news.left_out.is_empty() {
        let n = news.left_out.len();
        parts.push(format!("{n} connecteur{} écarté{}", plural(n), plural(n)));
    }
    if !news.unmatched.is_empty() {
        let n = news.unmatched.len();
        parts.push(format!(
            "{n} réponse{} non rattachée{}",
            plural(n),
            plural(n)
        ));
    }
    format!("Alertissimo : {}", parts.join(", "))
}

/// The text of the administrators' digest, in French.
fn admin_text(
    news: &crate::store::AdminNews,
    since: Option<DateTime<Utc>>,
    tz: chrono_tz::Tz,
) -> String {
    let mut text = String::from("Bonjour,\n\n");
    text.push_str(&match since {
        Some(since) => format!(
            "Voici ce qui demande votre attention depuis le {} :",
            since.with_timezone(&tz).format("%d/%m/%Y à %H:%M")
        ),
        None => "Voici ce qui demande votre attention :".to_owned(),
    });
    text.push_str("\n\n");
    if !news.failed.is_empty() {
        text.push_str(&format!(
            "Alertes qui n'ont pas pu être envoyées ({}) :\n",
            news.failed.len()
        ));
        for (_, reference, rule, recipient, reason) in news.failed.iter().take(200) {
            text.push_str(&format!(
                "- dossier {reference}, règle {rule}, à {recipient} : {reason}\n"
            ));
        }
        if news.failed.len() > 200 {
            text.push_str(&format!("- … et {} autres\n", news.failed.len() - 200));
        }
        text.push_str("\nPour les renvoyer une fois la cause corrigée : alertissimo outbox retry --failed\n\n");
    }
    if !news.refused.is_empty() {
        text.push_str(&format!(
            "Imports refusés ({}) : rien n'a été modifié, le fichier attend une correction.\n",
            news.refused.len()
        ));
        for (run, connector, file, reasons) in &news.refused {
            text.push_str(&format!(
                "- import {run}, connecteur {connector}, fichier {file} : {}\n",
                reasons
                    .iter()
                    .map(|r| crate::rules::french::refusal(r))
                    .collect::<Vec<_>>()
                    .join(" ; ")
            ));
        }
        text.push_str("\nLe détail : alertissimo runs --rejections NUMÉRO\n");
    }
    if !news.stale.is_empty() {
        if !news.failed.is_empty() || !news.refused.is_empty() {
            text.push('\n');
        }
        text.push_str(&stale_text(&news.stale, tz));
    }
    if !news.left_out.is_empty() {
        if !(news.failed.is_empty() && news.refused.is_empty() && news.stale.is_empty()) {
            text.push('\n');
        }
        text.push_str(&left_out_text(&news.left_out, tz));
    }
    if !news.unmatched.is_empty() {
        text.push('\n');
        text.push_str(&unmatched_text(&news.unmatched, tz));
    }
    text
}

/// The digest's part on the replies' mailbox: the messages that matched no
/// dossier, in French.
fn unmatched_text(unmatched: &[crate::store::Unmatched], tz: chrono_tz::Tz) -> String {
    let mut text = format!(
        "Messages reçus dans la boîte des réponses et rattachés à aucun dossier ({}) : ils \
         sont rangés dans le dossier de messagerie des messages non rattachés ([inbound] \
         unmatched_folder), où vous pouvez les lire et y répondre.\n",
        unmatched.len()
    );
    for u in unmatched.iter().take(200) {
        let what = match u.kind.as_str() {
            "auto_reply" => " (réponse automatique)",
            "bounce" => " (avis de non-remise)",
            _ => "",
        };
        let sender = if u.sender.is_empty() {
            "expéditeur inconnu"
        } else {
            &u.sender
        };
        let subject = if u.subject.is_empty() {
            "(sans objet)"
        } else {
            &u.subject
        };
        text.push_str(&format!(
            "- le {}, de {sender} : « {subject} »{what}\n",
            u.received_at.with_timezone(&tz).format("%d/%m/%Y à %H:%M")
        ));
    }
    if unmatched.len() > 200 {
        text.push_str(&format!("- … et {} autres\n", unmatched.len() - 200));
    }
    text
}

/// The digest's part on sources gone stale, in French.
fn stale_text(stale: &[crate::store::SourceHealth], tz: chrono_tz::Tz) -> String {
    let mut text = format!(
        "Sources sans import réussi dans le délai prévu ({}) : les dossiers ne sont plus suivis.\n",
        stale.len()
    );
    for source in stale {
        let last = source.last_success.map_or_else(
            || "aucun import réussi".to_owned(),
            |t| {
                format!(
                    "dernier import réussi le {}",
                    t.with_timezone(&tz).format("%d/%m/%Y à %H:%M")
                )
            },
        );
        let age = source
            .max_age_seconds
            .map(|s| crate::rules::french::duration(std::time::Duration::from_secs(s)))
            .unwrap_or_default();
        text.push_str(&format!(
            "- connecteur {} : {last} (délai prévu : {age})",
            source.connector
        ));
        if let Some(error) = &source.last_error {
            text.push_str(&format!(" ; dernière erreur : {error}"));
        }
        text.push('\n');
    }
    text.push_str("\nL'état des sources : alertissimo runs --sources\n");
    text
}

/// The digest's part on connector files the daemon leaves out, in French: each
/// with its file and why (as `alertissimo check` says it).
fn left_out_text(left_out: &[crate::store::LeftOutConnector], tz: chrono_tz::Tz) -> String {
    let mut text = format!(
        "Connecteurs écartés ({}) : leur fichier n'est pas valide. Alertissimo fonctionne sans \
         eux, et leurs dossiers ne sont plus suivis, jusqu'à ce que le fichier soit corrigé.\n",
        left_out.len()
    );
    for l in left_out {
        text.push_str(&format!(
            "- connecteur {}, fichier {}, écarté depuis le {} :\n",
            l.connector,
            l.file,
            l.since.with_timezone(&tz).format("%d/%m/%Y à %H:%M")
        ));
        for line in l.reason.lines() {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text.push_str(
        "\nUne fois le fichier corrigé : alertissimo check, puis systemctl reload alertissimo\n",
    );
    text
}
