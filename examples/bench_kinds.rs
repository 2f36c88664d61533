//! Import speed of the kinds on equivalent data: the same dossiers as CSV, as XML, as
//! an `.xlsx` workbook and as pages of an HTTP JSON API, each imported by
//! `alertissimo import` into an empty store (a baseline), with the CSV measured in
//! the same run as the reference.
//!
//! Usage (from the repository root):
//!
//! ```text
//! cargo build --release --bin alertissimo --example gen_export
//! cargo run --release --example bench_kinds -- [--rows 100000] [--runs 3] [--seed 42]
//!     [--dir DIR] [--bin PATH]
//! ```
//!
//! Requirements: GNU time (`/usr/bin/time`) for the peak memory of each import.
//!
//! Steps: `gen_export` (built next to this program) writes `snapshot-1.csv` into
//! `DIR/data` (default `target/bench-kinds`); this program converts it once into
//! `snapshot-1.xml` (one `<dossier>` element per record, one child element per
//! column, UTF-8) and `snapshot-1.xlsx` (one row per record, text cells in the
//! shared-strings table as Excel writes them), and serves the records as JSON pages of
//! 100 (`?page=N`) from an HTTP server on 127.0.0.1 inside this program (100 000
//! dossiers: 1 000 pages). It writes a connector for each, identical but for `kind`,
//! `[source]` and the names of the columns. Each run then imports the four, each into a
//! new store. The table gives, per kind, the median time, rows per second, the ratio to
//! CSV's rows per second, and the median peak RSS; the targets are a ratio of at least
//! 0.5 for XML and spreadsheets, and for the API a peak RSS no larger than CSV's (pages
//! are streamed: memory does not grow with the number of pages).

#![allow(clippy::print_stdout, clippy::print_stderr)]
// A benchmark reads top to bottom: the limit on long functions holds in src/.
#![allow(clippy::too_many_lines)]

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use clap::Parser;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Times the import of the same dossiers as CSV, XML and .xlsx")]
struct Args {
    /// Number of dossiers.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Number of measured runs (medians are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Seed of the generated export.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Working folder [default: target/bench-kinds].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The alertissimo binary [default: target/release/alertissimo].
    #[arg(long)]
    bin: Option<PathBuf>,
}

/// The XML element of each column of the generated export, in column order.
const ELEMENTS: [(&str, &str); 16] = [
    ("N° dossier", "numero"),
    ("Référence", "reference"),
    ("Dispositif", "dispositif"),
    ("Intitulé du projet", "intitule"),
    ("Bénéficiaire", "beneficiaire"),
    ("SIRET", "siret"),
    ("Courriel", "courriel"),
    ("Statut", "statut"),
    ("Date statut", "date_statut"),
    ("Montant demandé", "montant_demande"),
    ("Montant voté", "montant_vote"),
    ("Instructeur", "instructeur"),
    ("Courriel instructeur", "courriel_instructeur"),
    ("Commune", "commune"),
    ("Commentaire", "commentaire"),
    ("Date d'export", "date_export"),
];

const GNU_TIME: &str = "/usr/bin/time";
const TARGET_RATIO: f64 = 0.5;

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench_kinds: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this program: {e}"))?;
    let examples = exe.parent().unwrap_or(Path::new("."));
    let target = examples
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| target.join("release").join("alertissimo"));
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| target.join("bench-kinds"));
    let data = dir.join("data");
    let params = format!("{{\"rows\":{},\"seed\":{}}}", args.rows, args.seed);
    if fs::read_to_string(data.join("params.json")).ok().as_deref() != Some(params.as_str()) {
        let _ = fs::remove_dir_all(&data);
        let status = Command::new(examples.join("gen_export"))
            .args([
                "--rows",
                &args.rows.to_string(),
                "--seed",
                &args.seed.to_string(),
            ])
            .arg("--out")
            .arg(&data)
            .status()
            .map_err(|e| format!("gen_export (build it with --example gen_export): {e}"))?;
        if !status.success() {
            return Err("gen_export failed".to_owned());
        }
        let csv = data.join("snapshot-1.csv");
        write_xml(&csv, &data.join("snapshot-1.xml"))?;
        write_xlsx(&csv, &data.join("snapshot-1.xlsx"))?;
        fs::write(data.join("params.json"), &params).map_err(|e| e.to_string())?;
    }
    let csv_connector = fs::read_to_string(data.join("connectors/bench.toml"))
        .map_err(|e| format!("the connector gen_export wrote: {e}"))?;
    let server = serve_pages(&data.join("snapshot-1.csv"))?;
    let kinds = [
        ("csv", "snapshot-1.csv", csv_connector.clone()),
        ("xml", "snapshot-1.xml", xml_connector(&csv_connector)?),
        ("xlsx", "snapshot-1.xlsx", sheet_connector(&csv_connector)?),
        ("http", "", http_connector(&csv_connector, &server)?),
    ];
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    for (kind, _, connector) in &kinds {
        let home = dir.join(kind);
        fs::create_dir_all(home.join("connectors")).map_err(|e| e.to_string())?;
        fs::write(home.join("connectors/bench.toml"), connector).map_err(|e| e.to_string())?;
        fs::write(
            home.join("config.toml"),
            format!(
                "connectors_dir = \"connectors\"\nrules_dir = \"{rules}\"\n[store]\npath = \"state/alertissimo.db\"\n"
            ),
        )
        .map_err(|e| e.to_string())?;
    }
    let mut samples: Vec<Vec<(f64, u64)>> = vec![Vec::new(); kinds.len()];
    for run in 1..=args.runs {
        let mut line = format!("bench_kinds: run {run}/{}:", args.runs);
        for (i, (kind, file, _)) in kinds.iter().enumerate() {
            let home = dir.join(kind);
            let _ = fs::remove_dir_all(home.join("state"));
            let file = (!file.is_empty()).then(|| data.join(file));
            let sample = measure(&bin, &home, file.as_deref())?;
            line.push_str(&format!(" {kind} {:.2} s", sample.0));
            samples[i].push(sample);
        }
        eprintln!("{line}");
    }
    println!("alertissimo import speed by kind (baseline import into an empty store)");
    println!("data:     {} dossiers, seed {}", args.rows, args.seed);
    println!("runs:     {}\n", args.runs);
    println!(
        "{:<8}{:>12}{:>14}{:>12}{:>14}   target",
        "kind", "median s", "rows/s", "vs csv", "peak RSS MB"
    );
    let csv_rate = args.rows as f64 / median(samples[0].iter().map(|s| s.0).collect());
    for (i, (kind, _, _)) in kinds.iter().enumerate() {
        let seconds = median(samples[i].iter().map(|s| s.0).collect());
        let rss = median(samples[i].iter().map(|s| s.1 as f64).collect()) / 1024.0;
        let rate = args.rows as f64 / seconds;
        let ratio = rate / csv_rate;
        let csv_rss = median(samples[0].iter().map(|s| s.1 as f64).collect()) / 1024.0;
        let verdict = match *kind {
            "csv" => "(reference)".to_owned(),
            "http" => format!(
                "peak RSS <= csv's: {}",
                if rss <= csv_rss * 1.05 {
                    "PASS"
                } else {
                    "FAIL"
                }
            ),
            _ => format!(
                ">= {TARGET_RATIO}: {}",
                if ratio >= TARGET_RATIO {
                    "PASS"
                } else {
                    "FAIL"
                }
            ),
        };
        println!("{kind:<8}{seconds:>12.3}{rate:>14.0}{ratio:>11.2}x{rss:>14.1}   {verdict}");
    }
    Ok(())
}

/// Imports `file` (the connector's API when `None`) with the configuration in
/// `home`; returns (seconds, peak RSS KiB).
fn measure(bin: &Path, home: &Path, file: Option<&Path>) -> Result<(f64, u64), String> {
    let timing = home.join("time.txt");
    let started = Instant::now();
    let out = Command::new(GNU_TIME)
        .args(["-f", "%M", "-o"])
        .arg(&timing)
        .arg(bin)
        .args(["import", "bench"])
        .args(file)
        .args(["--json", "--config"])
        .arg(home.join("config.toml"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{GNU_TIME} (apt-get install time): {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("\"status\":\"applied\"") {
        return Err(format!(
            "importing {} failed:\n{stdout}{}",
            file.map_or_else(|| "the API".to_owned(), |f| f.display().to_string()),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rss = fs::read_to_string(&timing)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .ok_or("no peak RSS from GNU time")?;
    Ok((seconds, rss))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn read_csv(csv: &Path) -> Result<csv::Reader<fs::File>, String> {
    csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_path(csv)
        .map_err(|e| format!("{}: {e}", csv.display()))
}

fn write_xml(csv: &Path, xml: &Path) -> Result<(), String> {
    let mut reader = read_csv(csv)?;
    let mut out = BufWriter::new(fs::File::create(xml).map_err(|e| e.to_string())?);
    let io = |e: std::io::Error| e.to_string();
    out.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<export>\r\n")
        .map_err(io)?;
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        out.write_all(b"  <dossier>").map_err(io)?;
        for ((_, element), value) in ELEMENTS.iter().zip(record.iter()) {
            let value = value
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            write!(out, "<{element}>{value}</{element}>").map_err(io)?;
        }
        out.write_all(b"</dossier>\r\n").map_err(io)?;
    }
    out.write_all(b"</export>\r\n").map_err(io)?;
    out.flush().map_err(io)
}

fn write_xlsx(csv: &Path, xlsx: &Path) -> Result<(), String> {
    let mut reader = read_csv(csv)?;
    let mut book = rust_xlsxwriter::Workbook::new();
    // Text cells in the shared-strings table, as Excel writes them.
    let sheet = book.add_worksheet();
    let err = |e: rust_xlsxwriter::XlsxError| e.to_string();
    for (col, (header, _)) in ELEMENTS.iter().enumerate() {
        sheet.write_string(0, col as u16, *header).map_err(err)?;
    }
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| e.to_string())?;
        for (col, value) in record.iter().enumerate() {
            if !value.is_empty() {
                sheet
                    .write_string(row as u32 + 1, col as u16, value)
                    .map_err(err)?;
            }
        }
    }
    book.save(xlsx).map_err(err)
}

/// The connector's `[source]` table, replaced.
fn with_source(connector: &str, kind: &str, source: &str) -> Result<String, String> {
    let start = connector
        .find("[source]")
        .ok_or("no [source] in the connector")?;
    let end = connector
        .find("[fields]")
        .ok_or("no [fields] in the connector")?;
    Ok(
        format!("{}{source}\n{}", &connector[..start], &connector[end..])
            .replace("kind = \"csv\"", &format!("kind = \"{kind}\"")),
    )
}

fn xml_connector(csv: &str) -> Result<String, String> {
    let mut text = with_source(
        csv,
        "xml",
        "[source]\npath = \"../data/snapshot-1.xml\"\nrecord = \"/export/dossier\"\nafter_import = \"keep\"\nsettle = \"0s\"\n",
    )?;
    for (header, element) in ELEMENTS {
        text = text.replace(&format!("\"{header}\""), &format!("\"{element}\""));
    }
    Ok(text)
}

fn sheet_connector(csv: &str) -> Result<String, String> {
    with_source(
        csv,
        "spreadsheet",
        "[source]\npath = \"../data/snapshot-1.xlsx\"\nheader_row = 1\nafter_import = \"keep\"\nsettle = \"0s\"\n",
    )
}

/// Serves the records of `csv` as JSON pages of 100 (`GET /dossiers?page=N`, from 1)
/// on 127.0.0.1; returns the address of the first page.
fn serve_pages(csv: &Path) -> Result<String, String> {
    let mut reader = read_csv(csv)?;
    let mut pages: Vec<String> = Vec::new();
    let mut page: Vec<serde_json::Value> = Vec::with_capacity(100);
    let flush = |page: &mut Vec<serde_json::Value>, pages: &mut Vec<String>| {
        pages.push(serde_json::json!({ "data": std::mem::take(page) }).to_string());
    };
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let object: serde_json::Map<String, serde_json::Value> = ELEMENTS
            .iter()
            .zip(record.iter())
            .map(|((_, name), value)| ((*name).to_owned(), serde_json::Value::from(value)))
            .collect();
        page.push(serde_json::Value::Object(object));
        if page.len() == 100 {
            flush(&mut page, &mut pages);
        }
    }
    if !page.is_empty() {
        flush(&mut page, &mut pages);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let pages = std::sync::Arc::new(pages);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let pages = std::sync::Arc::clone(&pages);
            std::thread::spawn(move || serve(stream, &pages));
        }
    });
    Ok(format!("http://{address}/dossiers"))
}

/// Answers the requests of one connection (HTTP/1.1, keep-alive).
fn serve(stream: std::net::TcpStream, pages: &[String]) {
    use std::io::BufRead;
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(read_half);
    let _ = stream.set_nodelay(true);
    let mut writer = stream;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        // Skip the headers.
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let number: usize = request
            .split_whitespace()
            .nth(1)
            .and_then(|target| target.split("page=").nth(1))
            .and_then(|n| n.split('&').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let empty = "{\"data\":[]}".to_owned();
        let body = pages.get(number.wrapping_sub(1)).unwrap_or(&empty);
        // One write, without Nagle's delay: the client reads the whole page at once.
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(body.as_bytes());
        if writer.write_all(&response).is_err() {
            return;
        }
    }
}

fn http_connector(csv: &str, url: &str) -> Result<String, String> {
    let mut text = with_source(
        csv,
        "http_json",
        &format!(
            "[source]\nurl = \"{url}\"\nrecords = \"/data\"\n[source.pagination]\nkind = \"page\"\nparam = \"page\"\nsize_param = \"per_page\"\nsize = 100\n"
        ),
    )?;
    for (header, element) in ELEMENTS {
        text = text.replace(&format!("\"{header}\""), &format!("\"/{element}\""));
    }
    Ok(text)
}
