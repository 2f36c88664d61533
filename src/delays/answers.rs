//! How long the instructing service takes to answer a beneficiary (issue 21,
//! item 4), learnt from the exchanges kept on the dossiers, in business days.
//!
//! Pure: it reads the messages of every dossier (who wrote, when) and `now`.
//! A question is a beneficiary's message that follows a message of the service
//! or opens the thread (several messages in a row before an answer are one
//! question, timed from the first); it is answered by the service's next
//! message on the same dossier. Questions still waiting at `now` are censored
//! observations: the Kaplan–Meier estimator of [`super::survival`] counts them
//! as "not answered after so long", so that a service whose slow answers are
//! still pending does not look quick. Auto-replies and bounces are not
//! messages: the caller leaves them out.

use chrono::{DateTime, Utc};

use super::survival::{Curve, Sorted, Stay};
use crate::calendar::{Business, DAY};

/// Fewer answered questions than this, and no figure is given.
pub const MIN_ANSWERED: u64 = 10;

/// One message on a dossier, as the estimate reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Said {
    /// The dossier's row.
    pub dossier: i64,
    /// When it was written or received.
    pub at: DateTime<Utc>,
    /// Whether the beneficiary wrote it (else the service).
    pub by_beneficiary: bool,
}

/// What the service's history of answers says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct AnswerDelays {
    /// Questions answered.
    pub answered: u64,
    /// Questions waiting for an answer at `now`.
    pub waiting: u64,
    /// The median time to an answer, in business days (at least 1), once at
    /// least [`MIN_ANSWERED`] questions were answered and the curve reaches
    /// one half.
    pub median_days: Option<i64>,
}

/// The answer delays of `messages` (any order) at `now`, counted on
/// `business` days.
pub(crate) fn answer_delays(
    messages: &[Said],
    now: DateTime<Utc>,
    business: &Business,
) -> AnswerDelays {
    let mut sorted: Vec<&Said> = messages.iter().filter(|m| m.at <= now).collect();
    sorted.sort_by_key(|m| (m.dossier, m.at));
    let mut stays = Sorted::default();
    let mut out = AnswerDelays::default();
    // The question waiting on the dossier being read: its dossier and time.
    let mut asked: Option<(i64, DateTime<Utc>)> = None;
    // A delay of business time; one asked this very business second counts
    // from one (the estimator leaves out empty stays).
    let stay = |from: DateTime<Utc>, to: DateTime<Utc>, left: bool| Stay {
        entry: 0,
        time: (business.at(to.timestamp()) - business.at(from.timestamp())).max(1),
        left,
    };
    for m in sorted {
        if let Some((dossier, at)) = asked
            && dossier != m.dossier
        {
            out.waiting += 1;
            stays.push(&stay(at, now, false));
            asked = None;
        }
        match (asked, m.by_beneficiary) {
            (None, true) => asked = Some((m.dossier, m.at)),
            (Some((_, at)), false) => {
                out.answered += 1;
                stays.push(&stay(at, m.at, true));
                asked = None;
            }
            _ => {}
        }
    }
    if let Some((_, at)) = asked {
        out.waiting += 1;
        stays.push(&stay(at, now, false));
    }
    if out.answered >= MIN_ANSWERED {
        stays.sort();
        out.median_days = Curve::of(&stays)
            .quantile(0.5)
            .map(|seconds| ((seconds + DAY - 1) / DAY).max(1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Zone;

    fn business() -> Business {
        Business::new(Zone::new(chrono_tz::Europe::Paris))
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn said(dossier: i64, when: &str, by_beneficiary: bool) -> Said {
        Said {
            dossier,
            at: at(when),
            by_beneficiary,
        }
    }

    /// Ten questions asked on a Monday morning, answered on the Thursday
    /// (3 business days); two more asked on a Friday, answered the next
    /// Tuesday (2 business days: the weekend does not count).
    #[test]
    fn the_median_counts_business_days_only() {
        let mut messages = Vec::new();
        for d in 0..10 {
            messages.push(said(d, "2026-03-02T09:00:00Z", true));
            messages.push(said(d, "2026-03-05T09:00:00Z", false));
        }
        for d in 10..12 {
            messages.push(said(d, "2026-03-06T09:00:00Z", true));
            messages.push(said(d, "2026-03-10T09:00:00Z", false));
        }
        let found = answer_delays(&messages, at("2026-04-01T00:00:00Z"), &business());
        assert_eq!(found.answered, 12);
        assert_eq!(found.waiting, 0);
        assert_eq!(found.median_days, Some(3));
    }

    /// A question asked on Friday 1 May (a holiday) and answered on Monday 4
    /// May took no business day at all: it counts as the shortest delay.
    #[test]
    fn holidays_do_not_count() {
        let mut messages = Vec::new();
        for d in 0..10 {
            messages.push(said(d, "2026-05-01T09:00:00Z", true));
            messages.push(said(d, "2026-05-04T07:00:00Z", false));
        }
        let found = answer_delays(&messages, at("2026-06-01T00:00:00Z"), &business());
        assert_eq!(found.median_days, Some(1));
    }

    /// Questions still waiting pull the median up: six answered in a day and
    /// six waiting for weeks make the median unknown (the curve does not reach
    /// one half within what was seen) rather than "one day".
    #[test]
    fn questions_waiting_are_censored_not_dropped() {
        let mut messages = Vec::new();
        for d in 0..12 {
            messages.push(said(d, "2026-03-02T09:00:00Z", true));
            if d < 10 {
                messages.push(said(d, "2026-03-03T09:00:00Z", false));
            }
        }
        let quick = answer_delays(&messages, at("2026-03-30T00:00:00Z"), &business());
        assert_eq!((quick.answered, quick.waiting), (10, 2));
        assert_eq!(quick.median_days, Some(1));
        let mut slow = Vec::new();
        for d in 0..20 {
            slow.push(said(d, "2026-03-02T09:00:00Z", true));
            if d < 10 {
                slow.push(said(d, "2026-03-03T09:00:00Z", false));
            }
        }
        let found = answer_delays(&slow, at("2026-03-30T00:00:00Z"), &business());
        assert_eq!((found.answered, found.waiting), (10, 10));
        assert_eq!(found.median_days, Some(1), "half answered within a day");
        slow.extend((20..22).map(|d| said(d, "2026-03-02T09:00:00Z", true)));
        let found = answer_delays(&slow, at("2026-03-30T00:00:00Z"), &business());
        assert_eq!(found.median_days, None, "fewer than half answered");
    }

    /// Several messages in a row are one question, timed from the first; a
    /// service's message without a question before it answers nothing; fewer
    /// than ten answers give no figure.
    #[test]
    fn threads_are_read_in_order() {
        let messages = [
            said(1, "2026-03-02T09:00:00Z", false),
            said(1, "2026-03-03T09:00:00Z", true),
            said(1, "2026-03-04T09:00:00Z", true),
            said(1, "2026-03-06T09:00:00Z", false),
            said(1, "2026-03-06T10:00:00Z", false),
            said(2, "2026-03-06T09:00:00Z", true),
            said(3, "2026-05-06T09:00:00Z", true),
        ];
        let found = answer_delays(&messages, at("2026-04-01T00:00:00Z"), &business());
        assert_eq!(
            found,
            AnswerDelays {
                answered: 1,
                waiting: 1,
                median_days: None
            }
        );
    }
}
