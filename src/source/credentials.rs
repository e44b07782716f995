//! Credentials shared by the apiserver and kubelet clients: bearer tokens that rotate (re-read
//! from their file when it changes), client certificates, the cluster CA.
//!
//! Tokens are held in [`Secret`]s, which print as `**REDACTED**`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

/// A string that never shows in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// Where a bearer token comes from.
#[derive(Debug)]
pub enum TokenSource {
    Static(Secret),
    /// Re-read whenever the file's modification time changes (bound service-account tokens
    /// are rotated by the kubelet), or on demand after a 401.
    File {
        path: PathBuf,
        cache: Mutex<Option<(Option<SystemTime>, Secret)>>,
    },
}

impl TokenSource {
    pub fn file(path: impl Into<PathBuf>) -> TokenSource {
        TokenSource::File {
            path: path.into(),
            cache: Mutex::new(None),
        }
    }

    /// The current token; `None` when the file cannot be read (logged by the caller once).
    pub fn current(&self) -> Option<Secret> {
        match self {
            TokenSource::Static(s) => Some(s.clone()),
            TokenSource::File { path, cache } => {
                let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((cached_mtime, token)) = cache.as_ref()
                    && *cached_mtime == mtime
                    && mtime.is_some()
                {
                    return Some(token.clone());
                }
                let token = Secret::new(std::fs::read_to_string(path).ok()?.trim().to_string());
                *cache = Some((mtime, token.clone()));
                Some(token)
            }
        }
    }

    /// Forgets the cached token, so the next call re-reads the file.
    pub fn invalidate(&self) {
        if let TokenSource::File { cache, .. } = self {
            *cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// Credentials for kubelets, derived from the apiserver client's.
#[derive(Debug, Default)]
pub struct KubeletCredentials {
    pub token: Option<TokenSource>,
    /// PEM of the client certificate followed by its key.
    pub identity_pem: Option<Secret>,
    /// DER certificates of the cluster CA.
    pub ca_der: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "**REDACTED** **REDACTED**");
    }

    #[test]
    fn token_file_is_reread_when_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "one\n").expect("write");
        let src = TokenSource::file(&path);
        assert_eq!(
            src.current().map(|s| s.expose().to_string()).as_deref(),
            Some("one")
        );
        // Replace the file (as the kubelet does: a new file renamed over the old one).
        let tmp = dir.path().join("token.new");
        std::fs::write(&tmp, "two").expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        src.invalidate();
        assert_eq!(
            src.current().map(|s| s.expose().to_string()).as_deref(),
            Some("two")
        );
    }
}
