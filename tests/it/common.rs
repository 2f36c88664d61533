//! Shared helpers: a throw-away installation and ways to run the binary in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

/// The compiled binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_alertissimo");

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture file of `tests/fixtures/csv`.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/csv").join(name)
}

/// A throw-away installation: config, one connector named `portail`, an inbox.
pub struct Install {
    pub dir: TempDir,
}

impl Install {
    /// An installation using the fixture connector as it is.
    pub fn new() -> Self {
        Self::with_connector(|c| c)
    }

    /// An installation whose connector file is `text`.
    pub fn with_text(text: impl Into<String>) -> Self {
        let text = text.into();
        Self::with_connector(move |_| text)
    }

    /// An installation whose connector text is changed by `edit`.
    pub fn with_connector(edit: impl FnOnce(String) -> String) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path();
        std::fs::create_dir_all(root.join("connectors")).unwrap();
        std::fs::create_dir_all(root.join("inbox")).unwrap();
        std::fs::create_dir_all(root.join("exports")).unwrap();
        std::fs::write(
            root.join("config.toml"),
            format!(
                "connectors_dir = \"connectors\"\nrules_dir = \"{}\"\n[store]\npath = \"state/alertissimo.db\"\n",
                repo().join("rules").display()
            ),
        )
        .unwrap();
        let connector = std::fs::read_to_string(fixture("connector.toml")).unwrap();
        std::fs::write(root.join("connectors/portail.toml"), edit(connector)).unwrap();
        Self { dir }
    }

    /// Appends TOML to the configuration file (new sections only).
    pub fn append_config(&self, text: &str) {
        let path = self.config();
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push_str(text);
        std::fs::write(path, config).unwrap();
    }

    /// Serves `/metrics` on a free port of 127.0.0.1 (`[metrics] listen`);
    /// returns the port.
    pub fn serve_metrics(&self) -> u16 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        self.append_config(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
        port
    }

    /// Gives the installation its own copy of the shipped rules folder, to edit;
    /// returns its path.
    pub fn own_rules(&self) -> PathBuf {
        let target = self.root().join("rules");
        copy_dir(&repo().join("rules"), &target);
        let config = std::fs::read_to_string(self.config()).unwrap().replace(
            &format!("rules_dir = \"{}\"", repo().join("rules").display()),
            "rules_dir = \"rules\"",
        );
        std::fs::write(self.config(), config).unwrap();
        target
    }

    /// An installation whose connector tolerates one dossier in five disappearing
    /// (the fixtures are small).
    pub fn tolerant() -> Self {
        Self::with_connector(|c| {
            c.replace(
                "max_disappeared_ratio = 0.05",
                "max_disappeared_ratio = 0.5",
            )
        })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.root().join("config.toml")
    }

    pub fn db(&self) -> PathBuf {
        self.root().join("state/alertissimo.db")
    }

    /// A command of the binary with `--config` set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--config")
            .arg(self.config())
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("the binary runs")
    }

    /// Copies a fixture into `exports/` (so that its path is stable) and returns that path.
    pub fn export(&self, fixture_name: &str) -> PathBuf {
        let target = self.root().join("exports").join(fixture_name);
        std::fs::copy(fixture(fixture_name), &target).unwrap();
        target
    }

    /// Imports a fixture with `--json` and returns the summary and the exit code.
    pub fn import(&self, fixture_name: &str, extra: &[&str]) -> (Value, i32) {
        let file = self.export(fixture_name);
        let mut args = vec!["import", "portail", file.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        summary(&self.run(&args))
    }

    /// Imports the file at `path` with `--json`; returns the summary and the exit code.
    pub fn import_path(&self, path: &Path) -> (Value, i32) {
        summary(&self.run(&["import", "portail", path.to_str().unwrap(), "--json"]))
    }

    /// Copies `tests/fixtures/{folder}/{name}` into `exports/` and imports it.
    pub fn import_fixture(&self, folder: &str, name: &str) -> (Value, i32) {
        let file = self.root().join("exports").join(name);
        std::fs::copy(repo().join("tests/fixtures").join(folder).join(name), &file).unwrap();
        self.import_path(&file)
    }

    /// Imports the connector's API with `var` (its token's variable) set to
    /// `value`, blocking inside the test's runtime while the mock server answers.
    pub async fn import_api(&self, var: &str, value: &str) -> (Value, i32) {
        tokio::task::block_in_place(|| {
            let out = self
                .cmd(&["import", "portail", "--json"])
                .env(var, value)
                .output()
                .unwrap();
            summary(&out)
        })
    }

    /// The fields of the dossier with this reference, as `dossier --json` shows them.
    pub fn fields(&self, reference: &str) -> Value {
        let out = self.run(&["dossier", reference, "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let found: Value = serde_json::from_slice(&out.stdout).unwrap();
        found[0]["fields"].clone()
    }

    /// A read connection to the state database.
    pub fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).expect("the state database opens")
    }

    /// The dossiers table, as comparable text rows (bookkeeping columns left out),
    /// then the change-detection state of each connector and the reference index.
    pub fn dossiers(&self) -> Vec<String> {
        let conn = self.sql();
        let mut rows = Vec::new();
        for sql in [
            "SELECT source_id || '|' || reference || '|' || step || '|' || status || '|'
                    || step_entered_at || '|' || present || '|' || hex(fields)
             FROM dossiers ORDER BY connector, source_id",
            "SELECT 'index|' || connector || '|' || part || '|' || hex(entries)
             FROM change_index ORDER BY connector, part",
            "SELECT 'references|' || id || '|' || hex(entries) FROM reference_index ORDER BY id",
        ] {
            let mut stmt = conn.prepare(sql).unwrap();
            let found = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
            rows.extend(found.map(Result::unwrap));
        }
        rows
    }

    /// The events, as comparable text rows, in a stable order (times of detection left out).
    pub fn events(&self) -> Vec<String> {
        let conn = self.sql();
        let mut stmt = conn
            .prepare(
                "SELECT d.source_id, e.kind, coalesce(e.from_step, ''), coalesce(e.to_step, ''),
                        coalesce(e.field, ''), coalesce(e.old_value, ''), coalesce(e.new_value, ''),
                        e.baseline, e.run_id
                 FROM events e JOIN dossiers d ON d.id = e.dossier_id
                 ORDER BY e.run_id, d.source_id, e.id",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok(format!(
                "run{} {} {} {}>{} {} {}>{} baseline={}",
                r.get::<_, i64>(8)?,
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }
}

/// The integer value of a JSON key.
/// Every alert of `outbox list --json`, as the values of four of its `keys`
/// (an absent one is empty), sorted.
pub fn outbox_rows(install: &Install, keys: [&str; 4]) -> Vec<(String, String, String, String)> {
    let out = install.run(&["outbox", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut rows: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (s(keys[0]), s(keys[1]), s(keys[2]), s(keys[3]))
        })
        .collect();
    rows.sort();
    rows
}

pub fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer `{key}` in {v}"))
}

/// The JSON summary an `import --json` printed, and its exit code.
fn summary(out: &Output) -> (Value, i32) {
    let summary = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{}", text(out)));
    (summary, out.status.code().unwrap_or(-1))
}

/// Text of a command's stdout and stderr together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

impl Install {
    /// Starts the daemon (its logs discarded); it is killed when dropped.
    pub fn daemon(&self) -> Daemon {
        Daemon(
            self.cmd(&["run"])
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("the daemon starts"),
        )
    }
}

/// A daemon killed when dropped, so that a failing test leaves no daemon running
/// (and `cargo test` waiting for its output).
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends SIGTERM to a daemon and waits (at most 20 s) for it to exit; returns its status.
pub fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = std::time::Instant::now();
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `cmd` and returns its output, or `None` when it has not finished within
/// `limit` (it is then killed): a test of a command that used to hang fails
/// rather than waits.
pub fn output_within(mut cmd: Command, limit: std::time::Duration) -> Option<Output> {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Drained on threads, so that a chatty command never blocks on a full pipe.
    let drain = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Some(Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    })
}
