//! Transfer users as the system knows them: home directory and groups, through the
//! C library's name service (NSS: files, LDAP, SSSD alike), never by parsing
//! `/etc/passwd` by hand.

use std::path::PathBuf;

/// What settings resolution needs to know about a transfer user beyond the name:
/// their groups (group sections apply through them) and home directory (`$(home)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// The user name, as tokens carry it.
    pub name: String,
    /// The home directory, when the system has an account of that name.
    pub home: Option<PathBuf>,
    /// Every group the account is in (primary and supplementary), by name.
    pub groups: Vec<String>,
}

impl Account {
    /// A user the system need not know: no home, the given groups.
    pub fn named(name: impl Into<String>, groups: Vec<String>) -> Self {
        Account {
            name: name.into(),
            home: None,
            groups,
        }
    }

    /// Looks `name` up in the system's user database (blocking: NSS may ask a
    /// directory server). A name the system does not know gives an account with no
    /// home and no groups.
    pub fn lookup(name: &str) -> Self {
        use nix::unistd::{Group, User, getgrouplist};
        let mut account = Account::named(name, Vec::new());
        let Ok(Some(user)) = User::from_name(name) else {
            return account;
        };
        account.home = Some(user.dir);
        let Ok(cname) = std::ffi::CString::new(name) else {
            return account;
        };
        if let Ok(gids) = getgrouplist(&cname, user.gid) {
            for gid in gids {
                if let Ok(Some(g)) = Group::from_gid(gid)
                    && !account.groups.contains(&g.name)
                {
                    account.groups.push(g.name);
                }
            }
        }
        account
    }
}

#[cfg(test)]
mod tests {
    use super::Account;

    #[test]
    fn root_has_a_home_and_a_group() {
        let root = Account::lookup("root");
        assert_eq!(root.home.as_deref(), Some(std::path::Path::new("/root")));
        assert!(root.groups.iter().any(|g| g == "root"), "{root:?}");
        let nobody = Account::lookup("no-such-user-here-xyz");
        assert_eq!(nobody.home, None);
        assert!(nobody.groups.is_empty());
    }
}
