//! Credentials: which hosts are this machine, which header or query parameter
//! names and values carry a credential (pure), and where a secret is read from
//! (the environment or a file, [`PasswordSource`]), kept in a [`Secret`] that is
//! never printed, with the CA certificates of a PEM file ([`read_ca_file`]).
//!
//! Connectors (`http_json`, `demarches_simplifiees`) and the SMTP transport use it
//! to refuse sending a credential in clear (plain `http://`, `tls = "none"`) to
//! another machine, and `check` to warn about a credential written in a file
//! that every user may read.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Whether `host` (a URL's host, `smtp.host`) is this machine: `localhost`, an
/// address of 127.0.0.0/8, or `::1` (also written `[::1]`, or IPv4-mapped).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.trim_end_matches('.').eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The words of a header or query parameter name that say its value is a
/// credential (`Authorization`, `X-Api-Key`, `access_token`, `PRIVATE-TOKEN`…).
const SECRET_WORDS: [&str; 14] = [
    "authorization",
    "auth",
    "cookie",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "key",
    "apikey",
    "signature",
    "credential",
    "credentials",
    "session",
];

/// Whether a header or query parameter called `name` carries a credential, by
/// its name: one of its words (split on `-`, `_` and `.`) is one of
/// `SECRET_WORDS`, or it contains `token`, `secret`, `password` or `apikey`.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower
        .split(['-', '_', '.'])
        .any(|word| SECRET_WORDS.contains(&word))
        || ["token", "secret", "password", "apikey"]
            .iter()
            .any(|w| lower.contains(w))
}

/// Whether a header `name: value` carries a credential: a secret name, or a
/// value that is an authentication scheme and its credentials (`Bearer …`,
/// `Basic …`, `Token …`, `Digest …`).
pub fn is_secret_header(name: &str, value: &str) -> bool {
    let scheme = value
        .trim_start()
        .split_once(' ')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    is_secret_name(name)
        || scheme.is_some_and(|s| matches!(s.as_str(), "bearer" | "basic" | "token" | "digest"))
}

/// Where a secret (the SMTP password, an API token) is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// An environment variable.
    Env(String),
    /// A file (a systemd credential), its content without the final line break.
    File(PathBuf),
}

impl PasswordSource {
    /// Reads the password.
    ///
    /// # Errors
    /// A reason naming the variable or the file.
    pub fn read(&self) -> Result<Secret, String> {
        self.read_as("smtp.password")
    }

    /// The file it is read from, if it is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Env(_) => None,
        }
    }

    /// Reads the secret that the keys `{key}_env` or `{key}_file` name.
    ///
    /// # Errors
    /// A reason naming the key and the variable or the file.
    pub fn read_as(&self, key: &str) -> Result<Secret, String> {
        match self {
            Self::Env(_) => self.read_for(&format!("{key}_env")),
            Self::File(_) => self.read_for(&format!("{key}_file")),
        }
    }

    /// Reads the secret; an error starts with `setting`, the key that names it.
    ///
    /// # Errors
    /// A reason naming the setting and the variable or the file.
    pub fn read_for(&self, setting: &str) -> Result<Secret, String> {
        match self {
            Self::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Secret(v)),
                _ => Err(format!(
                    "{setting}: the environment variable {var} is not set"
                )),
            },
            Self::File(path) => std::fs::read_to_string(path)
                .map(|v| Secret(v.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| format!("{setting}: cannot read {}: {e}", path.display())),
        }
    }
}

/// The CA certificates of the PEM file that the setting `key` names (a
/// connector's `ca_file`, `smtp.ca_file`).
///
/// # Errors
/// A reason naming the key and the file: unreadable, not PEM, no certificate.
pub fn read_ca_file(
    path: &Path,
    key: &str,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let problem = |reason: String| format!("{key} {}: {reason}", path.display());
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| problem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(e.to_string()))?;
    if certs.is_empty() {
        return Err(problem(
            "no certificate in it (a PEM file: -----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(certs)
}

/// A TLS client configuration that trusts the system's roots and those of
/// the PEM file the setting `key` names, if any (ring as the provider, safe
/// protocol versions, no client certificate).
///
/// # Errors
/// A reason naming the key and the file, as [`read_ca_file`] does.
pub fn tls_client(ca_file: Option<&Path>, key: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        for cert in read_ca_file(path, key)? {
            roots
                .add(cert)
                .map_err(|e| format!("{key} {}: {e}", path.display()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tls)
}

/// A secret that is never printed.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "api.example.org",
            "10.0.0.1",
            "localhost.example.org",
            "128.0.0.1",
            "::2",
            "",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
        assert!(is_loopback("::ffff:127.0.0.1"));
    }

    #[test]
    fn secret_names_and_headers() {
        for name in [
            "Authorization",
            "X-Api-Key",
            "x-api-key",
            "X-Auth-Token",
            "PRIVATE-TOKEN",
            "access_token",
            "api_key",
            "apikey",
            "Ocp-Apim-Subscription-Key",
            "Cookie",
            "client_secret",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "Accept",
            "X-Api-Version",
            "page",
            "per_page",
            "X-Tenant",
            "keyword",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
        assert!(is_secret_header("X-Custom", "Bearer abc"));
        assert!(is_secret_header("X-Custom", "basic dXNlcjpwdw=="));
        assert!(!is_secret_header("X-Api-Version", "2"));
        assert!(!is_secret_header("Accept-Language", "fr fr"));
    }
}
