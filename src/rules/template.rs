//! The message templates of `rules/templates/`, and how a message is made.
//!
//! Owns the minijinja environment: loading and compiling every `*.jinja` file,
//! the French filters (`date`, `montant`, `duree`, `etape`), strict undefined
//! variables (a typo fails at `check`, not when sending), and the making of a
//! [`Message`]: a template's `subject` and `body` blocks, the body wrapped by
//! `_layout.txt.jinja` for the text part, and turned into escaped HTML paragraphs
//! wrapped by `_layout.html.jinja` (auto-escaped) for the HTML part. Several
//! alerts to one person become one message through `_digest.jinja`.
//!
//! Every render has a budget, so that no template can hang `check`, `render` or
//! the daemon, nor fill its memory (issue 17, item 29): minijinja's fuel bounds
//! the work of one render (`FUEL`), and each rendered part may be at most
//! `MAX_OUTPUT` bytes, measured as it is written.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior, Value, context};
use serde::Serialize;

use super::french;
use crate::diag::Problems;
use crate::lifecycle::Lifecycle;

/// The text layout, wrapping every text part.
pub(crate) const LAYOUT_TEXT: &str = "_layout.txt.jinja";
/// The HTML layout, wrapping every HTML part.
pub(crate) const LAYOUT_HTML: &str = "_layout.html.jinja";
/// The template of a message gathering several alerts.
pub(crate) const DIGEST: &str = "_digest.jinja";
/// The front office's sign-in message (issue 20).
pub(crate) const SIGN_IN: &str = "_connexion.jinja";
/// A beneficiary's message forwarded to the instructing service (issue 21).
pub(crate) const EXCHANGE_SERVICE: &str = "_echange_service.jinja";
/// The service's reply forwarded to the beneficiary (issue 21).
pub(crate) const EXCHANGE_BENEFICIARY: &str = "_echange_beneficiaire.jinja";
/// What comes next for a dossier, in one paragraph: the messages' own macro,
/// for the front office's list.
const NEXT_STEPS: &str = "@next_steps";
const EXTENSION: &str = ".jinja";
/// Templates named by rules are read with this prefix for their conditions.
const CONDITION_PREFIX: &str = "@when/";
/// Marks the start of text that came from data (an export's values) in a
/// rendered text part; [`DATA_END`] its end. The HTML part escapes such text and
/// never makes a link of it (a beneficiary's title must not put a link in the
/// Region's e-mail); the text part drops the marks. Characters of Unicode's
/// private use area, removed from data before marking.
const DATA_START: char = '\u{E000}';
/// See [`DATA_START`].
const DATA_END: char = '\u{E001}';

/// The auto-escape mode of text templates: nothing is escaped, data is marked.
const TEXT_MODE: &str = "text";

/// Text without the data marks.
fn unmarked(text: &str) -> String {
    text.replace([DATA_START, DATA_END], "")
}

/// The work one render may do, in minijinja fuel (about one instruction, or 64
/// bytes of data made): a message of the shipped templates takes a few
/// thousand; three nested loops of 10 000 turns would take 10¹².
pub(crate) const FUEL: u64 = 1_000_000;
/// The largest text one render may write (a subject, a body, a layout): 1 MB.
pub(crate) const MAX_OUTPUT: usize = 1024 * 1024;

/// One e-mail's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// One line, without line breaks.
    pub subject: String,
    /// The plain text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// One alert's own part, before layouts: what a digest lists.
#[derive(Debug, Clone)]
struct Part {
    subject: String,
    body: String,
}

/// Every template, compiled.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// The folder they were read from.
    pub dir: PathBuf,
    /// The names rules may use (file stems not starting with `_`).
    names: Vec<String>,
}

impl Templates {
    /// Reads and compiles every `*.jinja` file of `dir`, reporting every problem.
    pub(crate) fn load(
        dir: &Path,
        lifecycle: Arc<Lifecycle>,
        tz: Tz,
        problems: &mut Problems,
    ) -> Option<Self> {
        let before = problems.len();
        let mut files = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(EXTENSION))
                .collect::<Vec<_>>(),
            Err(error) => {
                problems.push(dir, format!("cannot read the templates folder: {error}"));
                return None;
            }
        };
        files.sort();
        let mut env = environment(lifecycle, tz);
        let mut names = Vec::new();
        for path in &files {
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(error) => {
                    problems.push(path, format!("cannot read the template: {error}"));
                    continue;
                }
            };
            for (line, written) in super::context::amounts_misused(&text) {
                problems.push(
                    format!("{}:{line}", path.display()),
                    format!("`{written}`: in a message, an amount (exact cents) compares only with another amount and takes no arithmetic; compare it with a number in the rule's `when`, show it with `| montant`"),
                );
            }
            if let Err(error) = env.add_template_owned(file_name.clone(), text) {
                problems.push(path, describe(&error));
                continue;
            }
            if !file_name.starts_with('_') {
                names.push(file_name.trim_end_matches(EXTENSION).to_owned());
            }
        }
        // The macro's file may be missing or differ: then the page says less.
        let _ = env.add_template(
            NEXT_STEPS,
            "{% import \"_macros.jinja\" as m %}{{ m.next_steps(step, delay) }}",
        );
        for required in [LAYOUT_TEXT, LAYOUT_HTML, DIGEST] {
            if !files.iter().any(|f| f.ends_with(required)) {
                problems.push(dir.join(required), "this template is required but missing");
            }
        }
        (problems.len() == before).then(|| Self {
            env,
            dir: dir.to_owned(),
            names,
        })
    }

    /// Whether rules may name this template.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Whether the folder has the file `name` (`_connexion.jinja`).
    pub(crate) fn has_file(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// What comes next for a dossier (`ctx` has its `step` and `delay`), as
    /// the `next_steps` macro of `_macros.jinja` says it in messages; `None`
    /// when the macro is missing or fails.
    pub(crate) fn next_steps(&self, ctx: &Value) -> Option<String> {
        let mut out = Capped::default();
        self.env
            .get_template(NEXT_STEPS)
            .and_then(|t| t.render_captured_to(ctx, &mut out))
            .ok()?;
        Some(unmarked(&out.text()).trim().to_owned()).filter(|t| !t.is_empty())
    }

    /// The names rules may use.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The file of a template, for messages.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{EXTENSION}"))
    }

    /// Compiles a rule's condition; it is evaluated with [`Templates::condition`].
    ///
    /// # Errors
    /// When the expression does not compile.
    pub(crate) fn add_condition(&mut self, rule: &str, expression: &str) -> Result<(), String> {
        // Compiled on its own first, so that a syntax error speaks of the expression.
        self.env
            .compile_expression(expression)
            .map_err(|e| describe(&e))?;
        self.env
            .add_template_owned(
                format!("{CONDITION_PREFIX}{rule}"),
                format!("{{% if {expression} %}}1{{% endif %}}"),
            )
            .map_err(|e| {
                e.detail()
                    .map_or_else(|| e.kind().to_string(), str::to_owned)
            })
    }

    /// Evaluates a rule's condition in `ctx`.
    ///
    /// # Errors
    /// When it refers to something undefined or fails to evaluate.
    pub(crate) fn condition(&self, rule: &str, ctx: &Value) -> Result<bool, String> {
        self.env
            .get_template(&format!("{CONDITION_PREFIX}{rule}"))
            .and_then(|t| t.render(ctx))
            .map(|out| out == "1")
            .map_err(|e| describe(&e))
    }

    /// Renders the message of one alert.
    ///
    /// # Errors
    /// A reason naming the template and the line, when rendering fails.
    pub(crate) fn render(&self, template: &str, ctx: &Value) -> Result<Message, String> {
        let part = self.part(template, ctx)?;
        self.wrap(&part, ctx)
    }

    /// Renders one message gathering several alerts to the same recipient; each
    /// item is `(template, ctx)`. One item renders as `Templates::render` does.
    ///
    /// # Errors
    /// A reason naming the template and the line, when rendering fails.
    pub fn render_many(&self, items: &[(&str, Value)]) -> Result<Message, String> {
        match items {
            [] => Err("nothing to render".to_owned()),
            [(template, ctx)] => self.render(template, ctx),
            [.., (_, last)] => {
                let mut list = Vec::with_capacity(items.len());
                for (template, ctx) in items {
                    let part = self.part(template, ctx)?;
                    list.push(context! {
                        ..ctx.clone(),
                        ..context! {
                            subject => part.subject,
                            body => Value::from_safe_string(part.body),
                        }
                    });
                }
                let ctx = context! {
                    items => list,
                    count => items.len(),
                    region => last.get_attr("region").unwrap_or_default(),
                    recipient => last.get_attr("recipient").unwrap_or_default(),
                    front_office => last.get_attr("front_office").unwrap_or_default(),
                    // Answered to the dossier's thread only when about one
                    // dossier (else to the mailbox, where nobody may look).
                    replies => last.get_attr("replies").is_ok_and(|r| r.is_true()) && one_dossier(items),
                };
                let part = self.part(DIGEST.trim_end_matches(EXTENSION), &ctx)?;
                self.wrap(&part, &ctx)
            }
        }
    }

    fn part(&self, template: &str, ctx: &Value) -> Result<Part, String> {
        let name = format!("{template}{EXTENSION}");
        let tmpl = self
            .env
            .get_template(&name)
            .map_err(|e| format!("{name}: {}", describe(&e)))?;
        // What the template writes outside its blocks is not used, but measured.
        let mut outside = Capped::default();
        let mut captured = tmpl
            .render_captured_to(ctx, &mut outside)
            .map_err(|e| format!("{name}: {}", outside.describe(&e)))?;
        let (mut subject, mut body) = (Capped::default(), Capped::default());
        captured
            .with_state_mut(|state| {
                state.render_block_to_write("subject", &mut subject)?;
                state.render_block_to_write("body", &mut body)
            })
            .map_err(|e| {
                let reason = if subject.over { &subject } else { &body }.describe(&e);
                format!("{name}: {reason}")
            })?;
        Ok(Part {
            // A subject is one header line: no line breaks can come from data.
            subject: unmarked(&subject.text())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            body: tidy(&body.text()),
        })
    }

    fn wrap(&self, part: &Part, ctx: &Value) -> Result<Message, String> {
        let layout = |name: &str, extra: Value| {
            let mut out = Capped::default();
            self.env
                .get_template(name)
                .and_then(|t| t.render_captured_to(context! { ..extra, ..ctx.clone() }, &mut out))
                .map_err(|e| format!("{name}: {}", out.describe(&e)))?;
            Ok::<_, String>(out.text())
        };
        let text = layout(
            LAYOUT_TEXT,
            context! {
                subject => &part.subject,
                body => Value::from_safe_string(part.body.clone()),
            },
        )?;
        let html = layout(
            LAYOUT_HTML,
            context! {
                subject => &part.subject,
                body_html => Value::from_safe_string(to_html(&part.body)),
            },
        )?;
        Ok(Message {
            subject: part.subject.clone(),
            text: tidy(&unmarked(&text)),
            html,
        })
    }
}

/// A minijinja error as one readable line: what, and the line in the template.
pub(crate) fn describe(e: &Error) -> String {
    let what = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_owned);
    match (e.kind(), e.line()) {
        (ErrorKind::UndefinedError, Some(line)) => {
            format!("line {line}: undefined variable or attribute ({what})")
        }
        (ErrorKind::OutOfFuel, line) => format!(
            "{}too much work for one message (more than {FUEL} steps): a loop too long?",
            line.map(|l| format!("line {l}: ")).unwrap_or_default()
        ),
        (_, Some(line)) => format!("line {line}: {what}"),
        _ => what,
    }
}

/// The text a render writes, refused past [`MAX_OUTPUT`] bytes: the render
/// stops there rather than filling the memory.
#[derive(Debug, Default)]
struct Capped {
    bytes: Vec<u8>,
    over: bool,
}

impl Capped {
    /// The text written (whole characters: minijinja writes whole strings).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Why a render that wrote here failed.
    fn describe(&self, e: &Error) -> String {
        if self.over {
            format!(
                "the message is too large (more than {} MB): a loop too long?",
                MAX_OUTPUT / 1024 / 1024
            )
        } else {
            describe(e)
        }
    }
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT {
            self.over = true;
            return Err(io::Error::other("the message is too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) fn environment(lifecycle: Arc<Lifecycle>, tz: Tz) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // Text templates use a mode of their own, so that what they make (a macro's
    // output, a block) is a safe string and data printed in it stays marked.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html.jinja") {
            AutoEscape::Html
        } else {
            AutoEscape::Custom(TEXT_MODE.into())
        }
    });
    // Block tags take no room of their own in a text message.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    // Absent values are `none`: they print as nothing rather than "none". Text
    // from data printed into a text part is marked (see `DATA_START`), so that
    // the HTML part never makes a link of it; safe values (the links the
    // configuration gives, parts already rendered) are written as they are.
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return Ok(());
        }
        if !matches!(state.auto_escape(), AutoEscape::Custom(_)) {
            return minijinja::escape_formatter(out, state, value);
        }
        match value.as_str() {
            Some(text) if !value.is_safe() && value.kind() == ValueKind::String => {
                let clean = unmarked(text);
                write!(out, "{DATA_START}{clean}{DATA_END}").map_err(Error::from)
            }
            _ => write!(out, "{value}").map_err(Error::from),
        }
    });
    env.add_filter("date", move |value: Value| -> Result<String, Error> {
        let Some(value) = defined(&value, "date")? else {
            return Ok(String::new());
        };
        french::date_text(&text_of(&value)?, tz).map_err(invalid)
    });
    env.add_filter("montant", |value: Value| -> Result<String, Error> {
        let Some(value) = defined(&value, "montant")? else {
            return Ok(String::new());
        };
        cents(&value).map(french::amount)
    });
    env.add_filter("duree", |value: Value| -> Result<String, Error> {
        let Some(value) = defined(&value, "duree")? else {
            return Ok(String::new());
        };
        let secs = f64::try_from(value.clone())
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| invalid(format!("duree expects a number of seconds, not {value}")))?;
        Ok(french::duration(Duration::from_secs_f64(secs)))
    });
    env.add_filter("etape", move |value: Value| -> Result<String, Error> {
        let Some(value) = defined(&value, "etape")? else {
            return Ok(String::new());
        };
        let id = text_of(&value)?;
        Ok(lifecycle.label(&id).to_owned())
    });
    env
}

/// What filters do first: nothing to show for `none`, an error for an undefined
/// value (a misspelt variable), the value otherwise.
fn defined(value: &Value, filter: &str) -> Result<Option<Value>, Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("the value given to `{filter}` is undefined (a misspelt variable?)"),
        ));
    }
    Ok((!value.is_none()).then(|| value.clone()))
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, reason.into())
}

fn text_of(value: &Value) -> Result<String, Error> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("expected a text, not {value}")))
}

/// The cents of an amount: a dossier's (its cents), its stored text
/// (`event.old`, "26956.50"), or a number a template writes (in euros).
fn cents(value: &Value) -> Result<i64, Error> {
    let not_amount = || invalid(format!("montant expects an amount, not {value}"));
    if let Some(amount) = value.downcast_object_ref::<super::context::Amount>() {
        return Ok(amount.0);
    }
    let parse = |text: &str, format| crate::value::parse_amount(text, format);
    match value.kind() {
        ValueKind::Number => match i64::try_from(value.clone()) {
            Ok(euros) => euros.checked_mul(100).ok_or_else(not_amount),
            // A number with decimals is read from its shortest decimal text.
            Err(_) => parse(&value.to_string(), crate::value::AmountFormat::Decimal)
                .map_err(|_| not_amount()),
        },
        ValueKind::String => parse(
            value.as_str().unwrap_or_default(),
            crate::value::AmountFormat::Auto,
        )
        .map_err(invalid),
        _ => Err(not_amount()),
    }
}

/// Trims a rendered text: no trailing spaces, at most one blank line in a row,
/// no blank lines at either end.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        // The signature separator keeps its trailing space (RFC 3676).
        out.push_str(if line == "--" { "-- " } else { line });
    }
    out.push('\n');
    out
}

/// Turns a plain-text body into HTML: paragraphs on blank lines, `- ` lines into
/// lists, addresses into links; everything from data is escaped.
pub(crate) fn to_html(body: &str) -> String {
    let body = &balanced(body);
    let mut html = String::with_capacity(body.len() * 2);
    for paragraph in body.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        // Runs of text lines become a <p>, runs of "- " lines a <ul>.
        let mut open: Option<&str> = None;
        for line in paragraph.lines() {
            let item = list_item(line);
            let (tag, content) = match &item {
                Some(item) => ("ul", item.as_ref()),
                None => ("p", line),
            };
            if open != Some(tag) {
                if let Some(previous) = open {
                    html.push_str(&format!("</{previous}>\n"));
                }
                html.push_str(&format!("<{tag}>"));
                if tag == "ul" {
                    html.push('\n');
                }
            } else if tag == "p" {
                html.push_str("<br>\n");
            }
            open = Some(tag);
            if tag == "ul" {
                html.push_str("<li>");
                linkify(content, &mut html);
                html.push_str("</li>\n");
            } else {
                linkify(content, &mut html);
            }
        }
        if let Some(tag) = open {
            html.push_str(&format!("</{tag}>\n"));
        }
    }
    html
}

/// The text of a list item (a line starting with "- ", the dash written by the
/// template or by data), without its dash.
fn list_item(line: &str) -> Option<std::borrow::Cow<'_, str>> {
    let line = line.trim_start();
    if let Some(item) = line.strip_prefix("- ") {
        return Some(std::borrow::Cow::Borrowed(item.trim()));
    }
    let item = line
        .strip_prefix(DATA_START)?
        .trim_start()
        .strip_prefix("- ")?;
    Some(std::borrow::Cow::Owned(format!(
        "{DATA_START}{}",
        item.trim()
    )))
}

/// `body` with each data span closed at a line break and opened again after
/// it, so that a line (a paragraph, a list item) carries its own marks.
fn balanced(body: &str) -> std::borrow::Cow<'_, str> {
    if !body.contains(DATA_START) {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = String::with_capacity(body.len() + 16);
    let mut open = false;
    for c in body.chars() {
        match c {
            DATA_START => open = true,
            DATA_END => open = false,
            '\n' if open => {
                out.push(DATA_END);
                out.push('\n');
                out.push(DATA_START);
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

/// Escapes `text` into `out`, turning the http(s) addresses the template wrote
/// into links; text from data (between [`DATA_START`] and [`DATA_END`]) is only
/// escaped.
fn linkify(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(start) = rest.find(DATA_START) {
        links(&unmarked(&rest[..start]), out);
        let data = &rest[start + DATA_START.len_utf8()..];
        let end = data.find(DATA_END).unwrap_or(data.len());
        escape(&data[..end], out);
        rest = data.get(end + DATA_END.len_utf8()..).unwrap_or_default();
    }
    links(&unmarked(rest), out);
}

/// Escapes `text` into `out`, turning http(s) addresses into links.
fn links(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(start) = rest.find("https://").or_else(|| rest.find("http://")) {
        escape(&rest[..start], out);
        let url_len = rest[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(rest.len() - start);
        let mut url = &rest[start..start + url_len];
        // Sentence punctuation after an address is not part of it.
        let trimmed = url.trim_end_matches(['.', ',', ';', ':', ')', '!', '?']);
        url = trimmed;
        out.push_str("<a href=\"");
        escape(url, out);
        out.push_str("\">");
        escape(url, out);
        out.push_str("</a>");
        rest = &rest[start + url.len()..];
    }
    escape(rest, out);
}

/// `text` escaped for HTML (or SVG) text and attribute values.
pub(crate) fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape(text, &mut out);
    out
}

/// Appends `text` to `out`, escaped for HTML text and attribute values.
pub(crate) fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Whether the items of a digest are all about one dossier (by reference).
fn one_dossier(items: &[(&str, Value)]) -> bool {
    let reference = |ctx: &Value| {
        ctx.get_attr("dossier")
            .and_then(|d| d.get_attr("reference"))
            .map(|r| r.to_string())
            .ok()
    };
    let first = items.first().map(|(_, ctx)| reference(ctx));
    items.iter().all(|(_, ctx)| Some(reference(ctx)) == first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_data_and_builds_paragraphs_lists_and_links() {
        let body = "Bonjour <Jean & Cie>,\nligne 2\n\n- RIB\n- Statuts \"signés\"\n\nVoir https://portail.example.org/d/42.";
        assert_eq!(
            to_html(body),
            "<p>Bonjour &lt;Jean &amp; Cie&gt;,<br>\nligne 2</p>\n\
             <ul>\n<li>RIB</li>\n<li>Statuts &quot;signés&quot;</li>\n</ul>\n\
             <p>Voir <a href=\"https://portail.example.org/d/42\">https://portail.example.org/d/42</a>.</p>\n"
        );
    }

    #[test]
    fn html_of_a_paragraph_mixing_text_and_items() {
        assert_eq!(
            to_html("Pièces :\n- RIB\n- Devis"),
            "<p>Pièces :</p>\n<ul>\n<li>RIB</li>\n<li>Devis</li>\n</ul>\n"
        );
    }

    #[test]
    fn html_of_a_list_followed_by_text_has_no_empty_paragraph() {
        assert_eq!(
            to_html("- RIB\n- Devis\nMerci."),
            "<ul>\n<li>RIB</li>\n<li>Devis</li>\n</ul>\n<p>Merci.</p>\n"
        );
    }

    #[test]
    fn a_script_in_data_is_inert_in_html() {
        let html = to_html("<script>alert('x')</script> javascript:http://x");
        assert!(!html.contains("<script"), "{html}");
    }

    #[test]
    fn tidy_keeps_one_blank_line() {
        assert_eq!(tidy("\n\n a  \n\n\n\nb\nc  \n\n"), " a\n\nb\nc\n");
        assert_eq!(tidy("Bonjour\n\n--\nRégion"), "Bonjour\n\n-- \nRégion\n");
    }
}
