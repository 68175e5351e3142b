//! Checks against the host that reads the file: do the docroots exist here?

use std::path::Path;

use crate::diag::{Code, Diagnostic};
use crate::parse::Scope;
use crate::resolve::substitute;
use crate::{Account, Config};

impl Config {
    /// Findings about this host: every docroot written (with `$(name)` and `$(home)`
    /// made for each user section that gets it, and the fixed part before the first
    /// substitution for everyone else) must be an existing directory. Reads the file
    /// system and the user database (NSS), so it is not part of [`Config::parse`];
    /// `fallback config check` and `fallbackd --check-config` both run it.
    pub fn host_findings(&self) -> Vec<Diagnostic> {
        let doc = self.document();
        let mut out = Vec::new();
        let mut scopes = vec![Scope::Default];
        scopes.extend((0..doc.groups.len()).map(Scope::Group));
        scopes.extend((0..doc.users.len()).map(Scope::User));
        for scope in scopes {
            let layer = self.layer(scope);
            for (key, template) in crate::validate::written_docroots(layer) {
                if template.contains("://") {
                    // Buckets are checked over the network, by `fallbackd --check-config`
                    // and `fallback doctor`; other URIs are refused by the validation.
                    continue;
                }
                let (pos, path) = self.at(scope, key);
                let user = match scope {
                    Scope::User(i) => Some(doc.users[i].name.as_str()),
                    _ => None,
                };
                let check = match user {
                    Some(name) => {
                        let account = if template.contains("$(home)") {
                            Account::lookup(name)
                        } else {
                            Account::named(name, Vec::new())
                        };
                        match substitute(template, name, account.home.as_deref()) {
                            Ok(p) => Some(p),
                            Err(why) => {
                                out.push(Diagnostic::new(
                                    Code::DocrootSubstitution,
                                    pos,
                                    path.clone(),
                                    why,
                                ));
                                None
                            }
                        }
                    }
                    // Shared by many users: the part before the first substitution.
                    None => match template.find("$(") {
                        None => Some(template.into()),
                        Some(at) => {
                            let prefix = &template[..at];
                            if prefix.ends_with('/') {
                                Some(prefix.into())
                            } else {
                                Path::new(prefix).parent().map(Path::to_path_buf)
                            }
                            .filter(|p| !p.as_os_str().is_empty())
                        }
                    },
                };
                let Some(dir) = check else { continue };
                if !dir.is_absolute() {
                    continue; // docroot-not-absolute says it
                }
                match std::fs::metadata(&dir) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => out.push(Diagnostic::new(
                        Code::DocrootNotFound,
                        pos,
                        path,
                        format!("docroot {} is not a directory on this host", dir.display()),
                    )),
                    Err(e) => out.push(Diagnostic::new(
                        Code::DocrootNotFound,
                        pos,
                        path,
                        format!(
                            "docroot {} cannot be used on this host ({}); create it, or fix \
                             the path: clients would be refused",
                            dir.display(),
                            match e.kind() {
                                std::io::ErrorKind::NotFound => "it does not exist".to_owned(),
                                _ => e.to_string(),
                            }
                        ),
                    )),
                }
            }
        }
        out
    }

    /// The `s3://` docroots written anywhere in the file, for checking the buckets:
    /// in a user's section with `$(name)` made for that user; elsewhere the prefix up
    /// to its first substitution (the part every user shares). Each once.
    pub fn s3_docroots(&self) -> Vec<crate::S3Root> {
        let doc = self.document();
        let mut out: Vec<crate::S3Root> = Vec::new();
        let mut scopes = vec![Scope::Default];
        scopes.extend((0..doc.groups.len()).map(Scope::Group));
        scopes.extend((0..doc.users.len()).map(Scope::User));
        for scope in scopes {
            for (_, template) in crate::validate::written_docroots(self.layer(scope)) {
                let Ok(root) = crate::S3Root::parse(template) else {
                    continue; // docroot-uri says why
                };
                let root = match scope {
                    Scope::User(i) => match root.for_user(&doc.users[i].name) {
                        Ok(r) => r,
                        Err(_) => continue,
                    },
                    _ => {
                        let mut shared = root;
                        shared.prefix = shared
                            .prefix
                            .split('/')
                            .take_while(|s| !s.contains("$("))
                            .collect::<Vec<_>>()
                            .join("/");
                        shared
                    }
                };
                if !out.contains(&root) {
                    out.push(root);
                }
            }
        }
        out
    }
}
