//! `GET /pilotage` (issue 21, item 2): the managers' figures live, for the
//! `pilotage` role of `[web] staff` only (another staff session gets 403).
//!
//! The figures are those of `alertissimo report` and `alertissimo stats`, read
//! from the same sources: the time spent in each step per scheme (median and
//! 90th percentile of [`crate::delays::Delays::table`]), the dossiers stalled
//! now by instructor ([`crate::timers::stalled_by_instructor`]), the dossiers
//! in each step month by month over the last twelve months
//! ([`crate::delays::Delays`]'s `occupancy`); and how long the beneficiaries'
//! questions wait for the service's answer ([`answer_waits`]: from a
//! beneficiary's message to the service's next one, the Kaplan–Meier
//! estimator of the step delays, questions still unanswered counted as waiting
//! so far). Server-rendered HTML tables, no script.

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
use crate::delays::survival::{Curve, Sorted, Stay};
use crate::store::Side;

/// The months of the table of dossiers per step.
const MONTHS: usize = 12;

/// How long questions wait for an answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AnswerWaits {
    /// Questions answered.
    pub answered: u64,
    /// Questions waiting for an answer now.
    pub waiting: u64,
    /// The median and 90th percentile of the time to an answer, in seconds
    /// (none while too few questions were answered).
    pub median: Option<i64>,
    /// See `median`.
    pub p90: Option<i64>,
    /// The longest wait of a question not answered yet, in seconds.
    pub longest_waiting: Option<i64>,
}

/// How long questions wait, from the messages exchanged `times` (dossier, who
/// wrote, when; by dossier then in time order), at `now`. A question starts at
/// a beneficiary's message that follows none of theirs since the service's
/// last one; it is answered by the service's next message. Unanswered ones are
/// counted as waiting since they were asked (censored, as dossiers still in a
/// step are).
pub(crate) fn answer_waits(
    times: &[(i64, Side, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> AnswerWaits {
    let mut sorted = Sorted::default();
    let (mut answered, mut waiting, mut longest) = (0, 0, None::<i64>);
    let mut open: Option<(i64, DateTime<Utc>)> = None;
    let mut close = |open: Option<(i64, DateTime<Utc>)>, answer: Option<DateTime<Utc>>| {
        let Some((_, asked)) = open else { return };
        let end = answer.unwrap_or(now);
        let time = (end - asked).num_seconds().max(1);
        sorted.push(&Stay {
            entry: 0,
            time,
            left: answer.is_some(),
        });
        if answer.is_some() {
            answered += 1;
        } else {
            waiting += 1;
            longest = Some(longest.map_or(time, |l| l.max(time)));
        }
    };
    for &(dossier, side, at) in times {
        if open.is_some_and(|(d, _)| d != dossier) {
            close(open.take(), None);
        }
        match side {
            Side::Beneficiary if open.is_none() => open = Some((dossier, at)),
            Side::Beneficiary => {}
            Side::Service => close(open.take(), Some(at)),
        }
    }
    close(open.take(), None);
    sorted.sort();
    let curve = Curve::of(&sorted);
    AnswerWaits {
        answered,
        waiting,
        median: curve.quantile(0.5),
        p90: curve.quantile(0.9),
        longest_waiting: longest,
    }
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
    let (with, rules) = (Arc::clone(&delays), Arc::clone(&current.rules));
    let read = flatten(
        staff
            .asker
            .store
            .call(move |s| {
                let stalled =
                    crate::timers::stalled_by_instructor(s, &with, &rules.lifecycle, now)?;
                Ok::<_, crate::store::StoreError>((stalled, s.message_times()?))
            })
            .await,
    );
    let (stalled, times) = match read {
        Ok(read) => read,
        Err(e) => return staff.asker.unavailable(&e),
    };
    let lifecycle = &current.rules.lifecycle;
    let stalled: Vec<Value> = stalled
        .iter()
        .map(|(who, n)| context! { who => if who.is_empty() { "(sans instructeur)" } else { who.as_str() }, n => n })
        .collect();
    let waits = answer_waits(&times, now);
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
                median => days(waits.median),
                p90 => days(waits.p90),
                longest => waits.longest_waiting.map(|s| days(Some(s))),
            },
        },
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        format!("2026-03-{day:02}T{hour:02}:00:00Z")
            .parse()
            .unwrap()
    }

    #[test]
    fn a_question_waits_until_the_service_answers_and_open_ones_are_waiting() {
        let b = Side::Beneficiary;
        let s = Side::Service;
        let mut times = Vec::new();
        // Ten dossiers answered in 1..=10 days; a second message before the
        // answer does not start another question.
        for d in 1..=10 {
            times.push((d, b, at(1, 9)));
            times.push((d, b, at(1, 10)));
            times.push((d, s, at(1 + d as u32, 9)));
        }
        // A service message with no question, then one unanswered question.
        times.push((11, s, at(2, 9)));
        times.push((11, b, at(3, 9)));
        let waits = answer_waits(&times, at(20, 9));
        assert_eq!((waits.answered, waits.waiting), (10, 1));
        assert_eq!(waits.longest_waiting, Some(17 * 86_400));
        let median = waits.median.expect("a median");
        assert!((4 * 86_400..=6 * 86_400).contains(&median), "{median}");
        // The tail rests on too few questions (fewer than three still waiting).
        assert_eq!(waits.p90, None);
        let none = answer_waits(&[], at(20, 9));
        assert_eq!((none.answered, none.waiting, none.median), (0, 0, None));
    }
}
