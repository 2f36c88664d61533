//! The front office's page templates: those of `rules/pages/`, embedded in the
//! binary, each replaced by a file of the same name in `RULES_DIR/pages/` when
//! an administrator writes one (as the message templates are theirs to edit).
//!
//! Owns the minijinja environment of the pages: HTML auto-escaping, strict
//! undefined variables, and no access to anything but what a page is given.

use std::path::Path;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use tracing::{info, warn};

/// The shipped pages, by file name.
const SHIPPED: [(&str, &str); 8] = [
    (
        "_page.html.jinja",
        include_str!("../../rules/pages/_page.html.jinja"),
    ),
    (
        "accueil.html.jinja",
        include_str!("../../rules/pages/accueil.html.jinja"),
    ),
    (
        "envoye.html.jinja",
        include_str!("../../rules/pages/envoye.html.jinja"),
    ),
    (
        "lien.html.jinja",
        include_str!("../../rules/pages/lien.html.jinja"),
    ),
    (
        "erreur.html.jinja",
        include_str!("../../rules/pages/erreur.html.jinja"),
    ),
    (
        "dossiers.html.jinja",
        include_str!("../../rules/pages/dossiers.html.jinja"),
    ),
    (
        "dossier.html.jinja",
        include_str!("../../rules/pages/dossier.html.jinja"),
    ),
    (
        "message.html.jinja",
        include_str!("../../rules/pages/message.html.jinja"),
    ),
];

/// The folder of `RULES_DIR` whose files replace the shipped pages.
pub const PAGES_DIR: &str = "pages";

/// The compiled pages.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
    /// The shipped pages alone, when some of `env` are the administrators':
    /// a page of theirs that fails to render falls back on its shipped one.
    shipped: Option<Environment<'static>>,
}

/// An environment for pages: HTML escaped, undefined variables refused,
/// rendering bounded.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_fuel(Some(crate::rules::template::FUEL));
    env
}

/// The page files of `dir` that replace a shipped page (not a copy of it) and
/// compile, and a
/// problem for each other file of the folder (one that does not compile, one
/// that is no page of the front office), naming the file.
fn own_pages(dir: &Path) -> (Vec<(&'static str, String)>, Vec<String>) {
    let (mut own, mut problems) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (own, problems);
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for path in files {
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some((name, shipped)) = SHIPPED.iter().find(|(n, _)| Some(*n) == file.as_deref())
        else {
            let known: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
            problems.push(format!(
                "{}: not a page of the front office, so never used (the pages are {})",
                path.display(),
                known.join(", ")
            ));
            continue;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{}: cannot be read: {e}", path.display()));
                continue;
            }
        };
        if text == *shipped {
            // A copy of the shipped page (the repository's own `rules/`).
            continue;
        }
        match environment().template_from_named_str(name, &text) {
            Ok(_) => own.push((*name, text)),
            Err(e) => problems.push(format!(
                "{}: does not compile, so the shipped page is served instead: {e}",
                path.display()
            )),
        }
    }
    (own, problems)
}

impl Pages {
    /// The shipped pages, each replaced by its file in `dir` when there is one
    /// that compiles (one that does not is logged, and the shipped one kept).
    pub fn load(dir: &Path) -> Self {
        let (own, problems) = own_pages(dir);
        for problem in problems {
            warn!("{problem}");
        }
        let mut env = environment();
        for (name, _) in &own {
            info!(page = %dir.join(name).display(), "The front office uses this page of its own.");
        }
        let shipped = (!own.is_empty()).then(Self::shipped);
        for (name, text) in SHIPPED {
            match own.iter().position(|(n, _)| *n == name) {
                Some(i) => env.add_template_owned(name, own[i].1.clone()),
                None => env.add_template(name, text),
            }
            .expect(
                "the pages were compiled above, and the shipped ones compile (a test renders each)",
            );
        }
        Self { env, shipped }
    }

    /// The shipped pages alone.
    fn shipped() -> Environment<'static> {
        let mut env = environment();
        for (name, text) in SHIPPED {
            env.add_template(name, text)
                .expect("the shipped pages compile (a test renders each)");
        }
        env
    }

    /// What `alertissimo check` says of the administrators' pages in `dir`:
    /// each file that does not compile or is no page, naming it.
    pub fn problems(dir: &Path) -> Vec<String> {
        own_pages(dir).1
    }

    /// Renders page `name` (`accueil`) with `ctx`. A page of the
    /// administrators' that fails (a variable it does not have) is logged and
    /// the shipped one rendered instead.
    ///
    /// # Errors
    /// A reason, when the page fails to render.
    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, String> {
        let file = format!("{name}.html.jinja");
        let render = |env: &Environment<'static>| {
            env.get_template(&file)
                .and_then(|t| t.render(ctx))
                .map_err(|e| format!("{e}"))
        };
        match (render(&self.env), &self.shipped) {
            (Err(error), Some(shipped)) => {
                warn!(page = %file, %error, "A page of the administrators' failed: the shipped one is served.");
                render(shipped)
            }
            (rendered, _) => rendered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_administrators_page_is_used_checked_and_replaced_when_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = minijinja::context! { why => "une raison" };
        std::fs::write(dir.path().join("lien.html.jinja"), "Lien : {{ why }}").unwrap();
        std::fs::write(dir.path().join("erreur.html.jinja"), "{{ nothing.here }}").unwrap();
        std::fs::write(dir.path().join("accueil.html.jinja"), "{% if %}").unwrap();
        std::fs::write(dir.path().join("acceuil.html.jinja"), "x").unwrap();
        let pages = Pages::load(dir.path());
        assert_eq!(pages.render("lien", &ctx).unwrap(), "Lien : une raison");
        // A variable the page is not given: the shipped page serves.
        let ctx = minijinja::context! {
            title => "Page introuvable",
            message => "Cette page n'existe pas.",
            theme => minijinja::context! {
                name => "Région", colour => "#1f4e79", logo => (), email => (), phone => (), legal_notice => (),
            },
            base => "/",
            signed_in => (),
            csrf => "",
        };
        let html = pages.render("erreur", &ctx).unwrap();
        assert!(
            html.contains("<p>Cette page n&#x27;existe pas.</p>"),
            "{html}"
        );
        assert!(Pages::load(Path::new("/nonexistent")).shipped.is_none());
        let problems = Pages::problems(dir.path());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].ends_with("acceuil.html.jinja: not a page of the front office, so never used (the pages are _page.html.jinja, accueil.html.jinja, envoye.html.jinja, lien.html.jinja, erreur.html.jinja, dossiers.html.jinja, dossier.html.jinja, message.html.jinja)"), "{}", problems[0]);
        assert!(
            problems[1].contains(
                "accueil.html.jinja: does not compile, so the shipped page is served instead: "
            ),
            "{}",
            problems[1]
        );
    }
}
