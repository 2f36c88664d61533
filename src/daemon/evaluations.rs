//! The daemon's time-based work: stalled dossiers and deadlines at start-up and
//! on `[delays] evaluate`, the instructors' review on `[delays] review`, and the
//! schedule loop every periodic task runs on.

use super::*;

/// One kind of evaluation of time-based events, and its schedule.
pub(super) struct Evaluation {
    pub(super) rules: Arc<Rules>,
    pub(super) sources: Arc<Sources>,
    pub(super) config: Config,
    pub(super) delays: Arc<DelayCache>,
    pub(super) schedule: croner::Cron,
    pub(super) pass: Pass,
}

/// Looks for stalled dossiers and deadlines at start-up, then on `[delays]
/// evaluate`; or makes the instructors' review on `[delays] review`.
pub(super) async fn evaluate(
    evaluation: Evaluation,
    store: StoreHandle,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    // A review waits for its day; stalls and deadlines are looked for at once.
    every(
        &evaluation.schedule,
        evaluation.config.timezone,
        &cancel,
        evaluation.pass == Pass::Events,
        || evaluate_once(&evaluation, &store, &wake),
    )
    .await;
}

/// Runs `job` at each tick of `schedule` (read in `tz`), and first at once when
/// `at_start`, until `cancel`.
pub(super) async fn every<F: Future<Output = ()>>(
    schedule: &croner::Cron,
    tz: Tz,
    cancel: &CancellationToken,
    at_start: bool,
    mut job: impl FnMut() -> F,
) {
    let mut due = at_start;
    loop {
        if due {
            job().await;
        }
        due = true;
        let Ok(next) = next_run(schedule, tz, Utc::now()) else {
            error!(schedule = %schedule.pattern, "A schedule has no next occurrence: its task stops.");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

pub(super) async fn evaluate_once(evaluation: &Evaluation, store: &StoreHandle, wake: &Notify) {
    let result = evaluate_now(
        &evaluation.rules,
        &evaluation.sources,
        &evaluation.delays,
        store,
        evaluation.config.timezone,
        evaluation.pass,
    )
    .await;
    match result {
        Ok(summary) if summary.alerts_queued > 0 => wake.notify_one(),
        Ok(_) => {}
        Err(error) => {
            error!(error = %format!("{error:#}"), "The evaluation of time-based events failed; will retry at the next tick.");
        }
    }
}

/// Raises the time-based events `pass` looks for, now, on the store thread.
pub(super) async fn evaluate_now(
    rules: &Arc<Rules>,
    sources: &Arc<Sources>,
    delays: &DelayCache,
    store: &StoreHandle,
    tz: Tz,
    pass: Pass,
) -> anyhow::Result<timers::Evaluated> {
    let clock = Clock {
        tz,
        now: Utc::now(),
    };
    let delays = delays.get(clock.now).await?;
    let rules = Arc::clone(rules);
    let sources = Arc::clone(sources);
    let summary = store
        .call(move |store| {
            timers::evaluate(
                store,
                &delays,
                Some(&rules),
                &sources,
                &rules.lifecycle,
                clock,
                pass,
            )
        })
        .await??;
    Ok(summary)
}
