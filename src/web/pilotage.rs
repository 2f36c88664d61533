//! `GET /pilotage` (issue 21, item 2): the managers' figures live, for the
//! `pilotage` role of `[web] staff` only (another staff session gets 403).
//!
//! The figures are those of `alertissimo report` and `alertissimo stats`, read
//! from the same sources: the time spent in each step per scheme (median and
//! 90th percentile of [`crate::delays::Delays::table`]), the dossiers stalled
//! now by instructor ([`crate::timers::stalled_by_instructor`]), the dossiers
//! in each step month by month over the last twelve months
//! ([`crate::delays::Delays`]'s `occupancy`); and how long the beneficiaries'
//! questions wait for the service's answer ([`crate::delays::answers`], the
//! figure the beneficiaries' pages quote: from a beneficiary's
//! message to the service's next one, in business days, questions still
//! unanswered counted as waiting so far). The figures read from the store are
//! shown again for [`FRESH`] (the delay estimates, for `[delays] refresh`).
//! Server-rendered HTML tables, no script.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use minijinja::{Value, context};

use super::WebState;
use super::front::flatten;
use super::staff::StaffAsker;

/// The months of the table of dossiers per step.
const MONTHS: usize = 12;

/// How long the figures read from the store are shown again: a page asked
/// again and again does not scan every dossier each time.
pub const FRESH: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// What `/pilotage` reads from the store: the dossiers stalled by instructor
/// and the answer delays.
type Read = (Vec<(String, u64)>, crate::delays::answers::AnswerDelays);

/// The figures last read, and when.
#[derive(Debug, Default)]
pub(super) struct Figures {
    last: tokio::sync::Mutex<Option<(DateTime<Utc>, Arc<Read>)>>,
}

/// A duration in days with one decimal, in French ("2,5"; "—" when unknown).
fn days(seconds: Option<i64>) -> String {
    seconds.map_or_else(
        || "—".to_owned(),
        |s| format!("{:.1}", s as f64 / 86_400.0).replace('.', ","),
    )
}

/// `GET /pilotage`.
pub(super) async fn page(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let staff = match StaffAsker::of(&state, peer, &headers).await {
        Ok(staff) => staff,
        Err(answer) => return answer,
    };
    if !staff.roles.pilotage {
        return staff.asker.refusal(
            StatusCode::FORBIDDEN,
            "Espace réservé au pilotage",
            "Cette page est réservée aux agents qui ont le rôle « pilotage ». \
             Vos dossiers sont sur la page « Mes dossiers à instruire ».",
        );
    }
    let current = Arc::clone(&staff.asker.front.current.borrow());
    let now = Utc::now();
    let delays = match current.delays.get(now).await {
        Ok(delays) => delays,
        Err(e) => return staff.asker.unavailable(&e),
    };
    let read = match figures(&staff, &delays, now).await {
        Ok(read) => read,
        Err(e) => return staff.asker.unavailable(&e),
    };
    let (stalled, waits) = &*read;
    let lifecycle = &current.rules.lifecycle;
    let stalled: Vec<Value> = stalled
        .iter()
        .map(|(who, n)| context! { who => if who.is_empty() { "(sans instructeur)" } else { who.as_str() }, n => n })
        .collect();
    staff.page(
        "pilotage",
        "Pilotage",
        context! {
            durations => durations(&delays, lifecycle),
            stalled => stalled,
            occupancy => occupancy(&delays.occupancy, lifecycle),
            waits => context! {
                answered => waits.answered,
                waiting => waits.waiting,
                median => waits.median_days,
                p90 => waits.p90_days,
                min_answered => crate::delays::answers::MIN_ANSWERED,
            },
        },
    )
}

/// The figures read from the store, again when those kept are older than
/// [`FRESH`].
async fn figures(
    staff: &StaffAsker,
    delays: &Arc<crate::delays::Delays>,
    now: DateTime<Utc>,
) -> anyhow::Result<Arc<Read>> {
    let mut last = staff.asker.front.pilotage.last.lock().await;
    if let Some((at, read)) = &*last
        && now - *at < FRESH
    {
        return Ok(Arc::clone(read));
    }
    let current = Arc::clone(&staff.asker.front.current.borrow());
    let (with, rules) = (Arc::clone(delays), Arc::clone(&current.rules));
    let business = staff.asker.front.answers.business();
    let read = Arc::new(flatten(
        staff
            .asker
            .store
            .read(move |s| {
                let stalled =
                    crate::timers::stalled_by_instructor(s, &with, &rules.lifecycle, now)?;
                Ok::<_, crate::store::StoreError>((stalled, s.answer_delays(now, &business)?))
            })
            .await,
    )?);
    *last = Some((now, Arc::clone(&read)));
    Ok(read)
}

/// The time spent in each step per scheme: the lines of `alertissimo stats`.
fn durations(
    delays: &crate::delays::Delays,
    lifecycle: &crate::lifecycle::Lifecycle,
) -> Vec<Value> {
    let scheme = |s: &str| {
        if s.is_empty() {
            "(sans dispositif)".to_owned()
        } else {
            s.to_owned()
        }
    };
    delays
        .table(lifecycle)
        .iter()
        .map(|l| {
            context! {
                scheme => scheme(&l.scheme),
                step => lifecycle.label(&l.step),
                basis => match l.basis {
                    Some(crate::delays::Basis::Scheme) => "dispositif",
                    Some(crate::delays::Basis::Step) => "tous dispositifs",
                    Some(crate::delays::Basis::Lifecycle) => "délai indicatif",
                    None => "—",
                },
                sample => l.sample,
                median => days(l.median),
                p90 => days(l.p90),
                in_step => l.in_step,
                overdue => l.overdue,
            }
        })
        .collect()
}

/// The dossiers in each step that is not final over the last [`MONTHS`]
/// months: `months` (`YYYY-MM`) and `rows` ({step, counts}).
fn occupancy(
    occupancy: &std::collections::BTreeMap<String, Vec<(String, u64)>>,
    lifecycle: &crate::lifecycle::Lifecycle,
) -> Value {
    // Every series ends this month; the longest gives the months.
    let months: Vec<String> = occupancy
        .values()
        .max_by_key(|v| v.len())
        .map(|v| {
            let from = v.len().saturating_sub(MONTHS);
            v[from..].iter().map(|(m, _)| m.clone()).collect()
        })
        .unwrap_or_default();
    let rows: Vec<Value> = lifecycle
        .steps()
        .iter()
        .filter_map(|s| {
            let series = occupancy.get(&s.id)?;
            let counts: Vec<u64> = months
                .iter()
                .map(|m| {
                    series
                        .iter()
                        .find(|(month, _)| month == m)
                        .map_or(0, |p| p.1)
                })
                .collect();
            Some(context! { step => &s.label, counts => counts })
        })
        .collect();
    context! { months => months, rows => rows }
}
