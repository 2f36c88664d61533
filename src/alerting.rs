//! Queues the alerts events owe, in the transaction that records the events.
//!
//! Owns what imports and evaluations of time-based events share once they have
//! an event: the cancelling of debounced alerts for a step the dossier left, the
//! rules' plan, cooldowns, and the outbox rows, all in the caller's transaction so
//! that an event and its alerts are kept or lost together.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::cases::{Queued, Rehearsal};
use crate::model::{Dossier, Event, EventKind};
use crate::rules::{Rule, Rules, Scene};
use crate::store::{Counts, ImportTx, NewAlert, StoreError};

/// Queues the alerts a run's events owe, in the run's transaction.
pub(crate) struct Alerting<'a> {
    rules: &'a Rules,
    applicable: Vec<&'a Rule>,
    /// The connector's name, and its `link` pattern (a rule test case may name
    /// no connector): with the dossier's `url`, it gives the dossier's link.
    name: &'a str,
    link: Option<&'a str>,
    now: DateTime<Utc>,
    /// Alerts owed to nobody (no address on the dossier), by rule and role.
    unaddressed: BTreeMap<(String, &'static str), u64>,
    /// Rules whose condition failed to evaluate, with why.
    failed: Vec<(String, String)>,
}

impl<'a> Alerting<'a> {
    /// For the dossiers of connector `name`, whose `link` pattern is `link`.
    pub(crate) fn new(
        rules: &'a Rules,
        name: &'a str,
        link: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            rules,
            applicable: rules.for_connector(name),
            name,
            link,
            now,
            unaddressed: BTreeMap::new(),
            failed: Vec::new(),
        }
    }

    /// Queues what the events of one dossier owe, after cancelling its debounced
    /// alerts for a step it has left.
    pub(crate) fn on_events(
        &mut self,
        tx: &ImportTx<'_>,
        rowid: i64,
        dossier: &Dossier,
        events: &[(i64, &Event)],
        counts: &mut Counts,
    ) -> Result<(), StoreError> {
        let link = crate::model::link(dossier, self.link);
        for &(event_id, event) in events {
            if event.kind == EventKind::StepChanged {
                let reason = || crate::rules::left_step(self.rules.lifecycle.label(&dossier.step));
                let (cancelled, left) =
                    tx.cancel_held(rowid, event.to_step.as_deref(), self.now, reason)?;
                counts.alerts_cancelled += cancelled;
                // Back to the step a cancelled alert's dossier came from: a round
                // trip that nobody was told about, so there is nothing to tell now.
                if event.to_step.as_ref().is_some_and(|to| left.contains(to)) {
                    continue;
                }
            }
            let scene = Scene {
                connector: self.name,
                link: link.as_deref(),
                dossier,
                event,
                delay: None,
            };
            let plan = self.rules.plan(&self.applicable, &scene, self.now);
            for (rule, role) in plan.unaddressed {
                *self
                    .unaddressed
                    .entry((rule.name.clone(), role))
                    .or_default() += 1;
            }
            for (rule, reason) in plan.failed {
                warn!(
                    connector = %self.name, dossier = %dossier.reference(), rule = %rule.name,
                    "A rule's condition failed; no alert was queued for it: {reason}"
                );
                self.failed.push((rule.name.clone(), reason));
            }
            for alert in plan.alerts {
                let rule = alert.rule;
                if let Some(cooldown) = rule.cooldown
                    && let Ok(cooldown) = chrono::Duration::from_std(cooldown)
                    && tx.alerted_since(rowid, &rule.name, &alert.address, self.now - cooldown)?
                {
                    continue;
                }
                let queued = tx.queue_alert(&NewAlert {
                    event_id,
                    dossier_id: rowid,
                    rule: &rule.name,
                    template: &rule.template,
                    class: rule.class.as_str(),
                    role: alert.role,
                    recipient: &alert.address,
                    digest: rule.digest,
                    hold_step: alert.hold_step.as_deref(),
                    created_at: self.now,
                    due_at: alert.due_at,
                    invalid: crate::value::recipient(&alert.address)
                        .err()
                        .map(|e| format!("adresse invalide, le message ne peut pas partir : {e}")),
                })?;
                counts.alerts_queued += u64::from(queued);
            }
        }
        Ok(())
    }

    /// Logs, once per run, the alerts that had nobody to go to.
    pub(crate) fn report(&self) {
        for ((rule, role), n) in &self.unaddressed {
            warn!(
                connector = %self.name, rule = %rule, role = %role, dossiers = n,
                "Alerts owed to nobody: these dossiers have no {role} e-mail address."
            );
        }
    }
}

/// What an import would queue for `dossier` and its `events`, through the very
/// path an import takes (cancellations of held alerts, cooldowns, the rules'
/// plan, invalid addresses, the outbox's idempotency), in a throw-away store:
/// rule test cases (`alertissimo test`) run this, so that a case that passes is
/// what production does.
///
/// # Errors
/// A reason, when the throw-away store fails.
pub fn rehearse(
    rules: &Rules,
    connector: (&str, Option<&str>),
    dossier: &Dossier,
    events: &[Event],
    now: DateTime<Utc>,
) -> Result<Rehearsal, String> {
    let fail = |e: StoreError| format!("the rehearsal's store: {e}");
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
    let mut store = crate::store::Store::open(&dir.path().join("rehearsal.db"), 2).map_err(fail)?;
    let mut tx = store.begin_import().map_err(fail)?;
    let run = crate::store::NewRun::new(connector.0, "rule test case", String::new(), now);
    tx.start_run(&run).map_err(fail)?;
    let encoder = tx.field_encoder(dossier.fields.names()).map_err(fail)?;
    let fields = encoder
        .encode(&dossier.fields)
        .map_err(StoreError::Corrupt)
        .map_err(fail)?;
    let write = crate::store::DossierWrite {
        dossier,
        step_entered_at: now,
        fields: &fields,
    };
    let rowid = tx.insert(connector.0, &write).map_err(fail)?;
    let mut ids = Vec::with_capacity(events.len());
    for event in events {
        ids.push((tx.insert_event(rowid, event, false).map_err(fail)?, event));
    }
    let mut alerting = Alerting::new(rules, connector.0, connector.1, now);
    let mut counts = Counts::default();
    alerting
        .on_events(&tx, rowid, dossier, &ids, &mut counts)
        .map_err(fail)?;
    tx.finish(&run, &[]).map_err(fail)?;
    let failed = alerting.failed;
    let queued = store.alerts(None, None, usize::MAX).map_err(fail)?;
    let queued = queued
        .into_iter()
        .filter(|a| a.status != "cancelled")
        .map(|a| Queued {
            event: ids
                .iter()
                .position(|(id, _)| *id == a.event_id)
                .unwrap_or(0),
            invalid: (a.status == "failed").then(|| a.reason.clone().unwrap_or_default()),
            rule: a.rule,
            role: a.role,
            address: a.recipient,
        })
        .collect();
    Ok(Rehearsal { queued, failed })
}
