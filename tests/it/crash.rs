//! Crash safety: SIGKILL in the middle of large imports leaves the store as
//! before or as after the import, never in between, and re-running it converges.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::Install;

const ROWS: usize = 60_000;
const KILLS: usize = 12;

const STATUSES: [&str; 5] = [
    "Déposé",
    "Instruction en cours",
    "Passage en CP",
    "Voté en CP",
    "Convention signée",
];

/// Writes an export of the fixture connector's shape. `second` moves some dossiers
/// to another step, adds some and removes a few.
fn write_export(path: &Path, second: bool) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all("N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Statut;Date statut;Montant voté;Date d'export\r\n".as_bytes())
        .unwrap();
    let total = if second { ROWS + ROWS / 100 } else { ROWS };
    let mut line = String::new();
    for i in 0..total {
        if second && i % 200 == 7 {
            continue; // removed: 0.5 %
        }
        let moved = second && i % 50 == 3; // 2 %
        let status = STATUSES[(i + usize::from(moved)) % STATUSES.len()];
        let day = if moved { 20 } else { 1 + i % 19 };
        line.clear();
        write!(
            line,
            "D{i:07};REF-{i};Aide aux TPE;Entreprise n°{i} « Les Artisans »;73282932000074;contact{i}@exemple.fr;{status};{day:02}/09/2026;{} 000,00;{}\r\n",
            1 + i % 90,
            if second { "02/10/2026" } else { "01/10/2026" }
        )
        .unwrap();
        out.write_all(line.as_bytes()).unwrap();
    }
    out.flush().unwrap();
}

fn state(install: &Install) -> (Vec<String>, Vec<String>, i64) {
    let runs = install
        .sql()
        .query_row(
            "SELECT count(*) FROM runs WHERE status = 'applied' AND kind = 'import'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (install.dossiers(), install.events(), runs)
}

fn copy_db(from: &Install, to: &Install) {
    std::fs::create_dir_all(to.db().parent().unwrap()).unwrap();
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", to.db().display()));
    }
    std::fs::copy(from.db(), to.db()).unwrap();
}

/// Kills the import of `export` into copies of `start`'s store at moments spread
/// over it: each time the store is as before or as after, and importing again
/// gives the state after. Returns the final state.
fn kills_never_half_apply(start: &Install, export: &Path) -> (Vec<String>, Vec<String>, i64) {
    let before = state(start);
    // The reference: the same import, uninterrupted.
    let reference = Install::new();
    copy_db(start, &reference);
    let begun = Instant::now();
    let out = reference.run(&["import", "portail", export.to_str().unwrap()]);
    let full = begun.elapsed();
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let after = state(&reference);
    assert_ne!(before, after);

    let victim = Install::new();
    let (mut as_before, mut as_after) = (0, 0);
    for k in 0..KILLS {
        copy_db(start, &victim);
        let mut child = victim
            .cmd(&["import", "portail", export.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over the whole import, and a little past it.
        std::thread::sleep(full.mul_f64(1.1 * (k as f64 + 0.5) / KILLS as f64));
        let _ = child.kill();
        let _ = child.wait();
        let now = state(&victim);
        if now == before {
            as_before += 1;
        } else if now == after {
            as_after += 1;
        } else {
            panic!("kill {k} left the store half-applied");
        }
        // Re-running the import converges to the same final state.
        let out = victim.run(&["import", "portail", export.to_str().unwrap()]);
        assert!(out.status.success(), "{}", crate::common::text(&out));
        assert_eq!(state(&victim), after, "re-running after kill {k}");
    }
    assert!(
        as_before > 0,
        "no kill fell inside an import (import took {full:?})"
    );
    eprintln!("{KILLS} kills: {as_before} left the store as before, {as_after} as after");
    after
}

#[test]
fn sigkill_during_imports_never_half_applies() {
    let baseline = Install::new();
    let first = baseline.root().join("exports/first.csv");
    let second = baseline.root().join("exports/second.csv");
    write_export(&first, false);
    write_export(&second, true);
    let out = baseline.run(&["import", "portail", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let after = kills_never_half_apply(&baseline, &second);
    assert_eq!(
        after
            .1
            .iter()
            .filter(|e| e.contains(" step_changed "))
            .count(),
        ROWS / 50
    );
}

/// A connector's first import writes with SQLite's rollback journal (see
/// `Store::begin_bulk_import`): killed, it leaves a journal that the next
/// program to open the store rolls back.
#[test]
fn sigkill_during_a_first_import_never_half_applies() {
    let empty = Install::new();
    let first = empty.root().join("exports/first.csv");
    write_export(&first, false);
    // A migrated store without dossiers: an export of a header alone is refused.
    let header = empty.root().join("exports/header.csv");
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&header, text.lines().next().unwrap()).unwrap();
    let out = empty.run(&["import", "portail", header.to_str().unwrap()]);
    assert!(empty.db().exists(), "{}", crate::common::text(&out));
    let after = kills_never_half_apply(&empty, &first);
    assert!(after.0.len() >= ROWS, "{} dossier rows", after.0.len());
    // Imported without a kill, the store is back in WAL mode, without a journal.
    let out = empty.run(&["import", "portail", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let mode: String = empty
        .sql()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(!Path::new(&format!("{}-journal", empty.db().display())).exists());
}

/// SQLite writes it at the head of a journal once the journal is synced, before
/// the database file is written: a journal that starts with it is hot.
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// Kills, a few times if need be, the first import of `export` into a copy of
/// `start`'s store while it writes into the database file, until the kill leaves
/// a hot journal; returns the journal's path.
fn kill_leaving_a_hot_journal(start: &Install, victim: &Install, export: &Path) -> PathBuf {
    let journal = PathBuf::from(format!("{}-journal", victim.db().display()));
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    for _ in 0..10 {
        copy_db(start, victim);
        let before = size(&victim.db());
        let mut child = victim
            .cmd(&["import", "portail", export.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed once the import's pages spill into the database file (which
        // grows); new pages are not journaled, so the journal stays small.
        while child.try_wait().unwrap().is_none() && size(&victim.db()) < before + (1 << 20) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill();
        let _ = child.wait();
        let head = std::fs::read(&journal).unwrap_or_default();
        if head.starts_with(&JOURNAL_MAGIC) {
            return journal;
        }
    }
    panic!("no kill left a hot journal");
}

/// After a SIGKILL during a connector's first import (rollback-journal mode),
/// `check` accepts the store, as `run` and `import` recover it, rather than
/// failing on "attempt to write a readonly database".
// See: issue 17, item 30 (`check` after a crash).
#[test]
fn issue_17_item_30_check_after_a_crash_during_a_first_import() {
    let empty = Install::new();
    let first = empty.root().join("exports/first.csv");
    write_export(&first, false);
    let header = empty.root().join("exports/header.csv");
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&header, text.lines().next().unwrap()).unwrap();
    let _ = empty.run(&["import", "portail", header.to_str().unwrap()]);
    assert!(empty.db().exists());

    let victim = Install::new();
    let journal = kill_leaving_a_hot_journal(&empty, &victim, &first);
    let out = victim.run(&["check"]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
    // It rolled the interrupted import back, and changed nothing else.
    assert!(!journal.exists(), "the journal is still there");
    assert_eq!(state(&victim), state(&empty));
    // The import then runs whole, and `check` still passes.
    let out = victim.run(&["import", "portail", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
    assert!(state(&victim).0.len() >= ROWS);
    let out = victim.run(&["check"]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
}
