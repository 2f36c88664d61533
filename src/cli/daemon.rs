//! `alertissimo run`: the daemon, with the rule a start and a reload follow
//! (connector files that do not validate are left out; the rest must be valid).

use super::*;

pub(super) fn run_daemon(config: Config) -> anyhow::Result<Exit> {
    let setup = match daemon_setup(config) {
        Ok(setup) => setup,
        Err(problems) => {
            eprint!("invalid configuration:\n{problems}");
            return Ok(Exit::Config);
        }
    };
    let today = chrono::Utc::now()
        .with_timezone(&setup.config.timezone)
        .date_naive();
    let sessions = setup
        .rules
        .lifecycle
        .sessions_running_out(today, super::check::SESSIONS_AHEAD);
    for warning in warnings::all(&setup.config, &setup.connectors)
        .into_iter()
        .chain(sessions)
    {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // A reload follows the rule of a start: every file valid but connector files,
    // which are left out (the others run); else the running set stays.
    let file = setup.config.file.clone();
    let reload = move || -> Result<crate::daemon::Setup, String> {
        let config = Config::load(file.as_deref()).map_err(|p| p.to_string())?;
        daemon_setup(config).map_err(|p| p.to_string())
    };
    runtime.block_on(crate::daemon::run(
        setup,
        reload,
        crate::daemon::shutdown_signal(),
    ))?;
    Ok(Exit::Ok)
}

/// What the daemon runs with: the valid connectors, the files left out, and the
/// rules. Rules are all or nothing (a broken rule could tell people wrong
/// things); a connector file that does not validate is left out, and the others
/// run, as long as one does. `check` applies the same rule.
///
/// # Errors
/// Every problem, when the daemon cannot run.
pub(super) fn daemon_setup(config: Config) -> Result<crate::daemon::Setup, Problems> {
    let mut problems = Problems::default();
    match load_apart(&config, &mut problems) {
        Some(Loaded {
            connectors,
            left_out,
            rules: Some(rules),
            ..
        }) if problems.is_empty() && !connectors.is_empty() => Ok(crate::daemon::Setup {
            config,
            connectors,
            left_out,
            rules: Arc::new(rules),
        }),
        loaded => {
            let mut all = Problems::default();
            for l in loaded.map(|l| l.left_out).unwrap_or_default() {
                all.append(l.problems);
            }
            all.append(problems);
            Err(all)
        }
    }
}
