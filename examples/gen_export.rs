//! Synthetic grant export generator for the import benchmark.
//!
//! Usage:
//!
//! ```text
//! cargo run --release --example gen_export -- --rows 1000000 --seed 42 --out target/bench-import/data
//! ```
//!
//! Writes into `--out` (created if missing):
//!
//! - `config.toml`: a configuration whose rules folder is this repository's `rules/`
//!   and whose store lives in `state/alertissimo.db` (relative to the configuration);
//! - `connectors/bench.toml`: a CSV connector (`bench`) describing the export;
//! - `snapshot-1.csv`: `--rows` dossiers, ids in ascending order;
//! - `snapshot-2.csv`: snapshot 1 where exactly round(2 %) of the dossiers moved to
//!   another step (with a later `Date statut`), round(0.5 %) new dossiers are appended
//!   and round(0.2 %) dossiers are gone; every other record is byte-identical except
//!   the volatile `Date d'export` column;
//! - `snapshot-2-shuffled.csv`: the records of `snapshot-2.csv` in a random order;
//! - `expected.json`: the event counts an import of snapshot 2 after snapshot 1 must
//!   report, and the row counts of both snapshots.
//!
//! The export imitates a Region's grant management tool: UTF-8 without BOM, `;`
//! separator, CRLF line endings, French amounts (`26 956,00`, with a space or a
//! no-break space as thousands separator), `dd/mm/yyyy` dates and about 7 % of quoted
//! multi-line comments containing `;` and `""`.
//!
//! The output is fully determined by `--rows` and `--seed`: each record is derived from
//! its own ChaCha8 generator seeded by (seed, row index), so rows are produced on the
//! fly and never kept in memory; the choice of moved, new and removed dossiers and the
//! shuffle use `ChaCha8Rng::seed_from_u64(seed)`.

#![allow(clippy::print_stdout, clippy::print_stderr)]
// A benchmark reads top to bottom: the limit on long functions holds in src/.
#![allow(clippy::too_many_lines)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use alertissimo::model::{civil_from_days, days_from_civil};
use clap::Parser;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Writes a synthetic grant export (two snapshots) for the import benchmark")]
struct Args {
    /// Number of dossiers in snapshot 1.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Seed of the random generator: same rows and seed give byte-identical files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
}

/// Column headers of the export, in order.
const HEADER: [&str; 16] = [
    "N° dossier",
    "Référence",
    "Dispositif",
    "Intitulé du projet",
    "Bénéficiaire",
    "SIRET",
    "Courriel",
    "Statut",
    "Date statut",
    "Montant demandé",
    "Montant voté",
    "Instructeur",
    "Courriel instructeur",
    "Commune",
    "Commentaire",
    "Date d'export",
];

/// `Date d'export` of snapshot 1 and snapshot 2.
const EXPORT_DATES: [&str; 2] = ["01/10/2026 06:00", "02/10/2026 06:00"];

/// Status labels with their relative weight (most dossiers in early or middle steps)
/// and the labels a dossier typically moves to next.
const STATUSES: [(&str, u32, &[usize]); 14] = [
    ("Déposé", 10, &[1, 2, 13]),
    ("Incomplet", 8, &[2, 13]),
    ("Complet", 10, &[3]),
    ("En instruction", 22, &[4, 1, 13]),
    ("Passage en commission", 10, &[5, 6, 7]),
    ("Accordé", 8, &[8]),
    ("Refusé", 4, &[12]),
    ("Ajourné", 3, &[4, 13]),
    ("Convention signée", 8, &[9, 10]),
    ("Avance versée", 5, &[10, 11]),
    ("Acompte versé", 4, &[11]),
    ("Solde versé", 3, &[12]),
    ("Clôturé", 3, &[11]),
    ("Sans suite", 2, &[0]),
];

/// Index of "Déposé" in [`STATUSES`].
const STATUS_DEPOSE: usize = 0;
/// Index of "Complet" in [`STATUSES`].
const STATUS_COMPLET: usize = 2;

/// Statuses from which an amount has been voted (`Montant voté` filled).
fn is_voted(status: usize) -> bool {
    matches!(status, 5 | 8..=12)
}

const SCHEMES: [&str; 8] = [
    "Aide à l'investissement des TPE",
    "Fonds régional pour l'emploi associatif",
    "Soutien aux manifestations culturelles",
    "Pass Rénovation",
    "Sport pour tous",
    "Recyclage",
    "Aide à l'export",
    "Fonds rural",
];

const TITLE_ACTIONS: [&str; 8] = [
    "Création",
    "Rénovation",
    "Achat",
    "Extension",
    "Travaux",
    "Équipement",
    "Étude",
    "Remise à neuf",
];

const TITLE_OBJECTS: [&str; 22] = [
    "d'un atelier",
    "salle des fêtes",
    "d'un four",
    "du local",
    "d'un poste",
    "de la halle",
    "d'un city-stade",
    "chaufferie bois",
    "du festival",
    "d'un tiers-lieu",
    "médiathèque",
    "d'une ligne",
    "d'un camion",
    "des vestiaires",
    "d'une recyclerie",
    "du site web",
    "d'un verger",
    "école de musique",
    "d'une boutique",
    "d'un gîte",
    "d'une serre",
    "du manège",
];

const TITLE_SUFFIXES: [&str; 11] = [
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    " – phase 2",
    " « Bien vivre »",
];

const COMMUNES: [&str; 48] = [
    "Amiens",
    "Saint-Quentin",
    "Béthune",
    "Compiègne",
    "Château-Thierry",
    "Liévin",
    "Hénin-Beaumont",
    "Boulogne-sur-Mer",
    "Abbeville",
    "Laon",
    "Soissons",
    "Arras",
    "Lens",
    "Douai",
    "Valenciennes",
    "Cambrai",
    "Maubeuge",
    "Tourcoing",
    "Roubaix",
    "Villeneuve-d'Ascq",
    "Armentières",
    "Hazebrouck",
    "Saint-Omer",
    "Étaples",
    "Montreuil-sur-Mer",
    "Péronne",
    "Noyon",
    "Creil",
    "Beauvais",
    "Senlis",
    "Crépy-en-Valois",
    "Chauny",
    "Hirson",
    "Fourmies",
    "Avesnes-sur-Helpe",
    "Le Cateau-Cambrésis",
    "Méru",
    "Nœux-les-Mines",
    "Auchel",
    "Doullens",
    "Montdidier",
    "Hesdin",
    "Aire-sur-la-Lys",
    "Wimereux",
    "Calais",
    "Dunkerque",
    "Marcq-en-Barœul",
    "Lille",
];

/// Association name templates (`{}` is replaced by a commune name).
const ASSOCIATIONS: [&str; 6] = [
    "Amis de {}",
    "Foyer rural de {}",
    "Comité des fêtes",
    "US {}",
    "Culture et Loisirs",
    "Jardins partagés",
];

const LEGAL_FORMS: [&str; 4] = ["SARL", "SAS", "EURL", "SCOP"];

const TRADES: [&str; 8] = [
    "Boulangerie",
    "Garage",
    "Ferme",
    "Atelier",
    "Brasserie",
    "Café",
    "Imprimerie",
    "Scierie",
];

const SURNAMES: [&str; 16] = [
    "Roux", "Petit", "Caron", "Dupré", "Brun", "Faure", "Leroy", "Morel", "Hérault", "Benoît",
    "Lefèvre", "Rémy", "Gaillard", "Poulain", "Noël", "Vasseur",
];

const INSTRUCTORS: [&str; 16] = [
    "Léa Caron",
    "Hélène Dupré",
    "Jérôme Roux",
    "Élodie Petit",
    "Loïc Hérault",
    "Anaïs Leroy",
    "Noé Lenoir",
    "Maëlle Poulain",
    "Inès Marchand",
    "Céline Benoît",
    "Zoé Faure",
    "Agnès Gaillard",
    "Raphaël Brun",
    "Chloé Lemaire",
    "Théo Dubois",
    "Gaël Lefèvre",
];

const COMMENTS_SINGLE: [&str; 6] = [
    "Dossier prioritaire",
    "Relance envoyée; en attente du RIB",
    "Pièce jointe illisible",
    "Cofinancement département",
    "Projet labellisé",
    "À revoir en comité",
];

/// First lines of multi-line comments: each contains a `;`.
const COMMENTS_FIRST: [&str; 4] = [
    "Manque RIB; statuts",
    "Budget révisé; plan à jour",
    "Visite faite; conforme",
    "Appel; porteur d'accord",
];

/// Second lines of multi-line comments: each contains a `"` (doubled when quoted).
const COMMENTS_SECOND: [&str; 4] = [
    "Réponse \"sous 15 j\".",
    "Avis \"favorable\".",
    "Mention \"urgent\".",
    "Voir note \"suivi\".",
];

/// Beneficiary pool entry: display name, e-mail and commune index.
struct Beneficiary {
    name: String,
    email: String,
    commune: usize,
}

/// Tables computed once and shared by all rows.
struct Tables {
    /// Cumulative weights of [`STATUSES`].
    status_cumulative: Vec<u32>,
    associations: Vec<Beneficiary>,
    companies: Vec<Beneficiary>,
    communes: Vec<Beneficiary>,
    instructor_emails: Vec<String>,
    /// Number of dossiers in snapshot 1.
    rows: usize,
    seed: u64,
    /// Day numbers (days since 1970-01-01) used for `Date statut`.
    day_2023_01_01: i64,
    day_2026_09_20: i64,
    day_2026_09_30: i64,
    day_2026_10_01: i64,
}

/// What a record looks like in a given file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// As in snapshot 1.
    First,
    /// As in snapshot 2, unchanged apart from the export date.
    Second,
    /// As in snapshot 2, moved to another step.
    SecondMoved,
}

/// Per-row marks for snapshot 2.
const MARK_KEEP: u8 = 0;
const MARK_MOVED: u8 = 1;
const MARK_REMOVED: u8 = 2;

/// Random streams derived from (seed, row index).
const STREAM_ROW: u64 = 0x524f_5753;
const STREAM_MOVE: u64 = 0x4d4f_5645;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gen_export: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> io::Result<()> {
    let started = Instant::now();
    let n = args.rows;
    if u32::try_from(n + n / 100 + 1).is_err() {
        return Err(io::Error::other("--rows is too large"));
    }
    let out = &args.out;
    fs::create_dir_all(out.join("connectors"))?;
    write_config(out)?;

    let moved = (n * 20 + 500) / 1000;
    let created = (n * 5 + 500) / 1000;
    let removed = (n * 2 + 500) / 1000;

    // Disjoint choice of moved and removed dossiers, then the shuffle, all from the
    // seeded generator.
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut marks = vec![MARK_KEEP; n];
    let chosen = rand::seq::index::sample(&mut rng, n, moved + removed);
    for (k, index) in chosen.into_iter().enumerate() {
        marks[index] = if k < moved { MARK_MOVED } else { MARK_REMOVED };
    }

    let tables = Tables::new(n, args.seed);
    let variant_of = |index: usize| match marks.get(index) {
        Some(&MARK_MOVED) => Some(Variant::SecondMoved),
        Some(&MARK_REMOVED) => None,
        _ => Some(Variant::Second),
    };
    // Snapshot 2 in id order: kept and moved dossiers, then the new ones.
    let second = || {
        (0..n + created).filter_map(move |index| variant_of(index).map(|variant| (index, variant)))
    };
    // The same records in a random order, regenerated from their indexes.
    let mut order: Vec<u32> = second()
        .map(|(index, _)| u32::try_from(index).expect("row index fits in u32"))
        .collect();
    order.shuffle(&mut rng);

    // The three files are independent: write them in parallel.
    let (bytes_1, bytes_2, shuffled) = thread::scope(|scope| {
        let tables = &tables;
        let first = scope.spawn(move || {
            let records = (0..n).map(|index| (index, Variant::First));
            write_file(&out.join("snapshot-1.csv"), tables, records)
        });
        let shuffled = scope.spawn(|| {
            let records = order.iter().map(|&index| {
                let index = index as usize;
                (index, variant_of(index).unwrap_or(Variant::Second))
            });
            write_file(&out.join("snapshot-2-shuffled.csv"), tables, records)
        });
        let bytes_2 = write_file(&out.join("snapshot-2.csv"), tables, second());
        let join = |handle: thread::ScopedJoinHandle<'_, io::Result<u64>>| {
            handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")))
        };
        (join(first), bytes_2, join(shuffled))
    });
    let (bytes_1, bytes_2) = (bytes_1?, bytes_2?);
    shuffled?;

    let rows_2 = n - removed + created;
    let expected = serde_json::json!({
        "created": created,
        "step_changed": moved,
        "disappeared": removed,
        "rows_snapshot_1": n,
        "rows_snapshot_2": rows_2,
    });
    let mut text = serde_json::to_string_pretty(&expected).map_err(io::Error::other)?;
    text.push('\n');
    fs::write(out.join("expected.json"), text)?;

    let header_bytes = HEADER.join(";").len() as u64 + 2;
    let per_row = |bytes: u64, rows: usize| {
        if rows == 0 {
            0.0
        } else {
            (bytes - header_bytes) as f64 / rows as f64
        }
    };
    eprintln!(
        "gen_export: {n} rows (seed {}) into {}: snapshot-1 {:.1} MB ({:.1} B/row), \
         snapshot-2 {rows_2} rows {:.1} MB (+{created} new, {moved} moved, -{removed} removed) \
         in {:.2} s",
        args.seed,
        out.display(),
        bytes_1 as f64 / 1e6,
        per_row(bytes_1, n),
        bytes_2 as f64 / 1e6,
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Creates `path` and writes the header then the given records; returns the number
/// of bytes written.
fn write_file(
    path: &Path,
    tables: &Tables,
    records: impl Iterator<Item = (usize, Variant)>,
) -> io::Result<u64> {
    let file = File::create(path)?;
    let mut w = CountingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        bytes: 0,
    };
    w.write_all(HEADER.join(";").as_bytes())?;
    w.write_all(b"\r\n")?;
    let mut buf = String::with_capacity(1024);
    for (index, variant) in records {
        buf.clear();
        tables.push_record(&mut buf, index, variant);
        w.write_all(buf.as_bytes())?;
    }
    w.flush()?;
    Ok(w.bytes)
}

/// A writer that counts the bytes written through it.
struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(data)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `config.toml` and `connectors/bench.toml`.
fn write_config(out: &Path) -> io::Result<()> {
    let rules_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let config = format!(
        "# Benchmark configuration written by gen_export.\n\
         connectors_dir = \"connectors\"\n\
         rules_dir = {}\n\
         [store]\n\
         path = \"state/alertissimo.db\"\n",
        toml_string(rules_dir)
    );
    fs::write(out.join("config.toml"), config)?;
    fs::write(out.join("connectors").join("bench.toml"), CONNECTOR)
}

/// The connector describing the synthetic export.
const CONNECTOR: &str = r#"# Connector for the synthetic benchmark export written by gen_export.
kind = "csv"
schedule = "0 */15 * * * *"
watch = ["amount_granted", "beneficiary.email"]
volatile = ["Date d'export"]

[source]
path = "../snapshot-1.csv"
encoding = "utf-8"
delimiter = ";"
header_row = 1
after_import = "keep"

[fields]
id = "N° dossier"
reference = "Référence"
scheme = "Dispositif"
title = "Intitulé du projet"
"beneficiary.name" = "Bénéficiaire"
"beneficiary.siret" = "SIRET"
"beneficiary.email" = "Courriel"
step = "Statut"
step_since = { column = "Date statut", format = "%d/%m/%Y" }
amount_requested = { column = "Montant demandé", format = "fr_decimal" }
amount_granted = { column = "Montant voté", format = "fr_decimal" }
"instructor.name" = "Instructeur"
"instructor.email" = "Courriel instructeur"
"extra.commune" = "Commune"
"extra.commentaire" = "Commentaire"

[steps]
"Déposé" = "depose"
"Incomplet" = "incomplet"
"Complet" = "complet"
"En instruction" = "instruction"
"Passage en commission" = "commission"
"Accordé" = "accorde"
"Refusé" = "refuse"
"Ajourné" = "ajourne"
"Convention signée" = "convention"
"Avance versée" = "paiement_avance"
"Acompte versé" = "paiement_acompte"
"Solde versé" = "paiement_solde"
"Clôturé" = "cloture"
"Sans suite" = "sans_suite"
"#;

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Tables {
    fn new(rows: usize, seed: u64) -> Self {
        let status_cumulative = STATUSES
            .iter()
            .scan(0, |total, &(_, weight, _)| {
                *total += weight;
                Some(*total)
            })
            .collect();

        let mut associations = Vec::new();
        for template in ASSOCIATIONS {
            for (commune_index, commune) in COMMUNES.iter().enumerate() {
                let name = template.replace("{}", commune);
                let email = format!("contact@{}.fr", short_slug(&name));
                associations.push(Beneficiary {
                    name,
                    email,
                    commune: commune_index,
                });
            }
        }
        let mut companies = Vec::new();
        for (k, form) in LEGAL_FORMS.iter().enumerate() {
            for (t, trade) in TRADES.iter().enumerate() {
                for (s, surname) in SURNAMES.iter().enumerate() {
                    companies.push(Beneficiary {
                        name: format!("{form} {trade} {surname}"),
                        email: format!("contact@{}-{}.fr", slug(surname), slug(form)),
                        commune: (k * 7 + t * 5 + s * 3) % COMMUNES.len(),
                    });
                }
            }
        }
        let communes = COMMUNES
            .iter()
            .enumerate()
            .map(|(commune_index, commune)| Beneficiary {
                name: format!("Commune de {commune}"),
                email: format!("contact@{}.fr", short_slug(commune)),
                commune: commune_index,
            })
            .collect();
        let instructor_emails = INSTRUCTORS
            .iter()
            .map(|name| {
                let (first, last) = name.split_once(' ').expect("first and last name");
                format!("{}.{}@region-exemple.fr", slug(first), slug(last))
            })
            .collect();

        Self {
            status_cumulative,
            associations,
            companies,
            communes,
            instructor_emails,
            rows,
            seed,
            day_2023_01_01: days_from_civil(2023, 1, 1),
            day_2026_09_20: days_from_civil(2026, 9, 20),
            day_2026_09_30: days_from_civil(2026, 9, 30),
            day_2026_10_01: days_from_civil(2026, 10, 1),
        }
    }

    /// The generator of one row for one purpose.
    fn row_rng(&self, index: usize, stream: u64) -> ChaCha8Rng {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.seed.to_le_bytes());
        seed[8..16].copy_from_slice(&(index as u64).to_le_bytes());
        seed[16..24].copy_from_slice(&stream.to_le_bytes());
        ChaCha8Rng::from_seed(seed)
    }

    /// Appends the CSV record (with its CRLF) of dossier `index` as it appears in the
    /// file described by `variant`. Indexes at or above `rows` are the dossiers new in
    /// snapshot 2.
    fn push_record(&self, buf: &mut String, index: usize, variant: Variant) {
        let mut rng = self.row_rng(index, STREAM_ROW);
        let is_new = index >= self.rows;

        // Id: ascending with the index, the year grows along the file.
        let year = if is_new {
            2026
        } else {
            2023 + (3 * index / self.rows.max(1)) as i64
        };
        let number = 3 * index as u64 + rng.random_range(1..=3u64);
        buf.push_str("HDF-");
        push_uint(buf, year.unsigned_abs(), 4);
        buf.push('-');
        push_uint(buf, number, 7);
        buf.push_str(";AR-");
        push_uint(buf, (year % 100).unsigned_abs(), 2);
        buf.push('-');
        push_uint(buf, rng.random_range(0..1_000_000u64), 6);
        buf.push(';');

        let scheme = rng.random_range(0..SCHEMES.len());
        buf.push_str(SCHEMES[scheme]);
        buf.push(';');

        // Title.
        let action = TITLE_ACTIONS[rng.random_range(0..TITLE_ACTIONS.len())];
        let object = TITLE_OBJECTS[rng.random_range(0..TITLE_OBJECTS.len())];
        let suffix = TITLE_SUFFIXES[rng.random_range(0..TITLE_SUFFIXES.len())];
        buf.push_str(action);
        buf.push(' ');
        buf.push_str(object);
        buf.push_str(suffix);
        buf.push(';');

        // Beneficiary.
        let kind = rng.random_range(0..100u32);
        let pool = if kind < 40 {
            &self.associations
        } else if kind < 85 {
            &self.companies
        } else {
            &self.communes
        };
        let beneficiary = &pool[rng.random_range(0..pool.len())];
        buf.push_str(&beneficiary.name);
        buf.push(';');
        push_siret(buf, &mut rng, kind >= 85);
        buf.push(';');
        buf.push_str(&beneficiary.email);
        buf.push(';');

        // Status and its date.
        let status = if is_new {
            STATUS_DEPOSE
        } else {
            let pick = rng.random_range(0..*self.status_cumulative.last().unwrap_or(&1));
            self.status_cumulative.partition_point(|&c| c <= pick)
        };
        let first_day = if is_new {
            self.day_2026_10_01
        } else {
            days_from_civil(year, 1, 1).max(self.day_2023_01_01)
        };
        let last_day = if is_new {
            self.day_2026_10_01
        } else {
            self.day_2026_09_30
        };
        let mut day = rng.random_range(first_day..=last_day);
        let mut label = status;
        if variant == Variant::SecondMoved {
            // A separate stream, so the rest of the record stays identical.
            let mut moved = self.row_rng(index, STREAM_MOVE);
            let next = STATUSES[status].2;
            label = next[moved.random_range(0..next.len())];
            debug_assert_ne!(label, status, "a moved dossier changes step");
            day = moved.random_range((day + 1).max(self.day_2026_09_20)..=self.day_2026_10_01);
        }
        buf.push_str(STATUSES[label].0);
        buf.push(';');
        push_date(buf, day);
        buf.push(';');

        // Amounts, in euro cents.
        let separator = if rng.random_bool(0.5) { ' ' } else { '\u{a0}' };
        let magnitude: f64 = rng.random();
        let requested_euros = (1_500.0 * (400_000.0f64 / 1_500.0).powf(magnitude)) as u64;
        let requested = if rng.random_bool(0.8) {
            requested_euros * 100
        } else {
            requested_euros * 100 + rng.random_range(1..100u64)
        };
        push_amount(buf, requested, separator);
        buf.push(';');
        let ratio = rng.random_range(40..=100u64);
        if is_voted(status) && !is_new {
            let granted = requested_euros * ratio / 100 / 10 * 10;
            push_amount(buf, granted.max(10) * 100, separator);
        }
        buf.push(';');

        // Instructor: assigned once the dossier is under review.
        let instructor = rng.random_range(0..INSTRUCTORS.len());
        if !is_new && status > STATUS_COMPLET {
            buf.push_str(INSTRUCTORS[instructor]);
            buf.push(';');
            buf.push_str(&self.instructor_emails[instructor]);
            buf.push(';');
        } else {
            buf.push_str(";;");
        }

        buf.push_str(COMMUNES[beneficiary.commune]);
        buf.push(';');

        // Comment: mostly empty, about 7 % multi-line.
        let comment = rng.random_range(0..100u32);
        if comment < 7 {
            let mut text = String::with_capacity(160);
            text.push_str(COMMENTS_FIRST[rng.random_range(0..COMMENTS_FIRST.len())]);
            text.push_str("\r\n");
            text.push_str(COMMENTS_SECOND[rng.random_range(0..COMMENTS_SECOND.len())]);
            if rng.random_bool(0.3) {
                let _ = write!(
                    text,
                    "\r\nContact : M. {}",
                    SURNAMES[rng.random_range(0..SURNAMES.len())]
                );
            }
            push_field(buf, &text);
        } else if comment < 12 {
            push_field(
                buf,
                COMMENTS_SINGLE[rng.random_range(0..COMMENTS_SINGLE.len())],
            );
        }
        buf.push(';');

        buf.push_str(match variant {
            Variant::First => EXPORT_DATES[0],
            Variant::Second | Variant::SecondMoved => EXPORT_DATES[1],
        });
        buf.push_str("\r\n");
    }
}

/// Appends `value` as a CSV field, quoted when it contains `;`, `"`, CR or LF.
fn push_field(buf: &mut String, value: &str) {
    if value.contains([';', '"', '\r', '\n']) {
        buf.push('"');
        buf.push_str(&value.replace('"', "\"\""));
        buf.push('"');
    } else {
        buf.push_str(value);
    }
}

/// Appends a SIRET: a SIREN (8 digits and its Luhn key) followed by a NIC (4 digits and
/// the key that makes the 14 digits valid under Luhn). Public bodies start with 2.
fn push_siret(buf: &mut String, rng: &mut ChaCha8Rng, public: bool) {
    let mut digits = [0u8; 14];
    for digit in &mut digits[..8] {
        *digit = rng.random_range(0..10u8);
    }
    digits[0] = if public { 2 } else { rng.random_range(3..10u8) };
    digits[8] = luhn_key(&digits[..8]);
    for digit in &mut digits[9..13] {
        *digit = rng.random_range(0..10u8);
    }
    digits[13] = luhn_key(&digits[..13]);
    for digit in digits {
        buf.push(char::from(b'0' + digit));
    }
}

/// The digit to append to `digits` so that the whole number passes the Luhn check.
fn luhn_key(digits: &[u8]) -> u8 {
    // Once the key is appended, the last digit of `digits` is doubled, then every
    // other digit going left.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            let digit = u32::from(digit);
            if position % 2 == 0 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Appends an amount in French format: thousands separated by `separator`, decimal
/// comma, two decimals.
fn push_amount(buf: &mut String, cents: u64, separator: char) {
    // A u64 has at most 20 digits: 7 groups of three.
    let mut groups = [0u64; 7];
    let mut count = 0;
    let mut rest = cents / 100;
    loop {
        groups[count] = rest % 1000;
        count += 1;
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    push_uint(buf, groups[count - 1], 1);
    for &group in groups[..count - 1].iter().rev() {
        buf.push(separator);
        push_uint(buf, group, 3);
    }
    buf.push(',');
    push_uint(buf, cents % 100, 2);
}

/// Appends a day number (days since 1970-01-01) as `dd/mm/yyyy`.
fn push_date(buf: &mut String, day: i64) {
    let (year, month, day) = civil_from_days(day);
    push_uint(buf, day.unsigned_abs(), 2);
    buf.push('/');
    push_uint(buf, month.unsigned_abs(), 2);
    buf.push('/');
    push_uint(buf, year.unsigned_abs(), 4);
}

/// Appends `value` in decimal, left-padded with zeros to `width` digits (faster than
/// `write!` in the per-row hot path).
fn push_uint(buf: &mut String, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut rest = value;
    let mut start = digits.len();
    while rest > 0 {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    start = start.min(digits.len() - width.clamp(1, digits.len()));
    for &digit in &digits[start..] {
        buf.push(char::from(digit));
    }
}

/// [`slug`] without the short French function words (`de`, `les`, …).
fn short_slug(text: &str) -> String {
    slug(text)
        .split('-')
        .filter(|word| {
            !matches!(
                *word,
                "d" | "de" | "des" | "du" | "et" | "l" | "la" | "le" | "les"
            )
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Lower-case ASCII slug: accents removed, words joined by `-`.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_dash = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        let ascii: &str = match c {
            'a'..='z' | '0'..='9' => {
                if pending_dash && !out.is_empty() {
                    out.push('-');
                }
                pending_dash = false;
                out.push(c);
                continue;
            }
            'à' | 'â' | 'ä' => "a",
            'ç' => "c",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'î' | 'ï' => "i",
            'ô' | 'ö' => "o",
            'ù' | 'û' | 'ü' => "u",
            'ÿ' => "y",
            'œ' => "oe",
            'æ' => "ae",
            _ => {
                pending_dash = true;
                continue;
            }
        };
        if pending_dash && !out.is_empty() {
            out.push('-');
        }
        pending_dash = false;
        out.push_str(ascii);
    }
    out
}
