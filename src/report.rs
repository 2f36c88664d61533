//! `alertissimo report`: one self-contained HTML file for managers.
//!
//! Owns what the report shows and how: the time spent in each step per scheme
//! (survival curves: the share of dossiers still in the step after so many days),
//! the dossiers in each step month by month, the dossiers stalled now by
//! instructor, and the table of `alertissimo stats`. Charts are inline SVG and the
//! style is inline CSS: the file opens anywhere, offline, and can be mailed.
//! [`gather`] reads the store; [`render`] is pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::delays::survival::Curve;
use crate::delays::{Delays, StepStats};
use crate::lifecycle::Lifecycle;
use crate::rules::template::escaped;
use crate::store::{Store, StoreError};

/// The page, with its French text; charts come in as SVG.
const TEMPLATE: &str = include_str!("report.html.jinja");

/// At most this many schemes are drawn per step (the largest), besides the
/// curve of every scheme together.
const MAX_SCHEMES: usize = 7;

/// The colours of the curves, distinct in print and for the colour-blind.
const COLOURS: [&str; 8] = [
    "#1b1b1b", "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#8c8c8c",
];

/// The strokes after the colours run out: plain, dashed, dotted.
const DASHES: [Option<&str>; 3] = [None, Some("6 3"), Some("2 3")];

/// How one series is drawn: the `i`-th pen, unique for the 24 first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pen {
    colour: &'static str,
    dash: Option<&'static str>,
}

impl Pen {
    fn nth(i: usize) -> Self {
        Self {
            colour: COLOURS[i % COLOURS.len()],
            dash: DASHES[(i / COLOURS.len()) % DASHES.len()],
        }
    }
}

/// Each scheme's pen, the same on every chart: the first (black) is every
/// scheme together; the others go to the schemes with a curve of their own,
/// the most stays first.
fn scheme_pens(report: &Report) -> BTreeMap<&str, usize> {
    let mut stays: BTreeMap<&str, u64> = BTreeMap::new();
    for ((scheme, _), c) in &report.delays.by_scheme {
        if has_own_curve(report, c) {
            *stays.entry(scheme.as_str()).or_default() += c.stays;
        }
    }
    let mut ranked: Vec<(&str, u64)> = stays.into_iter().collect();
    ranked.sort_by_key(|(name, n)| (std::cmp::Reverse(*n), *name));
    ranked
        .into_iter()
        .enumerate()
        .map(|(i, (name, _))| (name, i + 1))
        .collect()
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// The Region, for the title.
    pub region: String,
    /// The estimates.
    pub delays: Delays,
    /// The table of `alertissimo stats`.
    pub table: Vec<StepStats>,
    /// Dossiers stalled now, by instructor ("" without one), most first.
    pub stalled: Vec<(String, u64)>,
    /// The fewest stays a scheme's curve needs to be drawn.
    pub min_sample: u64,
}

/// Reads what the report shows.
///
/// # Errors
/// On a store failure.
pub fn gather(
    store: &Store,
    lifecycle: &Lifecycle,
    region: &str,
    min_sample: u64,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<Report, StoreError> {
    let delays = store.delays(lifecycle, min_sample, now, tz)?;
    let stalled = crate::timers::stalled_by_instructor(store, &delays, lifecycle, now)?;
    Ok(Report {
        generated_at: now,
        region: region.to_owned(),
        table: delays.table(lifecycle),
        delays,
        stalled,
        min_sample,
    })
}

/// One line of the table, as the page shows it.
#[derive(Debug, Serialize)]
struct Line {
    scheme: String,
    step: String,
    basis: &'static str,
    sample: u64,
    median: String,
    p80: String,
    p90: String,
    in_step: u64,
    overdue: u64,
}

fn days(seconds: Option<i64>) -> String {
    seconds.map_or_else(|| "—".to_owned(), |s| format!("{:.0}", s as f64 / 86_400.0))
}

/// The page.
///
/// # Errors
/// When the embedded template fails, which its tests rule out.
pub fn render(report: &Report, lifecycle: &Lifecycle, tz: Tz) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("report", TEMPLATE)
        .map_err(|e| format!("the report's template: {e}"))?;
    let pens = scheme_pens(report);
    let steps: Vec<Value> = lifecycle
        .steps()
        .iter()
        .filter(|s| !s.is_final)
        .filter_map(|s| step_section(report, s, &pens))
        .collect();
    let occupancy = occupancy_chart(&report.delays.occupancy, lifecycle);
    let lines: Vec<Line> = report
        .table
        .iter()
        .map(|l| Line {
            scheme: scheme_name(&l.scheme).to_owned(),
            step: lifecycle.label(&l.step).to_owned(),
            basis: match l.basis {
                Some(crate::delays::Basis::Scheme) => "dispositif",
                Some(crate::delays::Basis::Step) => "tous dispositifs",
                Some(crate::delays::Basis::Lifecycle) => "délai indicatif",
                None => "—",
            },
            sample: l.sample,
            median: days(l.median),
            p80: days(l.p80),
            p90: days(l.p90),
            in_step: l.in_step,
            overdue: l.overdue,
        })
        .collect();
    let stalled: Vec<Value> = report
        .stalled
        .iter()
        .map(|(who, n)| {
            context! {
                who => if who.is_empty() { "(sans instructeur)" } else { who.as_str() },
                n => n,
            }
        })
        .collect();
    let generated = report.generated_at.with_timezone(&tz);
    env.get_template("report")
        .and_then(|t| {
            t.render(context! {
                region => report.region.as_str(),
                generated => crate::rules::french::date(generated.date_naive()),
                time => generated.format("%H:%M").to_string(),
                min_sample => report.min_sample,
                any_chart => steps.iter().any(|s| s.get_attr("chart").is_ok_and(|c| !c.is_none())),
                steps => steps,
                occupancy => occupancy.map(Value::from_safe_string),
                stalled => stalled,
                stalled_chart => bars_chart(&report.stalled).map(Value::from_safe_string),
                lines => Value::from(minijinja::value::Serde(&lines)),
            })
        })
        .map_err(|e| format!("the report cannot be written: {e}"))
}

/// Whether a scheme's curve in a step is drawn as its own: enough stays, and
/// some of them ended.
fn has_own_curve(report: &Report, curve: &Curve) -> bool {
    curve.stays >= report.min_sample && curve.left > 0
}

/// The schemes with a curve of their own in `step`, by name.
fn own_curves<'r>(report: &'r Report, step: &str) -> Vec<(&'r str, &'r Curve)> {
    report
        .delays
        .by_scheme
        .iter()
        .filter(|((_, s), c)| s == step && has_own_curve(report, c))
        .map(|((scheme, _), c)| (scheme.as_str(), c))
        .collect()
}

/// A scheme as the report names it.
fn scheme_name(scheme: &str) -> &str {
    if scheme.is_empty() {
        "(sans dispositif)"
    } else {
        scheme
    }
}

/// A step's part of the report: its curves when its history is long enough,
/// and in a sentence what its announced delays rest on. None for a step with
/// neither history nor expected duration.
fn step_section(
    report: &Report,
    step: &crate::lifecycle::Step,
    pens: &BTreeMap<&str, usize>,
) -> Option<Value> {
    let all = report.delays.by_step.get(&step.id);
    let drawn = all.filter(|c| c.stays >= report.min_sample && c.quantile(0.5).is_some());
    let basis = match (drawn, step.expected_duration) {
        (Some(c), _) => {
            let own: Vec<&str> = own_curves(report, &step.id)
                .into_iter()
                .map(|(scheme, _)| scheme_name(scheme))
                .collect();
            let own = if own.is_empty() {
                String::new()
            } else {
                format!(" ; ont leur propre historique : {}", own.join(", "))
            };
            format!(
                "Délais annoncés d'après les {} dossiers passés par cette étape, tous dispositifs{own}.",
                c.stays
            )
        }
        (None, Some(expected)) => {
            let said = if step.counted_in == crate::lifecycle::Counted::BusinessDays {
                format!("{} jours ouvrés", expected.as_secs() / 86_400)
            } else {
                crate::rules::french::duration(expected)
            };
            let indicative = format!(
                "les délais annoncés reposent sur sa durée indicative, {said}. Aucune courbe n'est tracée."
            );
            match all.map_or(0, |c| c.stays) {
                0 => format!("Aucun dossier n'est encore passé par cette étape : {indicative}"),
                n if n >= report.min_sample => format!(
                    "Trop peu des {n} dossiers arrivés à cette étape l'ont déjà quittée pour en tirer un délai : {indicative}"
                ),
                n => format!(
                    "Pas encore assez d'historique ({n} {} par cette étape, il en faut {}) : {indicative}",
                    if n == 1 {
                        "dossier passé"
                    } else {
                        "dossiers passés"
                    },
                    report.min_sample
                ),
            }
        }
        (None, None) => return None,
    };
    let chart = drawn.and_then(|_| step_chart(report, &step.id, pens));
    Some(context! {
        label => step.label.as_str(),
        chart => chart.map(Value::from_safe_string),
        basis => basis,
    })
}

/// The survival curves of a step: every scheme together, and the largest schemes
/// with enough stays of their own, each in its pen.
fn step_chart(report: &Report, step: &str, pens: &BTreeMap<&str, usize>) -> Option<String> {
    let all = report.delays.by_step.get(step).filter(|c| c.left > 0)?;
    let mut schemes = own_curves(report, step);
    schemes.sort_by_key(|s| std::cmp::Reverse(s.1.stays));
    schemes.truncate(MAX_SCHEMES);
    let mut series = vec![(format!("Tous dispositifs ({} dossiers)", all.stays), all, 0)];
    for (scheme, c) in schemes {
        let name = scheme_name(scheme);
        let pen = pens.get(scheme).copied().unwrap_or(0);
        series.push((format!("{name} ({} dossiers)", c.stays), c, pen));
    }
    // Up to where 95 % of every scheme's stays ended, or the last departure seen.
    let span = series
        .iter()
        .filter_map(|(_, c, _)| c.quantile(0.95).or_else(|| c.points().last().map(|p| p.0)))
        .max()
        .unwrap_or(86_400)
        .max(86_400) as f64
        / 86_400.0;
    let span = nice(span.min(3_650.0));
    let plot = Plot::new(span, 1.0);
    let mut svg =
        plot.open("Part des dossiers encore à cette étape, selon le nombre de jours passés");
    plot.y_axis(&mut svg, |v| format!("{:.0} %", v * 100.0));
    plot.x_axis(&mut svg, "jours");
    let mut legend = String::new();
    for (i, (label, curve, pen)) in series.iter().enumerate() {
        let pen = Pen::nth(*pen);
        // A step function: down at each departure.
        let mut points = vec![(0.0, 1.0)];
        let mut last = 1.0;
        for (t, s) in curve.points() {
            let t = t as f64 / 86_400.0;
            if t > span {
                break;
            }
            points.push((t, last));
            points.push((t, s));
            last = s;
        }
        points.push((span, last));
        plot.polyline(&mut svg, &points, pen, i == 0);
        legend_entry(&mut legend, pen, label);
    }
    svg.push_str("</svg>");
    Some(format!("{svg}<p class=\"legend\">{legend}</p>"))
}

/// The dossiers in each step that is not final, month by month.
fn occupancy_chart(
    occupancy: &BTreeMap<String, Vec<(String, u64)>>,
    lifecycle: &Lifecycle,
) -> Option<String> {
    let series: Vec<(&str, &Vec<(String, u64)>)> = lifecycle
        .steps()
        .iter()
        .filter_map(|s| occupancy.get(&s.id).map(|v| (s.label.as_str(), v)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    // Every series ends this month; the longest gives the months.
    let months: &Vec<(String, u64)> = series.iter().map(|s| s.1).max_by_key(|v| v.len())?;
    if months.len() < 2 {
        return None;
    }
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.1))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let width = (months.len() - 1) as f64;
    let plot = Plot::new(width, nice(top));
    let mut svg = plot.open("Nombre de dossiers à chaque étape, mois par mois");
    plot.y_axis(&mut svg, |v| format!("{v:.0}"));
    // A label each January over a long span, every three months over a short one.
    let long = months.len() > 24;
    for (i, (month, _)) in months.iter().enumerate() {
        if (long && month.ends_with("-01")) || (!long && i % 3 == 0) {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{month}</text>"#,
                plot.x(i as f64),
                plot.bottom() + 16.0
            );
        }
    }
    let mut legend = String::new();
    for (i, (label, values)) in series.iter().enumerate() {
        let pen = Pen::nth(i);
        let offset = months.len() - values.len();
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(j, (_, n))| ((offset + j) as f64, *n as f64))
            .collect();
        plot.polyline(&mut svg, &points, pen, false);
        legend_entry(&mut legend, pen, label);
    }
    svg.push_str("</svg>");
    Some(format!("{svg}<p class=\"legend\">{legend}</p>"))
}

/// Horizontal bars: dossiers stalled by instructor (the 20 first).
fn bars_chart(stalled: &[(String, u64)]) -> Option<String> {
    let top = stalled.first()?.1.max(1) as f64;
    let rows = stalled.len().min(20);
    let (label_width, bar_width, row) = (220.0, 380.0, 22.0);
    let height = rows as f64 * row + 10.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height:.0}" viewBox="0 0 {w} {height:.0}" role="img" aria-label="Dossiers bloqués par instructeur">"#,
        w = label_width + bar_width + 60.0
    );
    for (i, (who, n)) in stalled.iter().take(rows).enumerate() {
        let y = i as f64 * row + 5.0;
        let length = bar_width * *n as f64 / top;
        let who = if who.is_empty() {
            "(sans instructeur)"
        } else {
            who.as_str()
        };
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text><rect x="{label_width:.1}" y="{y:.1}" width="{length:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" class="tick">{n}</text>"#,
            label_width - 8.0,
            y + row * 0.65,
            escaped(who),
            row - 6.0,
            COLOURS[1],
            label_width + length + 6.0,
            y + row * 0.65,
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// A round upper bound for an axis: 1, 2 or 5 times a power of ten.
fn nice(v: f64) -> f64 {
    let v = v.max(1.0);
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&n| n >= v)
        .unwrap_or(10.0 * power)
}

fn legend_entry(legend: &mut String, pen: Pen, label: &str) {
    let dash = pen
        .dash
        .map(|d| format!(r#" stroke-dasharray="{d}""#))
        .unwrap_or_default();
    let _ = write!(
        legend,
        r#"<span class="key"><svg class="swatch" width="24" height="10" aria-hidden="true"><line x1="0" y1="5" x2="24" y2="5" stroke="{}" stroke-width="3"{dash}/></svg>{}</span> "#,
        pen.colour,
        escaped(label)
    );
}

/// A chart's frame: data from 0 to `x_max` and 0 to `y_max`, drawn in a box.
struct Plot {
    x_max: f64,
    y_max: f64,
}

const WIDTH: f64 = 680.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;

impl Plot {
    fn new(x_max: f64, y_max: f64) -> Self {
        Self {
            x_max: x_max.max(1e-9),
            y_max: y_max.max(1e-9),
        }
    }

    fn x(&self, v: f64) -> f64 {
        LEFT + (WIDTH - LEFT - RIGHT) * v / self.x_max
    }

    fn y(&self, v: f64) -> f64 {
        TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v / self.y_max)
    }

    fn bottom(&self) -> f64 {
        HEIGHT - BOTTOM
    }

    fn open(&self, title: &str) -> String {
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}"><rect x="{LEFT}" y="{TOP}" width="{}" height="{}" class="frame"/>"#,
            escaped(title),
            WIDTH - LEFT - RIGHT,
            HEIGHT - TOP - BOTTOM
        )
    }

    /// Five ticks from 0 to the top, labelled by `label`.
    fn y_axis(&self, svg: &mut String, label: impl Fn(f64) -> String) {
        for i in 0..=4 {
            let v = self.y_max * f64::from(i) / 4.0;
            let y = self.y(v);
            let _ = write!(
                svg,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                label(v)
            );
        }
    }

    /// Five ticks from 0 to the right end, and the unit.
    fn x_axis(&self, svg: &mut String, unit: &str) {
        for i in 0..=5 {
            let v = self.x_max * f64::from(i) / 5.0;
            let x = self.x(v);
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">{v:.0}</text>"#,
                self.bottom(),
                self.bottom() + 16.0
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{unit}</text>"#,
            WIDTH - RIGHT,
            HEIGHT - 4.0
        );
    }

    fn polyline(&self, svg: &mut String, points: &[(f64, f64)], pen: Pen, bold: bool) {
        let mut path = String::new();
        for (x, y) in points {
            let _ = write!(path, "{:.1},{:.1} ", self.x(*x), self.y(*y));
        }
        let dash = pen
            .dash
            .map(|d| format!(r#" stroke-dasharray="{d}""#))
            .unwrap_or_default();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{}"{dash}/>"#,
            path.trim_end(),
            pen.colour,
            if bold { 2.5 } else { 1.5 }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delays::History;
    use crate::model::EventKind;
    use crate::test_support::{shipped_lifecycle, utc};

    const DAY: i64 = 86_400;

    /// Two schemes over 18 months: Culture leaves instruction in 10 to 69 days,
    /// Sport in 20 to 99; a few of each are still there.
    fn report() -> (Report, Lifecycle) {
        let lifecycle = shipped_lifecycle();
        let start = utc("2025-01-06T09:00:00Z").timestamp();
        let now = utc("2026-06-01T08:00:00Z");
        let mut h = History::new();
        let mut id = 0;
        for (scheme, n, slowest) in [("Culture", 60, 60), ("Sport", 40, 80)] {
            for i in 0..n {
                id += 1;
                let entered = start + i * 8 * DAY;
                let stay = (10 + (i * 37) % slowest) * DAY;
                let left = entered + stay;
                h.event(
                    id,
                    EventKind::Created,
                    Some("instruction"),
                    entered,
                    entered,
                );
                if left < now.timestamp() {
                    h.dossier(id, Some(scheme), "commission", left);
                    h.event(id, EventKind::StepChanged, Some("commission"), left, left);
                } else {
                    h.dossier(id, Some(scheme), "instruction", entered);
                }
            }
        }
        let delays = h.finish(&lifecycle, 30, now.timestamp(), chrono_tz::Europe::Paris);
        let report = Report {
            generated_at: now,
            region: "Région Auvergne-Rhône-Alpes".to_owned(),
            table: delays.table(&lifecycle),
            delays,
            stalled: vec![
                ("Claire Fontaine".to_owned(), 7),
                ("Yanis Benali".to_owned(), 3),
                (String::new(), 1),
            ],
            min_sample: 30,
        };
        (report, lifecycle)
    }

    #[test]
    fn the_report_is_one_self_contained_page() {
        let (report, lifecycle) = report();
        let html = render(&report, &lifecycle, chrono_tz::Europe::Paris).unwrap();
        // Nothing fetched from elsewhere: no script, no external file.
        for needle in ["<script", "src=", "href=", "@import", "url("] {
            assert!(!html.contains(needle), "{needle}");
        }
        // The charts: curves of instruction (every scheme, Culture, Sport; nobody
        // left commission yet, it has none), the months, and the bars.
        // (Each legend entry is a small drawing too.)
        let charts = html.matches("<svg").count() - html.matches("class=\"swatch\"").count();
        assert_eq!(charts, 3, "{html}");
        assert!(html.contains("Culture (60 dossiers)"));
        assert!(html.contains("Sport (40 dossiers)"));
        assert!(html.contains("2026-01"));
        assert!(html.contains("(sans instructeur)"));
        insta::assert_snapshot!(html);
    }

    /// A report of `delays` with nobody stalled, for the Region.
    fn plain_report(delays: Delays, lifecycle: &Lifecycle, now: DateTime<Utc>) -> Report {
        Report {
            generated_at: now,
            region: "Région".to_owned(),
            table: delays.table(lifecycle),
            delays,
            stalled: Vec::new(),
            min_sample: 30,
        }
    }

    #[test]
    fn an_empty_history_says_so() {
        let lifecycle = shipped_lifecycle();
        let now = utc("2026-06-01T08:00:00Z");
        let delays =
            History::new().finish(&lifecycle, 30, now.timestamp(), chrono_tz::Europe::Paris);
        let report = plain_report(delays, &lifecycle, now);
        let html = render(&report, &lifecycle, chrono_tz::Europe::Paris).unwrap();
        assert!(html.contains("Pas encore d'historique"));
        assert!(html.contains("Aucun dossier bloqué"));
        assert!(!html.contains("<svg"));
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice(0.3), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(130.0), 200.0);
        assert_eq!(nice(480.0), 500.0);
    }

    /// The strokes of a chart's curves, as (colour, dash) in drawing order.
    fn strokes(svg: &str) -> Vec<String> {
        svg.split("<polyline")
            .skip(1)
            .map(|p| {
                let attr = |name: &str| {
                    p.split(&format!("{name}=\""))
                        .nth(1)
                        .map(|r| r[..r.find('"').unwrap()].to_owned())
                };
                format!("{:?}/{:?}", attr("stroke"), attr("stroke-dasharray"))
            })
            .collect()
    }

    #[test]
    fn issue_19_item_6_a_scheme_keeps_its_pen_and_no_pen_serves_twice_in_a_chart() {
        let lifecycle = shipped_lifecycle();
        let now = utc("2026-06-01T08:00:00Z");
        let start = utc("2025-01-06T09:00:00Z").timestamp();
        let mut h = History::new();
        let mut id = 0;
        // Sport is the larger in instruction, Culture overall: pens follow the
        // whole report, not one step.
        for (scheme, in_instruction, in_commission) in [("Culture", 31, 60), ("Sport", 40, 31)] {
            for i in 0..in_instruction.max(in_commission) {
                id += 1;
                let entered = start + i * 3 * DAY;
                let (first, second) = (entered + (5 + i % 20) * DAY, entered + (30 + i % 25) * DAY);
                let steps: &[(&str, i64)] = match (i < in_instruction, i < in_commission) {
                    (true, true) => &[
                        ("instruction", entered),
                        ("commission", first),
                        ("accorde", second),
                    ],
                    (true, false) => &[("instruction", entered), ("commission", first)],
                    _ => &[("commission", first), ("accorde", second)],
                };
                let (last, at) = steps[steps.len() - 1];
                h.dossier(id, Some(scheme), last, at);
                for (k, (step, at)) in steps.iter().enumerate() {
                    let kind = if k == 0 {
                        EventKind::Created
                    } else {
                        EventKind::StepChanged
                    };
                    h.event(id, kind, Some(step), *at, *at);
                }
            }
        }
        let delays = h.finish(&lifecycle, 30, now.timestamp(), chrono_tz::Europe::Paris);
        let report = plain_report(delays, &lifecycle, now);
        let pens = scheme_pens(&report);
        assert_eq!(pens.get("Culture"), Some(&1), "{pens:?}");
        assert_eq!(pens.get("Sport"), Some(&2), "{pens:?}");
        for step in ["instruction", "commission"] {
            let svg = step_chart(&report, step, &pens).unwrap();
            let drawn = strokes(&svg);
            let mut unique = drawn.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), drawn.len(), "{step}: {drawn:?}");
            let culture = svg.split("Culture (").next().unwrap();
            let culture = &culture[culture.rfind("stroke=\"").unwrap() + 8..][..7];
            assert_eq!(culture, COLOURS[1], "{step}");
        }
        // Eleven steps in the occupancy chart: no pen twice.
        let pens: Vec<Pen> = (0..11).map(Pen::nth).collect();
        for (i, p) in pens.iter().enumerate() {
            assert!(!pens[..i].contains(p), "pen {i} again");
        }
    }

    #[test]
    fn issue_19_item_6_a_step_on_its_fallback_draws_no_curve_and_says_so() {
        let (mut report, lifecycle) = report();
        report.min_sample = 200;
        let html = render(&report, &lifecycle, chrono_tz::Europe::Paris).unwrap();
        // Only the occupancy and the stalled charts are left.
        let charts = html.matches("<svg").count() - html.matches("class=\"swatch\"").count();
        assert_eq!(charts, 2, "{html}");
        assert!(
            !html.contains("Part des dossiers encore à cette étape"),
            "a curve on a fallback"
        );
        assert!(html.contains("Pas encore assez d&#x27;historique (100 dossiers passés par cette étape, il en faut 200)"), "{html}");
        assert!(html.contains("Aucun dossier n&#x27;est encore passé par cette étape"));
        report.min_sample = 30;
        let html = render(&report, &lifecycle, chrono_tz::Europe::Paris).unwrap();
        assert!(html.contains("Délais annoncés d&#x27;après les 100 dossiers passés par cette étape, tous dispositifs ; ont leur propre historique : Culture, Sport."), "{html}");
    }
}
