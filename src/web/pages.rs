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
const SHIPPED: [(&str, &str); 11] = [
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
    (
        "instruction.html.jinja",
        include_str!("../../rules/pages/instruction.html.jinja"),
    ),
    (
        "instruction_dossier.html.jinja",
        include_str!("../../rules/pages/instruction_dossier.html.jinja"),
    ),
    (
        "pilotage.html.jinja",
        include_str!("../../rules/pages/pilotage.html.jinja"),
    ),
];

/// The folder of `RULES_DIR` whose files replace the shipped pages.
pub const PAGES_DIR: &str = "pages";

/// The compiled pages.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// The shipped pages, each replaced by its file in `dir` when there is one
    /// that compiles (one that does not is logged, and the shipped one kept).
    pub fn load(dir: &Path) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_fuel(Some(crate::rules::template::FUEL));
        for (name, text) in SHIPPED {
            let path = dir.join(name);
            if let Ok(own) = std::fs::read_to_string(&path) {
                match env.add_template_owned(name.to_owned(), own) {
                    Ok(()) => {
                        info!(page = %path.display(), "The front office uses this page of its own.");
                        continue;
                    }
                    Err(error) => warn!(page = %path.display(), %error,
                        "This page does not compile: the shipped one is used."),
                }
            }
            env.add_template(name, text)
                .expect("the shipped pages compile (a test renders each)");
        }
        Self { env }
    }

    /// Renders page `name` (`accueil`) with `ctx`.
    ///
    /// # Errors
    /// A reason, when the page fails to render.
    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, String> {
        self.env
            .get_template(&format!("{name}.html.jinja"))
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("{e:#}"))
    }
}
