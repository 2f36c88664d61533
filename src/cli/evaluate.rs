//! `alertissimo evaluate [--review]`: stalled dossiers, deadlines or the
//! instructors' review, now, by the running daemon or alone.

use super::*;

pub(super) fn evaluate(config: &Config, review: bool, json: bool) -> anyhow::Result<Exit> {
    let summary = match hand_off(config, &Request::Evaluate { review })? {
        Some(Answer::Evaluated(summary)) => summary,
        Some(other) => return Ok(failed(other)),
        None => match evaluate_alone(config, review)? {
            Ok(summary) => summary,
            Err(exit) => return Ok(exit),
        },
    };
    if json {
        out!("{}", serde_json::to_string(&summary)?);
    } else {
        out!(
            "{} open dossiers looked at: {} newly stalled, {} deadline reminders, {} in a review, {} alerts queued{}",
            summary.dossiers,
            summary.stalled,
            summary.deadline,
            summary.review,
            summary.alerts_queued,
            summary
                .run_id
                .map(|id| format!(" (run {id})"))
                .unwrap_or_default()
        );
    }
    Ok(Exit::Ok)
}

pub(super) fn evaluate_alone(
    config: &Config,
    review: bool,
) -> anyhow::Result<Result<crate::timers::Evaluated, Exit>> {
    let loaded = match load_or_explain(config) {
        Ok(l) => l,
        Err(exit) => return Ok(Err(exit)),
    };
    let Some(rules) = loaded.rules else {
        return Ok(Err(Exit::Config));
    };
    let mut store = open_existing(config)?;
    let now = Utc::now();
    let delays = store.delays(
        &loaded.lifecycle,
        config.delays.min_sample,
        now,
        config.timezone,
    )?;
    let summary = crate::timers::evaluate(
        &mut store,
        &delays,
        Some(&rules),
        &crate::connector::Connector::sources(&loaded.connectors),
        &loaded.lifecycle,
        crate::timers::Clock {
            tz: config.timezone,
            now,
        },
        if review {
            crate::timers::Pass::Review(config.delays.review_horizon)
        } else {
            crate::timers::Pass::Events
        },
    )?;
    Ok(Ok(summary))
}
