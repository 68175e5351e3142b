//! A folder's entries for an embedding app's own pages (a Connect Server style
//! dir-listing), through the same open docroots, confinement and restrictions as the
//! service's own listings.

use std::time::SystemTime;

use fallback_conf::UserSettings;
use fallback_engine::{EntryKind, RelPath};

use crate::AppState;

/// One entry of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirEntry {
    /// The entry's name (one path segment).
    pub name: String,
    /// A folder (else a regular file).
    pub is_dir: bool,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Last modification.
    pub modified: SystemTime,
}

/// Why a folder could not be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The path is not a clean docroot-relative path.
    #[error("bad path: {0}")]
    BadPath(String),
    /// No docroot applies to the user, or it does not exist on this host.
    #[error("no usable docroot for user {0:?}")]
    NoDocroot(String),
    /// The path does not name a folder.
    #[error("{0} is not a folder in the docroot")]
    NotFound(String),
    /// The folder holds more entries than the service lists (`manifest_limit`).
    #[error("{0} holds more entries than can be listed")]
    TooMany(String),
    /// The disk said no.
    #[error("listing {path}: {why}")]
    Io {
        /// The folder.
        path: String,
        /// Why.
        why: String,
    },
}

impl AppState {
    /// The entries of `dir` (docroot-relative, `/` for the top) in the docroot of
    /// `settings` ([`AppState::settings_for`]), folders and files in name order, files
    /// the docroot restrictions refuse left out. Reads on a blocking thread.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let docroot = tempfile::tempdir()?;
    /// std::fs::write(docroot.path().join("report.pdf"), b"%PDF")?;
    /// let conf = fallback_conf::Config::parse(&format!(
    ///     "<CONF><http_server><enable_http>true</enable_http></http_server><default><file_system><access><paths><path><absolute>{}</absolute>\
    ///      </path></paths></access></file_system></default></CONF>",
    ///     docroot.path().display()
    /// ))?.into_checked()?;
    /// let state = fallback_server::AppState::new(conf, Default::default())?;
    /// // Only signed-in users reach this: the app decides who "alice" is.
    /// let entries = state.list(&state.settings_for("alice").await, "/").await?;
    /// assert_eq!(entries[0].name, "report.pdf");
    /// assert_eq!(entries[0].size, 4);
    /// # Ok(()) }
    /// ```
    pub async fn list(
        &self,
        settings: &UserSettings,
        dir: &str,
    ) -> Result<Vec<DirEntry>, ListError> {
        let path = RelPath::parse(dir).map_err(|e| ListError::BadPath(e.to_string()))?;
        let no_docroot = || ListError::NoDocroot(settings.user.clone());
        let root = settings.docroot_for(None).ok_or_else(no_docroot)?;
        let storage = self.open_docroot(root).map_err(|_| no_docroot())?;
        let limit = self.options().manifest_limit;
        let listed = storage.list(&path, limit, false).await;
        let mut entries = listed.map_err(|e| match e {
            fallback_engine::Error::NotFound
            | fallback_engine::Error::WrongKind(_)
            | fallback_engine::Error::Escapes
            | fallback_engine::Error::Reserved => ListError::NotFound(path.to_string()),
            fallback_engine::Error::Limit(_) => ListError::TooMany(path.to_string()),
            e => ListError::Io {
                path: path.to_string(),
                why: e.to_string(),
            },
        })?;
        crate::restrict::retain_allowed(
            &settings.restrictions.value,
            &storage.restriction_base(),
            &path,
            &mut entries,
        );
        let mut out: Vec<DirEntry> = entries
            .into_iter()
            .map(|e| DirEntry {
                is_dir: e.kind == EntryKind::Dir,
                size: e.size,
                modified: u64::try_from(e.mtime).map_or(SystemTime::UNIX_EPOCH, |s| {
                    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s)
                }),
                name: e.path,
            })
            .collect();
        out.sort_by(|a, b| (!a.is_dir, &a.name).cmp(&(!b.is_dir, &b.name)));
        Ok(out)
    }
}
