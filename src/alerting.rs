//! Queues the alerts events owe, in the transaction that records the events.
//!
//! Owns what imports and evaluations of time-based events share once they have
//! an event: the cancelling of debounced alerts for a step the dossier left, the
//! rules' plan, cooldowns, and the outbox rows, all in the caller's transaction so
//! that an event and its alerts are kept or lost together.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::connector::Connector;
use crate::model::{Dossier, Event, EventKind};
use crate::rules::{Rule, Rules, Scene};
use crate::store::{Counts, ImportTx, NewAlert, StoreError};

/// Queues the alerts a run's events owe, in the run's transaction.
pub(crate) struct Alerting<'a> {
    rules: &'a Rules,
    applicable: Vec<&'a Rule>,
    connector: &'a Connector,
    now: DateTime<Utc>,
    /// Alerts owed to nobody (no address on the dossier), by rule and role.
    unaddressed: BTreeMap<(String, &'static str), u64>,
}

impl<'a> Alerting<'a> {
    pub(crate) fn new(rules: &'a Rules, connector: &'a Connector, now: DateTime<Utc>) -> Self {
        Self {
            rules,
            applicable: rules.for_connector(&connector.name),
            connector,
            now,
            unaddressed: BTreeMap::new(),
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
        let link = self.connector.link_for(dossier);
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
                connector: &self.connector.name,
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
                    connector = %self.connector.name, dossier = %dossier.reference(), rule = %rule.name,
                    "A rule's condition failed; no alert was queued for it: {reason}"
                );
            }
            for alert in plan.alerts {
                let rule = alert.rule;
                if let Some(cooldown) = rule.cooldown
                    && let Ok(cooldown) = chrono::Duration::from_std(cooldown)
                    && tx.alerted_since(rowid, &rule.name, &alert.address, self.now - cooldown)?
                {
                    continue;
                }
                let queued =
                    tx.queue_alert(&NewAlert {
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
                        invalid: alert.address.parse::<lettre::Address>().err().map(|e| {
                            format!("adresse invalide, le message ne peut pas partir : {e}")
                        }),
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
                connector = %self.connector.name, rule = %rule, role = %role, dossiers = n,
                "Alerts owed to nobody: these dossiers have no {role} e-mail address."
            );
        }
    }
}
