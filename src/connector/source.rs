//! What a kind of source is: the traits each kind implements in its own file.
//!
//! A kind (`csv`, `spreadsheet`, `xml`, `http_json`, `demarches_simplifiees`) is one
//! file that implements `SourceKind`: its name, its `[source]` table (a
//! `Deserialize` type with `deny_unknown_fields`), its validation, and the checks
//! that tie it to the keys every connector has. What it validates into is a
//! [`Source`], which the [`super::Connector`] holds as a trait object: its secrets,
//! and how it is read, either files dropped in a folder ([`FileSource`]: the first
//! pass and the [`Table`] of a file) or an API synchronised ([`ApiSource`]: the
//! [`Live`] reader of one synchronisation, which `spool` keeps on disk). A source
//! never sees the database: it yields records, `mapping` makes dossiers of them and
//! `import` writes them. The list of kinds is `super::KINDS`, and `Kind` is how
//! that list holds one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::folder::{self, DropFolder};
use super::mapping::Mapping;
use super::parse::{Common, ConnectorFile};
use super::spool::{Live, SyncStart};
use super::table::{FirstPass, Table};
use crate::diag::FileProblems;

/// The validated `[source]` of a connector, whatever its kind.
pub trait Source: fmt::Debug + Send + Sync {
    /// How it is read: files dropped in a folder, or an API.
    fn reads(&self) -> Reads<'_>;

    /// Checks that the secrets it reads can be read (`check`).
    ///
    /// # Errors
    /// A reason naming the setting and the variable or file (never the value).
    fn check_secrets(&self) -> Result<(), String> {
        Ok(())
    }

    /// The files its secrets are read from, with the setting that names each.
    fn secret_files(&self) -> Vec<(String, &Path)> {
        Vec::new()
    }

    /// The credentials written in the connector file itself, as messages name
    /// them (never their values).
    fn inline_secrets(&self) -> &[String] {
        &[]
    }

    /// The senders of the source's own automatic e-mails to applicants (DS).
    fn automatic_senders(&self) -> &[String] {
        &[]
    }

    /// Checks the validated `[fields]` against the kind (XML's paths): the
    /// problems found, each about the whole file.
    fn check_mapping(&self, _mapping: &Mapping) -> Vec<String> {
        Vec::new()
    }
}

impl dyn Source {
    /// The drop folder of a file source (none for an API).
    pub(crate) fn folder(&self) -> Option<&DropFolder> {
        match self.reads() {
            Reads::Files(files) => Some(files.folder()),
            Reads::Api(_) => None,
        }
    }

    /// The address of an API source (none for files).
    pub(crate) fn address(&self) -> Option<String> {
        match self.reads() {
            Reads::Api(api) => Some(api.address()),
            Reads::Files(_) => None,
        }
    }
}

/// How a source is read.
pub enum Reads<'a> {
    /// Files dropped in a folder, one snapshot each.
    Files(&'a dyn FileSource),
    /// An API, one synchronisation at each import.
    Api(&'a dyn ApiSource),
}

/// A source whose snapshots are files dropped in a folder.
pub trait FileSource {
    /// Where the files are and what becomes of them: the importer, `check`, its
    /// warnings and the purge all find the folder through it.
    fn folder(&self) -> &DropFolder;

    /// What is learnt of a file before the import's transaction: by default, a
    /// binary file's checksum and size (a text kind gives its encoding too).
    ///
    /// # Errors
    /// A reason naming the file.
    fn first_pass(&self, path: &Path) -> Result<FirstPass, String> {
        folder::checksum(path).map(|(checksum, bytes)| FirstPass::Binary { checksum, bytes })
    }

    /// Opens a file as a table, positioned on its first record, and how far its
    /// records' offsets go (in the unit of [`FileSource::progress_unit`]).
    ///
    /// # Errors
    /// A reason naming the file: unreadable, or without a header row.
    fn open(
        &self,
        path: &Path,
        first: &FirstPass,
        mapping: &Mapping,
    ) -> Result<(Table, u64), String>;

    /// What the offsets of its records count, for the progress bar.
    fn progress_unit(&self) -> ProgressUnit {
        ProgressUnit::Bytes
    }
}

/// What the offsets of a file's records count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    /// Bytes of the file.
    Bytes,
    /// Rows (a workbook's).
    Rows,
}

/// A source read through an API, one whole synchronisation at a time.
pub trait ApiSource {
    /// Its address, as messages and runs name it.
    fn address(&self) -> String;

    /// Starts a synchronisation (nothing is fetched yet).
    ///
    /// # Errors
    /// When a secret cannot be read, the client cannot be set up, or the stored
    /// state is not readable.
    fn open(&self, start: SyncStart<'_>) -> Result<Box<dyn Live>, String>;
}

/// What a kind is, as its own file declares it.
pub(crate) trait SourceKind: Source + Sized + 'static {
    /// Its name, as `kind = "…"` writes it.
    const NAME: &'static str;

    /// Whether `[fields]` may read the champs and annotations of a Démarches
    /// Simplifiées dossier (`champ`, `annotation`).
    const READS_CHAMPS: bool = false;

    /// Its `[source]` table as written (`#[serde(deny_unknown_fields)]`).
    type Settings: DeserializeOwned;

    /// Validates `settings` (`base` is the connectors folder, for relative
    /// paths), every problem into `fp`; `None` when there was one.
    fn validate(settings: Self::Settings, base: &Path, fp: &mut FileProblems<'_>) -> Option<Self>;

    /// Checks that tie the kind to the keys every connector has, and the
    /// defaults it gives them, before `[fields]` and `[steps]` are validated;
    /// `source` is `None` when `[source]` did not validate.
    fn settle(_source: Option<&Self>, _common: &mut Common, _fp: &mut FileProblems<'_>) {}
}

/// A kind as the list of kinds (`super::KINDS`) holds it.
pub(crate) struct Kind {
    /// Its name, as `kind = "…"` writes it.
    pub(crate) name: &'static str,
    /// Whether `[fields]` may read DS champs and annotations.
    pub(crate) reads_champs: bool,
    /// Reads a connector file of this kind.
    pub(crate) read: fn(&mut FileProblems<'_>, &Path) -> Option<Read>,
}

impl Kind {
    /// The registration of kind `K`.
    pub(crate) const fn of<K: SourceKind>() -> Self {
        Self {
            name: K::NAME,
            reads_champs: K::READS_CHAMPS,
            read: read::<K>,
        }
    }
}

/// A connector file read with its kind's `[source]` table.
pub(crate) struct Read {
    /// The keys every kind shares, settled by the kind.
    pub(crate) common: Common,
    /// The validated source, `None` when it did not validate.
    pub(crate) source: Option<Arc<dyn Source>>,
}

/// Reads the text of `fp` as a connector file of kind `K`.
fn read<K: SourceKind>(fp: &mut FileProblems<'_>, base: &Path) -> Option<Read> {
    let (mut common, settings) = Common::split(fp.parse::<ConnectorFile<K::Settings>>()?);
    let source = K::validate(settings, base, fp);
    K::settle(source.as_ref(), &mut common, fp);
    Some(Read {
        common,
        source: source.map(|s| Arc::new(s) as Arc<dyn Source>),
    })
}
