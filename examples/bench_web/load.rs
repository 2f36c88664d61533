//! The load: the clients browsing for the benchmark's duration (beneficiaries
//! and staff), beneficiaries writing to the service at a steady rate, an import
//! beside them, and the summaries of the timings.

use super::*;

/// The signed-in clients of the load.
pub(crate) struct Clients {
    /// Beneficiaries browsing their list and their dossiers' pages.
    pub(crate) beneficiaries: Vec<Session>,
    /// Instructors browsing `/instruction` and their dossiers' staff pages.
    pub(crate) instructors: Vec<Session>,
    /// The `pilotage` member, asking for `/pilotage` again and again.
    pub(crate) pilotage: Vec<Session>,
    /// Beneficiaries writing to the service, in turn.
    pub(crate) writers: Vec<Session>,
    /// Messages written a minute, all writers together.
    pub(crate) per_minute: u32,
}

/// What the load measured: latencies in milliseconds.
#[derive(Default)]
pub(crate) struct Load {
    pub(crate) clients: usize,
    pub(crate) elapsed: f64,
    /// The beneficiaries' pages.
    pub(crate) pages: Vec<f64>,
    /// The instructors' pages.
    pub(crate) staff: Vec<f64>,
    /// `/pilotage`.
    pub(crate) pilotage: Vec<f64>,
    /// The messages written (`POST /dossiers/{key}/messages`, to the 303).
    pub(crate) writes: Vec<f64>,
    pub(crate) reference: Vec<f64>,
    pub(crate) lists: u64,
    pub(crate) details: u64,
    pub(crate) errors: u64,
    pub(crate) import_secs: f64,
    pub(crate) import_ok: bool,
}

/// What one browsing client does in a round: the page it starts from, the
/// links of that page it follows (those whose path starts so; at most `max`).
#[derive(Clone, Copy)]
struct Walk {
    start: &'static str,
    follow: &'static str,
    max: usize,
}

const BENEFICIARY: Walk = Walk {
    start: "/dossiers",
    follow: "/dossiers/",
    max: usize::MAX,
};
const INSTRUCTOR: Walk = Walk {
    start: "/instruction",
    follow: "/instruction/dossiers/",
    max: 5,
};
const PILOTAGE_WALK: Walk = Walk {
    start: "/pilotage",
    follow: "/instruction/dossiers/",
    max: 0,
};

/// The counters the clients share.
#[derive(Clone, Default)]
struct Shared {
    stop: Arc<AtomicBool>,
    lists: Arc<AtomicU64>,
    details: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

impl Shared {
    fn failed(&self, what: &str) {
        if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("{what}");
        }
    }
}

/// The paths of `body`'s links that start with `prefix`, at most `max`.
fn links(body: &str, prefix: &str, max: usize) -> Vec<String> {
    body.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        // The pages escape attributes as HTML does: `/` is `&#x2f;`.
        .map(|href| href.replace("&#x2f;", "/").replace("&amp;", "&"))
        .filter_map(|href| href.find(prefix).map(|at| href[at..].to_owned()))
        .take(max)
        .collect()
}

/// One GET, timed into `into`: the body when it answered 200.
async fn timed(
    http: &HttpClient,
    session: &Session,
    url: String,
    into: &mut Vec<f64>,
    shared: &Shared,
) -> Option<String> {
    let clock = Instant::now();
    let answer = request(http, "GET", &url, &session.cookies, &session.ip, None).await;
    into.push(clock.elapsed().as_secs_f64() * 1000.0);
    match answer {
        Ok(a) if a.status == 200 => Some(a.body),
        Ok(a) => {
            shared.failed(&format!("{url}: {}", a.status));
            None
        }
        Err(e) => {
            shared.failed(&e);
            None
        }
    }
}

/// A client browsing by `walk` until the load stops: its pages' latencies and
/// the reference's.
async fn browse(
    base: String,
    session: Session,
    walk: Walk,
    shared: Shared,
) -> (Vec<f64>, Vec<f64>) {
    let http = client();
    let (mut pages, mut reference) = (Vec::new(), Vec::new());
    while !shared.stop.load(Ordering::Relaxed) {
        let url = format!("{base}{}", walk.start);
        let start = timed(&http, &session, url, &mut pages, &shared).await;
        shared.lists.fetch_add(1, Ordering::Relaxed);
        for link in links(start.as_deref().unwrap_or_default(), walk.follow, walk.max) {
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            timed(
                &http,
                &session,
                format!("{base}{link}"),
                &mut pages,
                &shared,
            )
            .await;
            shared.details.fetch_add(1, Ordering::Relaxed);
        }
        timed(&http, &session, format!("{base}/"), &mut reference, &shared).await;
    }
    (pages, reference)
}

/// A beneficiary writing to the service about their first dossier: once every
/// `every`, from `offset` on, until the load stops; each message's latency.
async fn write(
    base: String,
    session: Session,
    (offset, every): (Duration, Duration),
    shared: Shared,
) -> Vec<f64> {
    let http = client();
    let mut writes = Vec::new();
    let mut scratch = Vec::new();
    let list = timed(
        &http,
        &session,
        format!("{base}/dossiers"),
        &mut scratch,
        &shared,
    )
    .await;
    let Some(page) = links(list.as_deref().unwrap_or_default(), "/dossiers/", 1).pop() else {
        shared.failed("a writer has no dossier");
        return writes;
    };
    let body = timed(
        &http,
        &session,
        format!("{base}{page}"),
        &mut scratch,
        &shared,
    )
    .await;
    let body = body.unwrap_or_default();
    let Some(at) = body.find("name=\"csrf\" value=\"") else {
        shared.failed("no csrf field on a dossier's page");
        return writes;
    };
    let rest = &body[at + "name=\"csrf\" value=\"".len()..];
    let csrf = rest[..rest.find('"').unwrap_or(0)].to_owned();
    let started = Instant::now();
    let mut n = 0u32;
    loop {
        let due = offset + every * n;
        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        if shared.stop.load(Ordering::Relaxed) {
            return writes;
        }
        n += 1;
        let form = format!(
            "csrf={csrf}&texte=Bonjour%2C+message+{n}+du+banc+d%27essai+%3A+o%C3%B9+en+est+mon+dossier+%3F"
        );
        let url = format!("{base}{page}/messages");
        let clock = Instant::now();
        let answer = request(
            &http,
            "POST",
            &url,
            &session.cookies,
            &session.ip,
            Some(form),
        )
        .await;
        writes.push(clock.elapsed().as_secs_f64() * 1000.0);
        match answer {
            Ok(a) if a.status == 303 => {}
            Ok(a) => shared.failed(&format!("POST {url}: {}", a.status)),
            Err(e) => shared.failed(&e),
        }
    }
}

pub(crate) async fn load(
    base: &str,
    clients: Clients,
    seconds: u64,
    bin: &Path,
    dir: &Path,
) -> Load {
    let shared = Shared::default();
    let start = Instant::now();
    let mut browsing = tokio::task::JoinSet::new();
    let groups = [
        (clients.beneficiaries, BENEFICIARY),
        (clients.instructors, INSTRUCTOR),
        (clients.pilotage, PILOTAGE_WALK),
    ];
    let mut count = clients.writers.len();
    for (sessions, walk) in groups {
        count += sessions.len();
        for session in sessions {
            let task = browse(base.to_owned(), session, walk, shared.clone());
            browsing.spawn(async move { (walk.start, task.await) });
        }
    }
    // The writers in turn: together, `per_minute` messages a minute.
    let mut writing = tokio::task::JoinSet::new();
    let writers = clients.writers.len().max(1) as u32;
    let gap = Duration::from_secs(60) / clients.per_minute.max(1);
    for (i, session) in clients.writers.into_iter().enumerate() {
        let timing = (gap * i as u32, gap * writers);
        writing.spawn(write(base.to_owned(), session, timing, shared.clone()));
    }
    // The import beside the load, a third of the way in.
    let importer = {
        let (bin, dir) = (bin.to_owned(), dir.to_owned());
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_secs(seconds / 3));
            import(&bin, &dir, "3b.csv")
        })
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut load = Load {
        clients: count,
        ..Load::default()
    };
    while let Some(done) = browsing.join_next().await {
        let (start, (pages, reference)) = done.expect("a client task");
        match start {
            "/dossiers" => load.pages.extend(pages),
            "/instruction" => load.staff.extend(pages),
            _ => load.pilotage.extend(pages),
        }
        load.reference.extend(reference);
    }
    while let Some(done) = writing.join_next().await {
        load.writes.extend(done.expect("a writer task"));
    }
    load.elapsed = start.elapsed().as_secs_f64();
    (load.import_secs, load.import_ok) = importer.await.expect("the import beside");
    load.lists = shared.lists.load(Ordering::Relaxed);
    load.details = shared.details.load(Ordering::Relaxed);
    load.errors = shared.errors.load(Ordering::Relaxed);
    load
}

/// Latencies' count, median, 99th percentile and maximum.
pub(crate) struct Summary {
    pub(crate) count: usize,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

pub(crate) fn summary(v: &[f64]) -> Summary {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if v.is_empty() {
            0.0
        } else {
            v[((v.len() - 1) as f64 * q).round() as usize]
        }
    };
    Summary {
        count: v.len(),
        p50: at(0.5),
        p99: at(0.99),
        max: at(1.0),
    }
}
