//! Path resolution beneath the docroot, one component at a time.
//!
//! cap-std keeps every open beneath the docroot, but it follows symlinks that stay
//! inside it in one step, so a link such as `current -> .` made `current/.fallback/…`
//! reach the staging area. Here each component is opened on its own with `O_NOFOLLOW`
//! relative to the directory before it, symlinks are expanded by hand (relative
//! targets only, `..` never above the docroot, at most [`MAX_LINKS`]), and every
//! directory passed through is compared by identity (device and inode) with the
//! reserved directory. A path into the staging area must pass through that directory
//! (directories have no hard links), so no spelling and no link layout reaches a staged
//! byte; a bind mount of it shows the same identity and is refused the same way. Each
//! step is relative to a handle already checked, so nothing can be swapped in between a
//! check and its use.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;

use cap_std::fs::Dir;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::relpath::RelPath;
use crate::{Error, Result};

/// Most symlinks expanded while resolving one path (Linux's own limit).
pub(crate) const MAX_LINKS: u32 = 40;

/// A directory's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ident {
    dev: u64,
    ino: u64,
}

impl Ident {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        Ident {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    fn of_stat(st: &rustix::fs::Stat) -> Self {
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        Ident {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// What a path led to: the directories opened on the way (beneath the docroot, which
/// is borrowed, not reopened) and the last component, still to be opened, or `None`
/// when the path names the last directory itself (the root, or a link ending in `..`).
pub(crate) struct Resolved<'a> {
    pub(crate) root: &'a Dir,
    pub(crate) dirs: Vec<Dir>,
    pub(crate) name: Option<std::ffi::OsString>,
    /// What `lstat` said of `name` while resolving (`None`: missing, or not looked at).
    pub(crate) stat: Option<rustix::fs::Stat>,
}

impl Resolved<'_> {
    /// The directory holding [`Resolved::name`] (or named by the path).
    pub(crate) fn dir(&self) -> &Dir {
        self.dirs.last().unwrap_or(self.root)
    }

    /// The directory itself, owned (the docroot is duplicated only here).
    pub(crate) fn into_dir(mut self) -> Result<Dir> {
        match self.dirs.pop() {
            Some(d) => Ok(d),
            None => self.root.try_clone().map_err(Error::io),
        }
    }
}

/// What to do with a missing intermediate directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// Stop: report [`Error::NotFound`] for the path.
    NotFound,
    /// Stop without error: what exists so far is the answer (the name is what is
    /// missing).
    Stop,
    /// Create it (an upload's destination directories), with this exact mode when
    /// given (set with `fchmod`, so the umask does not change it).
    Create(Option<u32>),
}

/// Gives the directory `name` in `dir`, just created, its exact `mode` (opened
/// without following links, so nothing else gets it).
pub(crate) fn set_dir_mode(
    dir: &Dir,
    name: &std::ffi::OsStr,
    mode: Option<u32>,
    reserved: Ident,
) -> Result<()> {
    if let Some(m) = mode {
        let d = open_dir_at(dir, name, reserved)?;
        rustix::fs::fchmod(&d, Mode::from_raw_mode(m)).map_err(|e| Error::io(errno(e)))?;
    }
    Ok(())
}

/// fsync of `dir` after a directory was made in it for an upload: the new entry is
/// durable before anything is published beneath it (an fsync of the new directory
/// alone does not make its own name durable).
pub(crate) fn sync_entries(dir: &Dir) -> Result<()> {
    dir.open(".")
        .map_err(Error::io)?
        .sync_all()
        .map_err(Error::io)
}

fn errno(e: Errno) -> std::io::Error {
    e.into()
}

fn lstat(dir: &Dir, name: &std::ffi::OsStr) -> std::result::Result<rustix::fs::Stat, Errno> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
}

/// Opens the directory `name` in `dir`, refusing a symlink (already expanded) and the
/// reserved directory.
pub(crate) fn open_dir_at(dir: &Dir, name: &std::ffi::OsStr, reserved: Ident) -> Result<Dir> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        // Replaced by a link or a file since it was looked at.
        Errno::LOOP | Errno::NOTDIR => Error::WrongKind("not a directory"),
        e => Error::io(errno(e)),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::io(errno(e)))?;
    if Ident::of_stat(&st) == reserved {
        return Err(Error::Reserved);
    }
    Ok(Dir::from_std_file(File::from(fd)))
}

/// Splits a link target into components; `None` for an absolute target (always
/// outside the docroot's handle).
fn link_components(target: &[u8]) -> Option<Vec<std::ffi::OsString>> {
    if target.first() == Some(&b'/') {
        return None;
    }
    Some(
        target
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .map(|c| std::ffi::OsStr::from_bytes(c).to_owned())
            .collect(),
    )
}

/// Resolves `path` beneath `root`. Intermediate symlinks are always expanded, the last
/// component's only if `follow_last`; missing intermediate directories are handled as
/// `missing` says.
pub(crate) fn resolve<'a>(
    root: &'a Dir,
    reserved: Ident,
    path: &RelPath,
    follow_last: bool,
    missing: Missing,
) -> Result<Resolved<'a>> {
    let mut dirs: Vec<Dir> = Vec::new();
    let mut queue: VecDeque<std::ffi::OsString> = path.segments().iter().map(Into::into).collect();
    let mut links = 0;
    while let Some(seg) = queue.pop_front() {
        let last = queue.is_empty();
        match seg.as_bytes() {
            b"." => {}
            b".." => {
                if dirs.pop().is_none() {
                    return Err(Error::Escapes);
                }
            }
            _ => {
                let top = dirs.last().unwrap_or(root);
                let looked = lstat(top, &seg);
                match looked {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                        if last && !follow_last {
                            return Ok(Resolved {
                                root,
                                dirs,
                                name: Some(seg),
                                stat: Some(st),
                            });
                        }
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(Error::Escapes);
                        }
                        let target = rustix::fs::readlinkat(top, &seg, Vec::new())
                            .map_err(|e| Error::io(errno(e)))?;
                        let parts = link_components(target.as_bytes()).ok_or(Error::Escapes)?;
                        for p in parts.into_iter().rev() {
                            queue.push_front(p);
                        }
                    }
                    Ok(_) | Err(Errno::NOENT) if last => {
                        return Ok(Resolved {
                            root,
                            dirs,
                            name: Some(seg),
                            stat: looked.ok(),
                        });
                    }
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        let d = open_dir_at(top, &seg, reserved)?;
                        dirs.push(d);
                    }
                    Ok(_) => return Err(Error::WrongKind("a file is in the way")),
                    Err(Errno::NOENT) => match missing {
                        Missing::NotFound => return Err(Error::NotFound),
                        Missing::Stop => {
                            return Ok(Resolved {
                                root,
                                dirs,
                                name: Some(seg),
                                stat: None,
                            });
                        }
                        Missing::Create(mode) => {
                            match rustix::fs::mkdirat(top, &seg, Mode::from_raw_mode(0o777)) {
                                Ok(()) => {
                                    set_dir_mode(top, &seg, mode, reserved)?;
                                    sync_entries(top)?;
                                }
                                Err(Errno::EXIST) => {}
                                Err(e) => return Err(Error::io(errno(e))),
                            }
                            // Looked at again: whatever is there now is resolved the
                            // same way (a link someone made meanwhile is expanded).
                            queue.push_front(seg);
                        }
                    },
                    Err(e) => return Err(Error::io(errno(e))),
                }
            }
        }
    }
    Ok(Resolved {
        root,
        dirs,
        name: None,
        stat: None,
    })
}

/// Opens what `resolved` names for reading, without following a link (already
/// expanded) and without blocking. Special files (FIFOs, sockets, devices) are
/// [`Error::NotFound`] and never opened; a directory is checked against `reserved`.
pub(crate) fn open_read(
    resolved: Resolved<'_>,
    reserved: Ident,
) -> Result<(File, std::fs::Metadata)> {
    let Some(name) = resolved.name.as_deref() else {
        let f = resolved.into_dir()?.into_std_file();
        let meta = f.metadata().map_err(Error::io)?;
        return Ok((f, meta));
    };
    open_read_at(resolved.dir(), name, resolved.stat.as_ref(), reserved)
}

/// [`open_read`] of `name` in `dir`, given what `lstat` said of it if already asked.
pub(crate) fn open_read_at(
    dir: &Dir,
    name: &std::ffi::OsStr,
    looked: Option<&rustix::fs::Stat>,
    reserved: Ident,
) -> Result<(File, std::fs::Metadata)> {
    let st = match looked {
        Some(st) => *st,
        None => lstat(dir, name).map_err(|e| Error::io(errno(e)))?,
    };
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile && kind != FileType::Directory {
        return Err(Error::NotFound);
    }
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::LOOP => Error::NotFound,
        e => Error::io(errno(e)),
    })?;
    let f = File::from(fd);
    let meta = f.metadata().map_err(Error::io)?;
    if meta.is_dir() {
        if Ident::of(&meta) == reserved {
            return Err(Error::Reserved);
        }
    } else if !meta.is_file() {
        // Swapped for a special file since the look: opened, never read.
        return Err(Error::NotFound);
    }
    Ok((f, meta))
}

/// The identity of `dir`.
pub(crate) fn ident(dir: &Dir) -> Result<Ident> {
    let st = rustix::fs::fstat(dir).map_err(|e| Error::io(errno(e)))?;
    Ok(Ident::of_stat(&st))
}

/// Opens the directory named by `name` in `resolved` (or `resolved` itself), checked
/// against `reserved`.
pub(crate) fn open_dir(resolved: Resolved<'_>, reserved: Ident) -> Result<Dir> {
    match resolved.name.as_deref() {
        None => resolved.into_dir(),
        Some(name) => {
            let st = match resolved.stat {
                Some(st) => st,
                None => lstat(resolved.dir(), name).map_err(|e| Error::io(errno(e)))?,
            };
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                open_dir_at(resolved.dir(), name, reserved)
            } else {
                Err(Error::WrongKind("not a directory"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> std::ffi::OsString {
        s.into()
    }

    #[test]
    fn link_targets_split_and_absolute_ones_refused() {
        assert_eq!(link_components(b"/etc"), None);
        assert_eq!(
            link_components(b"a//b/./../c/"),
            Some(vec![os("a"), os("b"), os("."), os(".."), os("c")])
        );
        assert_eq!(link_components(b""), Some(vec![]));
    }
}
