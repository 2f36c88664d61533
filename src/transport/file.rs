//! The `file` transport: each message written as an `.eml` file into a folder
//! (`[delivery.file] dir`).
//!
//! The embedded default, so that the daemon runs with nothing installed. A file
//! is written under a temporary name, synced, then renamed: a reader never sees
//! half a message. Its name derives from the Message-ID, so a message sent again
//! after a crash replaces its first copy instead of doubling it. The
//! administrators' outage notices are written the same way ([`fn@write`]), and the
//! purge expires the files of its folder whatever the transport is now
//! ([`is_message_file`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Key, KeyDefault, Keys, Kind, Outcome, Sender, Sending, Transport};

/// The folder of `.eml` files: read whatever the transport, since the purge
/// expires the files an earlier use left there.
pub const DIR: &str = "delivery.file.dir";

/// Its line of the registry.
pub const KIND: Kind = Kind {
    name: "file",
    keys: &[Key {
        name: DIR,
        default: KeyDefault::Text("alertissimo-data/outbox"),
    }],
    settings,
};

/// The folder messages are written into.
#[derive(Debug, Clone)]
pub struct FileTransport {
    /// The folder (created when missing).
    pub dir: PathBuf,
}

fn settings(keys: &mut dyn Keys) -> Option<Arc<dyn Transport>> {
    let dir = keys.path(DIR)?;
    Some(Arc::new(FileTransport { dir }))
}

impl Transport for FileTransport {
    fn name(&self) -> &'static str {
        KIND.name
    }

    fn start(&self, _concurrency: usize) -> Result<Box<dyn Sender>, String> {
        Ok(Box::new(self.clone()))
    }
}

impl Sender for FileTransport {
    fn send<'a>(&'a self, message: lettre::Message, message_id: &'a str) -> Sending<'a> {
        let (dir, id, bytes) = (self.dir.clone(), message_id.to_owned(), message.formatted());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || write(&dir, &id, &bytes))
                .await
                .unwrap_or_else(|e| Outcome::Relay(format!("writing the file failed: {e}")))
        })
    }
}

/// Writes `bytes` (one formatted message) into `dir`.
pub fn write(dir: &Path, message_id: &str, bytes: &[u8]) -> Outcome {
    match write_atomically(dir, message_id, bytes) {
        Ok(path) => Outcome::Sent(format!("written to {}", path.display())),
        // A full disk or a missing permission stops every message, not this one:
        // the transport pauses until it is fixed.
        Err(error) => Outcome::Relay(format!("cannot write into {}: {error}", dir.display())),
    }
}

/// Whether `name` is a message file of this transport (`<id>.eml`), or one left
/// half-written by a crash (`.<id>.eml.tmp`): the retention expires these.
pub fn is_message_file(name: &str) -> bool {
    name.ends_with(".eml") || (name.starts_with('.') && name.ends_with(".eml.tmp"))
}

fn write_atomically(dir: &Path, message_id: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stem: String = message_id
        .trim_matches(['<', '>'])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let target = dir.join(format!("{stem}.eml"));
    let temporary = dir.join(format!(".{stem}.eml.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, &target)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_written_whole_and_once_per_id() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("outbox");
        assert!(matches!(
            write(&out, "<abc.alertissimo@x.fr>", b"one"),
            Outcome::Sent(_)
        ));
        assert!(matches!(
            write(&out, "<abc.alertissimo@x.fr>", b"two"),
            Outcome::Sent(_)
        ));
        let files: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(std::fs::read(&files[0]).unwrap(), b"two");
        assert!(
            files[0]
                .to_string_lossy()
                .ends_with("abc.alertissimo_x.fr.eml")
        );
    }

    #[test]
    fn an_unwritable_folder_pauses_the_transport() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(write(&file, "<a@b>", b"x"), Outcome::Relay(_)));
    }
}
