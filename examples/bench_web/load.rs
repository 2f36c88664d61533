//! The load: the clients browsing for the benchmark's duration, an import
//! beside them, and the summaries of the timings.

use super::*;

/// What the load measured: latencies in milliseconds.
pub(crate) struct Load {
    pub(crate) clients: usize,
    pub(crate) elapsed: f64,
    pub(crate) pages: Vec<f64>,
    pub(crate) reference: Vec<f64>,
    pub(crate) lists: u64,
    pub(crate) details: u64,
    pub(crate) errors: u64,
    pub(crate) import_secs: f64,
    pub(crate) import_ok: bool,
}

pub(crate) async fn load(
    base: &str,
    sessions: Vec<Session>,
    seconds: u64,
    bin: &Path,
    dir: &Path,
) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let (lists, details, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let clients = sessions.len();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for session in sessions {
        let (stop, base) = (stop.clone(), base.to_owned());
        let (lists, details, errors) = (lists.clone(), details.clone(), errors.clone());
        tasks.spawn(async move {
            let http = client();
            let (mut pages, mut reference) = (Vec::new(), Vec::new());
            let timed = async |url: String, into: &mut Vec<f64>| -> Option<String> {
                let clock = Instant::now();
                let answer = request(&http, "GET", &url, &session.cookies, &session.ip, None).await;
                into.push(clock.elapsed().as_secs_f64() * 1000.0);
                match answer {
                    Ok(a) if a.status == 200 => Some(a.body),
                    Ok(a) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("{url}: {}", a.status);
                        }
                        None
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("{e}");
                        }
                        None
                    }
                }
            };
            while !stop.load(Ordering::Relaxed) {
                let list = timed(format!("{base}/dossiers"), &mut pages).await;
                lists.fetch_add(1, Ordering::Relaxed);
                let links: Vec<String> = list
                    .as_deref()
                    .map(|body| {
                        body.split("href=\"")
                            .skip(1)
                            .filter_map(|rest| rest.split('"').next())
                            // The pages escape attributes as HTML does: `/` is `&#x2f;`.
                            .map(|href| href.replace("&#x2f;", "/").replace("&amp;", "&"))
                            .filter(|href| href.contains("/dossiers/"))
                            .map(|href| {
                                let path = href.find("/dossiers/").map_or(&*href, |at| &href[at..]);
                                format!("{base}{path}")
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for link in links {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    timed(link, &mut pages).await;
                    details.fetch_add(1, Ordering::Relaxed);
                }
                timed(format!("{base}/"), &mut reference).await;
            }
            (pages, reference)
        });
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
    stop.store(true, Ordering::Relaxed);
    let (mut pages, mut reference) = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (p, r) = done.expect("a client task");
        pages.extend(p);
        reference.extend(r);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (import_secs, import_ok) = importer.await.expect("the import beside");
    Load {
        clients,
        elapsed,
        pages,
        reference,
        lists: lists.load(Ordering::Relaxed),
        details: details.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        import_secs,
        import_ok,
    }
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
