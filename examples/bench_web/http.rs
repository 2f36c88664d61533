//! The clients' side: HTTP requests with their timings, the daemon's
//! readiness, and the sessions opened through the real sign-in.

use super::*;

pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An answer: status, the cookies it sets (`name=value`), its location and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) cookies: Vec<String>,
    pub(crate) body: String,
}

/// One request; `client_ip` goes into `X-Forwarded-For`.
pub(crate) async fn request(
    http: &HttpClient,
    method: &str,
    url: &str,
    cookies: &str,
    client_ip: &str,
    form: Option<String>,
) -> Result<Answer, String> {
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("x-forwarded-for", client_ip);
    if !cookies.is_empty() {
        builder = builder.header("cookie", cookies);
    }
    if form.is_some() {
        builder = builder.header("content-type", "application/x-www-form-urlencoded");
    }
    let body = Full::new(Bytes::from(form.unwrap_or_default()));
    let answer = http
        .request(builder.body(body).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = answer.status().as_u16();
    let cookies = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(str::to_owned))
        .collect();
    let bytes = answer
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    Ok(Answer {
        status,
        cookies,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

pub(crate) async fn wait_ready(base: &str) -> bool {
    let http = client();
    for _ in 0..600 {
        if let Ok(a) = request(&http, "GET", &format!("{base}/"), "", "10.9.9.9", None).await
            && a.status == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The client address of client `i`.
pub(crate) fn client_ip(i: usize) -> String {
    format!("10.{}.{}.{}", 1 + i / 65_536, (i / 256) % 256, i % 256)
}

/// A signed-in client: its connection and its cookies.
pub(crate) struct Session {
    pub(crate) ip: String,
    pub(crate) cookies: String,
}

/// Merges the cookies an answer sets into `jar` (`name=value; …`).
pub(crate) fn merge(jar: &mut Vec<String>, set: &[String]) {
    for cookie in set {
        let name = cookie.split('=').next().unwrap_or_default();
        jar.retain(|c| c.split('=').next() != Some(name));
        jar.push(cookie.clone());
    }
}

/// Signs each address in through the real flow, from client addresses
/// numbered from `first_ip`; `None` when one fails.
pub(crate) async fn sign_in_all(
    base: &str,
    dir: &Path,
    emails: &[String],
    first_ip: usize,
) -> Option<Vec<Session>> {
    let http = client();
    // Ask for every link, 20 at a time.
    let mut jars: Vec<Vec<String>> = Vec::with_capacity(emails.len());
    for chunk in emails.chunks(20).enumerate() {
        let (c, chunk) = chunk;
        let mut asks = tokio::task::JoinSet::new();
        for (k, email) in chunk.iter().enumerate() {
            let (http, base, email) = (http.clone(), base.to_owned(), email.clone());
            let ip = client_ip(first_ip + c * 20 + k);
            asks.spawn(async move {
                let home = request(&http, "GET", &format!("{base}/"), "", &ip, None).await?;
                let mut jar = Vec::new();
                merge(&mut jar, &home.cookies);
                let at = home
                    .body
                    .find("name=\"csrf\" value=\"")
                    .ok_or("no csrf field on the home page")?;
                let rest = &home.body[at + "name=\"csrf\" value=\"".len()..];
                let csrf = &rest[..rest.find('"').unwrap_or(0)];
                let form = format!("csrf={csrf}&email={}", email.replace('@', "%40"));
                let asked = request(
                    &http,
                    "POST",
                    &format!("{base}/connexion"),
                    &jar.join("; "),
                    &ip,
                    Some(form),
                )
                .await?;
                if asked.status != 200 {
                    return Err(format!("POST /connexion: {}", asked.status));
                }
                merge(&mut jar, &asked.cookies);
                Ok::<_, String>((c * 20 + k, jar))
            });
        }
        let mut done: Vec<(usize, Vec<String>)> = Vec::new();
        while let Some(result) = asks.join_next().await {
            match result.expect("a sign-in task") {
                Ok(one) => done.push(one),
                Err(e) => {
                    eprintln!("sign-in failed: {e}");
                    return None;
                }
            }
        }
        done.sort_by_key(|(i, _)| *i);
        jars.extend(done.into_iter().map(|(_, jar)| jar));
    }
    // The links, from the outbox.
    let mut links = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !emails.iter().all(|e| links.contains_key(e)) {
        if Instant::now() > deadline {
            let arrived = emails.iter().filter(|e| links.contains_key(*e)).count();
            eprintln!(
                "only {arrived} of {} sign-in messages arrived",
                emails.len()
            );
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for entry in std::fs::read_dir(dir.join("outbox"))
            .ok()?
            .filter_map(Result::ok)
        {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let text = text.replace("=\r\n", "").replace("=3D", "=");
            let Some(at) = text.find("/connexion/") else {
                continue;
            };
            let link = text[at..at + "/connexion/".len() + 48].to_owned();
            if let Some(to) = text
                .lines()
                .find_map(|l| l.strip_prefix("To: "))
                .map(|to| to.trim().trim_matches(['<', '>']).to_owned())
            {
                links.insert(to, link);
            }
        }
    }
    let mut sessions = Vec::with_capacity(emails.len());
    for (i, (email, mut jar)) in emails.iter().zip(jars).enumerate() {
        let ip = client_ip(first_ip + i);
        let Some(link) = links.get(email) else {
            eprintln!("no sign-in message to {email}");
            return None;
        };
        let followed = request(
            &http,
            "GET",
            &format!("{base}{link}"),
            &jar.join("; "),
            &ip,
            None,
        )
        .await
        .ok()?;
        if followed.status != 303 {
            eprintln!("{link}: {} instead of 303", followed.status);
            return None;
        }
        merge(&mut jar, &followed.cookies);
        sessions.push(Session {
            ip,
            cookies: jar.join("; "),
        });
    }
    Some(sessions)
}
