//! The staff view (issue 21, item 2): who is staff, and the list of dossiers.
//!
//! Staff sign in as beneficiaries do (`POST /connexion`); a session holds
//! nothing but its address, and its roles are derived at each request
//! ([`roles`]): `pilotage` from `[web] staff`, `instructeur` from `[web] staff`
//! or from the lookup of the dossiers' `instructor.email`. A reload that
//! removes a role takes effect at the next page.
//!
//! - `GET /instruction`: an instructor's dossiers, in four groups
//!   ([`super::worklist`]): those whose beneficiary waits for an answer (and
//!   since when), the stalled ones, those whose deadline comes within
//!   `[delays] review_horizon`, then the others, most recently changed first;
//!   each group bounded. A `pilotage` session sees every dossier and filters
//!   them with the query's `dispositif`, `etape`, `instructeur`, `connecteur`
//!   (a GET form, no script);
//! - `/instruction/dossiers/...`: a dossier's staff page and its reply form
//!   ([`super::staff_dossier`]); `/pilotage`: the managers' figures
//!   ([`super::pilotage`]).
//!
//! Without a session, every staff address answers 303 to the sign-in page; a
//! session without a staff role gets a 403 page and no data. A list is read on
//! the store's reader thread and kept [`LIST_FRESH`] for the same scope
//! ([`Lists`]; a reply forgets them all, a beneficiary's message shows within
//! that time): an
//! instructor going back and forth between the list and a dossier does not
//! read a thousand dossiers each time. A list shown is not recorded in the
//! dossiers' audit (a page lists hundreds); each staff dossier page and reply
//! is. A dossier's address is its
//! key on the beneficiary's side ([`super::dossier::key`]); [`Keys`] finds the
//! dossier back from it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use minijinja::{Value, context};

use super::WebState;
use super::front::{Asker, Current, flatten};
use super::guard;
use super::worklist::{self, Item, Why};
use crate::config::StaffRole;
use crate::dispatch::exchanges::STAFF_DOSSIERS_PATH;
use crate::store::{Choices, Scope};

/// How long a list read for one scope is shown again without reading it.
pub(super) const LIST_FRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// The most lists kept at once (one per instructor, and per `pilotage` filter).
const LISTS_KEPT: usize = 256;

/// A list read and sorted: how many dossiers it holds, for `pilotage` the
/// filters' choices, and its four groups as the page shows them.
#[derive(Debug)]
pub(super) struct Shown {
    total: usize,
    choices: Option<Choices>,
    groups: Value,
}

type List = Arc<Shown>;

/// The lists read lately, by scope and role, each with when it was read.
#[derive(Debug, Default)]
pub(super) struct Lists(std::sync::Mutex<HashMap<(Scope, bool), (std::time::Instant, List)>>);

impl Lists {
    fn get(&self, key: &(Scope, bool)) -> Option<List> {
        let lists = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lists
            .get(key)
            .filter(|(at, _)| at.elapsed() < LIST_FRESH)
            .map(|(_, list)| Arc::clone(list))
    }

    fn keep(&self, key: (Scope, bool), list: &List) {
        let mut lists = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if lists.len() >= LISTS_KEPT {
            lists.retain(|_, (at, _)| at.elapsed() < LIST_FRESH);
            if lists.len() >= LISTS_KEPT {
                lists.clear();
            }
        }
        lists.insert(key, (std::time::Instant::now(), Arc::clone(list)));
    }

    /// Forgets every list: a reply changed which dossiers wait.
    pub(super) fn forget(&self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// The dossiers' keys met so far, and the last row id they cover.
#[derive(Debug, Default)]
pub(super) struct Keys {
    by_key: HashMap<String, i64>,
    last: i64,
}

/// What a session may see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Roles {
    /// Instructs dossiers (`[web] staff` `instructeur`, or some dossier's
    /// `instructor.email`).
    pub(super) instructor: bool,
    /// `[web] staff` `pilotage`: every dossier, and `/pilotage`.
    pub(super) pilotage: bool,
    /// Is the beneficiary of some dossier.
    pub(super) beneficiary: bool,
}

impl Roles {
    /// Whether the staff view is open to the session.
    pub(super) fn staff(self) -> bool {
        self.instructor || self.pilotage
    }
}

/// The roles of `email`, from the running `[web] staff` and the store.
pub(super) async fn roles(asker: &Asker, email: &str) -> Result<Roles, Response> {
    let listed = {
        let current = asker.front.current.borrow();
        current
            .staff
            .iter()
            .find(|m| m.email == email)
            .map(|m| m.role)
    };
    let who = email.to_owned();
    let (instructs, beneficiary) = flatten(
        asker
            .store
            .read(move |s| {
                Ok::<_, crate::store::StoreError>((s.is_instructor(&who)?, s.is_beneficiary(&who)?))
            })
            .await,
    )
    .map_err(|e| asker.unavailable(&e))?;
    Ok(Roles {
        instructor: listed == Some(StaffRole::Instructor) || instructs,
        pilotage: listed == Some(StaffRole::Pilotage),
        beneficiary,
    })
}

/// A signed-in staff request.
pub(super) struct StaffAsker {
    /// What every handler reads.
    pub(super) asker: Asker,
    /// The session's address (lowercase).
    pub(super) email: String,
    /// The CSRF token of the session's forms.
    pub(super) csrf: String,
    /// The front office's secret (CSRF tokens, dossiers' keys).
    pub(super) secret: Vec<u8>,
    /// What the session may see.
    pub(super) roles: Roles,
    /// The session's cookie value, which its CSRF tokens are bound to.
    pub(super) cookie: String,
}

impl StaffAsker {
    /// The staff session of a request, or the answer: 404 when the front
    /// office is off, 303 to the sign-in page without a session, 403 without
    /// a staff role.
    pub(super) async fn of(
        state: &WebState,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Result<Self, Response> {
        let Some(asker) = Asker::of(state, peer, headers) else {
            return Err(super::unsubscribe::not_found().await);
        };
        let Some((email, cookie)) = asker.session(headers).await? else {
            return Err(asker.redirect("", None));
        };
        let roles = roles(&asker, &email).await?;
        if !roles.staff() {
            return Err(asker.refusal(
                StatusCode::FORBIDDEN,
                "Espace réservé aux agents",
                "Cette page est réservée aux agents de la Région qui instruisent ou suivent \
                 les dossiers. Votre adresse n'y donne pas accès : vos propres dossiers sont \
                 sur la page « Mes dossiers d'aide ».",
            ));
        }
        let secret = asker.secret().await?;
        Ok(Self {
            csrf: guard::csrf_token(&secret, &format!("session:{cookie}")),
            asker,
            email,
            secret,
            roles,
            cookie,
        })
    }

    /// Renders a staff page: what every page has, and the staff's links.
    pub(super) fn page(&self, page: &str, title: &str, extra: Value) -> Response {
        let base = &self.asker.front.base;
        let ctx = context! {
            ..extra,
            ..context! {
                signed_in => &self.email,
                csrf => &self.csrf,
                wide => true,
                nav => context! {
                    instruction => format!("{base}instruction"),
                    pilotage => self.roles.pilotage.then(|| format!("{base}pilotage")),
                    dossiers => self.roles.beneficiary.then(|| format!("{base}dossiers")),
                },
            }
        };
        self.asker.page(StatusCode::OK, page, title, ctx)
    }

    /// The address of dossier `rowid`'s staff page (the one the e-mails
    /// about its exchanges link to, [`STAFF_DOSSIERS_PATH`]).
    pub(super) fn href(&self, rowid: i64) -> String {
        format!(
            "{}{}/{}",
            self.asker.front.base.trim_end_matches('/'),
            STAFF_DOSSIERS_PATH,
            super::dossier::key(&self.secret, rowid)
        )
    }

    /// The dossier whose key is `key`, when the session may see it: every
    /// dossier for `pilotage`, an instructor's own otherwise. `None` for an
    /// unknown key and for a dossier that is not the session's alike.
    pub(super) async fn dossier(&self, key: &str) -> Result<Option<i64>, Response> {
        let Some(rowid) = self.resolve(key).await? else {
            return Ok(None);
        };
        if self.roles.pilotage {
            return Ok(Some(rowid));
        }
        let who = self.email.clone();
        let mine = flatten(
            self.asker
                .store
                .read(move |s| s.instructs(&who, rowid))
                .await,
        )
        .map_err(|e| self.asker.unavailable(&e))?;
        Ok(mine.then_some(rowid))
    }

    /// The row id whose key is `key`: the keys met so far, else those of the
    /// dossiers added since.
    async fn resolve(&self, key: &str) -> Result<Option<i64>, Response> {
        if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut keys = self.asker.front.staff_keys.lock().await;
        if let Some(rowid) = keys.by_key.get(key) {
            return Ok(Some(*rowid));
        }
        let after = keys.last;
        let ids = flatten(
            self.asker
                .store
                .call(move |s| s.dossier_ids_after(after))
                .await,
        )
        .map_err(|e| self.asker.unavailable(&e))?;
        // A hundred thousand HMACs the first time: off the runtime's threads.
        let secret = self.secret.clone();
        let made = tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .map(|rowid| (super::dossier::key(&secret, rowid), rowid))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| self.asker.unavailable(&e.into()))?;
        for (made, rowid) in made {
            keys.last = keys.last.max(rowid);
            keys.by_key.insert(made, rowid);
        }
        Ok(keys.by_key.get(key).copied())
    }

    /// The one answer for a dossier the session may not see, or that is not.
    pub(super) fn not_found(&self) -> Response {
        self.asker.refusal(
            StatusCode::NOT_FOUND,
            "Page introuvable",
            "Cette page n'existe pas, ou elle concerne un dossier que vous n'instruisez pas.",
        )
    }
}

/// The staff view's routes.
pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/instruction", get(instruction))
        .route(
            &format!("{STAFF_DOSSIERS_PATH}/{{key}}"),
            get(super::staff_dossier::page),
        )
        .route("/instruction/{*rest}", get(elsewhere).post(elsewhere))
        .route("/pilotage", get(super::pilotage::page))
}

/// The staff view's forms that carry a message: their bodies may be larger
/// ([`super::MAX_MESSAGE_BODY`]).
pub(super) fn message_routes() -> Router<WebState> {
    Router::new().route(
        &format!("{STAFF_DOSSIERS_PATH}/{{key}}/reponses"),
        post(super::staff_dossier::reply),
    )
}

/// Any other address under `/instruction/`: staff only, and nothing there.
async fn elsewhere(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match StaffAsker::of(&state, peer, &headers).await {
        Ok(staff) => staff.not_found(),
        Err(answer) => answer,
    }
}

/// The fields the list shows, read after those of the lifecycle's deadlines.
const FIELDS: [&str; 4] = [
    "title",
    "beneficiary.name",
    "instructor.name",
    "instructor.email",
];

/// `GET /instruction`: the session's dossiers, or every one for `pilotage`.
async fn instruction(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let staff = match StaffAsker::of(&state, peer, &headers).await {
        Ok(staff) => staff,
        Err(answer) => return answer,
    };
    let current = Arc::clone(&staff.asker.front.current.borrow());
    let scope = if staff.roles.pilotage {
        filters(query.as_deref().unwrap_or_default())
    } else {
        Scope {
            instructor: Some(staff.email.clone()),
            ..Scope::default()
        }
    };
    let list = match read_list(&staff, &current, scope.clone()).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let title = if staff.roles.pilotage {
        "Tous les dossiers"
    } else {
        "Mes dossiers à instruire"
    };
    staff.page(
        "instruction",
        title,
        context! {
            ..list.groups.clone(),
            ..context! {
                pilotage => staff.roles.pilotage,
                filters => list.choices.as_ref().map(|c| filter_form(c, &scope, &current)),
                total => list.total,
                shown_at_most => worklist::SHOWN,
            }
        },
    )
}

/// The dossiers of `scope` (with the fields the list shows after the
/// deadlines' ones, and for `pilotage` the filters' choices), sorted into the
/// page's groups: kept [`LIST_FRESH`] for the same scope.
async fn read_list(staff: &StaffAsker, current: &Current, scope: Scope) -> Result<List, Response> {
    let pilotage = staff.roles.pilotage;
    let key = (scope, pilotage);
    let lists = &staff.asker.front.lists;
    if let Some(list) = lists.get(&key) {
        return Ok(list);
    }
    let mut fields: Vec<String> = current
        .rules
        .lifecycle
        .deadlines
        .iter()
        .map(|d| d.field.clone())
        .collect();
    fields.extend(FIELDS.iter().map(|f| (*f).to_owned()));
    let scope = key.0.clone();
    let (rows, choices) = flatten(
        staff
            .asker
            .store
            .read(move |s| {
                let rows = s.work_rows(&scope, &fields)?;
                let choices = if pilotage {
                    Some(s.staff_choices()?)
                } else {
                    None
                };
                Ok::<_, crate::store::StoreError>((rows, choices))
            })
            .await,
    )
    .map_err(|e| staff.asker.unavailable(&e))?;
    let now = Utc::now();
    let delays = current
        .delays
        .get(now)
        .await
        .map_err(|e| staff.asker.unavailable(&e))?;
    let clock = worklist::Clock {
        tz: staff.asker.front.tz,
        now,
        horizon: current.horizon,
    };
    let groups = worklist::sort(&rows, &current.rules.lifecycle, &delays, clock);
    let deadlines = current.rules.lifecycle.deadlines.len();
    let group = |items: &[Item<'_>], total: usize| {
        context! {
            items => items.iter().map(|i| item(staff, current, i, deadlines, clock)).collect::<Vec<_>>(),
            total => total,
            more => total.saturating_sub(items.len()),
        }
    };
    let list = Arc::new(Shown {
        total: rows.len(),
        choices,
        groups: context! {
            waiting => group(&groups.waiting, groups.totals[0]),
            stalled => group(&groups.stalled, groups.totals[1]),
            deadlines => group(&groups.deadlines, groups.totals[2]),
            rest => group(&groups.rest, groups.totals[3]),
        },
    });
    lists.keep(key, &list);
    Ok(list)
}

/// The scope a `pilotage` query asks for: `dispositif`, `etape`,
/// `instructeur`, `connecteur`, each left out when empty.
fn filters(query: &str) -> Scope {
    let mut scope = Scope::default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.trim();
        let value = (!value.is_empty()).then(|| value.to_owned());
        match name.as_ref() {
            "dispositif" => scope.scheme = value,
            "etape" => scope.step = value,
            "instructeur" => scope.instructor = value,
            "connecteur" => scope.connector = value,
            _ => {}
        }
    }
    scope
}

/// The filter form of `pilotage`: each select's options, the chosen one marked.
fn filter_form(choices: &Choices, scope: &Scope, current: &Current) -> Value {
    let options = |values: Vec<(String, String)>, chosen: &Option<String>| {
        values
            .into_iter()
            .map(|(value, label)| {
                let selected = chosen.as_deref() == Some(value.as_str());
                context! { value => value, label => label, selected => selected }
            })
            .collect::<Vec<_>>()
    };
    let same = |list: &[String]| list.iter().map(|v| (v.clone(), v.clone())).collect();
    let steps = current
        .rules
        .lifecycle
        .steps()
        .iter()
        .map(|s| (s.id.clone(), s.label.clone()))
        .collect();
    context! {
        schemes => options(same(&choices.schemes), &scope.scheme),
        steps => options(steps, &scope.step),
        instructors => options(same(&choices.instructors), &scope.instructor),
        connectors => options(same(&choices.connectors), &scope.connector),
        active => *scope != Scope::default(),
    }
}

/// One dossier of the list, as the page shows it.
fn item(
    staff: &StaffAsker,
    current: &Current,
    i: &Item<'_>,
    deadlines: usize,
    clock: worklist::Clock,
) -> Value {
    let value = |n: usize| i.row.values.get(deadlines + n).cloned().flatten();
    let why = match &i.why {
        Why::Waiting(since) => format!(
            "attend une réponse depuis {}",
            worklist::waited(clock.now - *since)
        ),
        Why::Stalled(since) => format!(
            "bloqué à cette étape depuis le {}",
            super::dossier::day(*since, clock.tz)
        ),
        Why::Deadline(day, label) => {
            format!("{} : {}", label, crate::rules::french::date(*day))
        }
        Why::Rest => format!(
            "dernier changement le {}",
            super::dossier::day(i.row.changed_at, clock.tz)
        ),
    };
    context! {
        reference => &i.row.reference,
        href => staff.href(i.row.rowid),
        title => value(0),
        beneficiary => value(1),
        instructor => value(2).or_else(|| value(3)),
        scheme => &i.row.scheme,
        step => current.rules.lifecycle.label(&i.row.step),
        present => i.row.present,
        why => why,
    }
}
