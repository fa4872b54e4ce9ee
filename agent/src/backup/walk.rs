//! Listing a backup tree without following symlinks.
//!
//! Every entry is `lstat`ed; symlinks are recorded with their target and never followed,
//! special files are recorded and never opened, directories on another filesystem are
//! recorded but not entered (like `find -xdev`). Each directory is opened with
//! `O_NOFOLLOW | O_DIRECTORY` and checked to be the one that was listed (device and
//! inode) before it is read, so a directory swapped for a symlink during the walk cannot
//! lead it out of the tree. The agent's own `.setten` directory at the root is skipped.

use super::manifest::{check_rel_path, EntryKind, RawPath, MAX_ENTRIES};
use super::read::open_nofollow;
use super::{Error, MEDIUM_DIR};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One entry found.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub path: RawPath,
    pub kind: EntryKind,
    pub mode: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_ns: u32,
    pub target: Option<RawPath>,
}

/// The tree as listed.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Entries, sorted by raw path bytes.
    pub nodes: Vec<Node>,
    /// Directories that could not be listed and entries that could not be `lstat`ed.
    pub errors: Vec<(RawPath, io::Error)>,
}

impl Walk {
    /// The error of `path` or of the closest of its parents that has one.
    /// `errors` must be sorted (as [`walk`] leaves them).
    pub fn error_covering(&self, path: &[u8]) -> Option<&io::Error> {
        let find = |prefix: &[u8]| {
            self.errors
                .binary_search_by(|(p, _)| p.0.as_slice().cmp(prefix))
                .ok()
                .map(|i| &self.errors[i].1)
        };
        if let Some(e) = find(path) {
            return Some(e);
        }
        path.iter()
            .enumerate()
            .rev()
            .filter(|(_, &b)| b == b'/')
            .find_map(|(i, _)| find(&path[..i]))
    }
}

pub(crate) fn kind_of(ft: std::fs::FileType) -> EntryKind {
    if ft.is_file() {
        EntryKind::File
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else if ft.is_socket() {
        EntryKind::Socket
    } else if ft.is_char_device() {
        EntryKind::CharDevice
    } else {
        EntryKind::BlockDevice
    }
}

/// `root` joined with a relative raw path.
pub(crate) fn join(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

/// Lists the tree under `root` (which must be a directory on device `root_dev`).
/// `tick` is called with the number of entries found so far, every 1,000 entries.
pub(crate) fn walk(root: &Path, tick: &mut dyn FnMut(u64)) -> Result<Walk, Error> {
    let rmd = std::fs::metadata(root).map_err(|e| Error::RootUnavailable {
        path: root.to_path_buf(),
        source: e,
    })?;
    if !rmd.is_dir() {
        return Err(Error::RootUnavailable {
            path: root.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let root_dev = rmd.dev();
    let use_proc = Path::new("/proc/self/fd").is_dir();
    let mut w = Walk::default();
    // (relative path, expected device, expected inode)
    let mut stack: Vec<(Vec<u8>, u64, u64)> = vec![(Vec::new(), rmd.dev(), rmd.ino())];
    while let Some((dir, dev, ino)) = stack.pop() {
        let full = join(root, &dir);
        let listing = (|| {
            // The root may be reached through a symlink the user gave; below it, never.
            let f = if dir.is_empty() {
                std::fs::File::open(&full)?
            } else {
                open_nofollow(&full, true)?
            };
            let md = f.metadata()?;
            if md.dev() != dev || md.ino() != ino {
                return Err(io::Error::other(
                    "directory was replaced while the tree was being listed",
                ));
            }
            if use_proc {
                use std::os::fd::AsRawFd;
                let p = format!("/proc/self/fd/{}", f.as_raw_fd());
                let rd = std::fs::read_dir(&p)?;
                // Keep `f` open until the listing is done so the fd stays valid.
                let entries: Vec<io::Result<std::fs::DirEntry>> = rd.collect();
                drop(f);
                Ok(entries)
            } else {
                Ok(std::fs::read_dir(&full)?.collect())
            }
        })();
        let entries = match listing {
            Ok(e) => e,
            Err(e) => {
                if dir.is_empty() {
                    return Err(Error::RootUnavailable {
                        path: root.to_path_buf(),
                        source: e,
                    });
                }
                w.errors.push((RawPath(dir), e));
                continue;
            }
        };
        for ent in entries {
            let ent = match ent {
                Ok(e) => e,
                Err(e) => {
                    w.errors.push((RawPath(dir.clone()), e));
                    continue;
                }
            };
            let name = ent.file_name();
            let name = name.as_bytes();
            if dir.is_empty() && name == MEDIUM_DIR.as_bytes() {
                continue;
            }
            let mut rel = dir.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name);
            if let Err(why) = check_rel_path(&rel) {
                w.errors.push((RawPath(rel), io::Error::other(why)));
                continue;
            }
            // `DirEntry::metadata` does not follow symlinks (fstatat AT_SYMLINK_NOFOLLOW).
            let md = match ent.metadata() {
                Ok(m) => m,
                Err(e) => {
                    w.errors.push((RawPath(rel), e));
                    continue;
                }
            };
            let kind = kind_of(md.file_type());
            let target = if kind == EntryKind::Symlink {
                match std::fs::read_link(join(root, &rel)) {
                    Ok(t) => Some(RawPath(t.into_os_string().into_vec())),
                    Err(e) => {
                        w.errors.push((RawPath(rel), e));
                        continue;
                    }
                }
            } else {
                None
            };
            if kind == EntryKind::Dir && md.dev() == root_dev {
                stack.push((rel.clone(), md.dev(), md.ino()));
            }
            if w.nodes.len() >= MAX_ENTRIES {
                return Err(Error::TooManyEntries {
                    root: root.to_path_buf(),
                    max: MAX_ENTRIES,
                });
            }
            w.nodes.push(Node {
                path: RawPath(rel),
                kind,
                mode: md.mode() & 0o7777,
                size: if kind == EntryKind::File { md.len() } else { 0 },
                mtime: md.mtime(),
                mtime_ns: u32::try_from(md.mtime_nsec()).unwrap_or(0).min(999_999_999),
                target,
            });
            if w.nodes.len() % 1000 == 0 {
                tick(w.nodes.len() as u64);
            }
        }
    }
    w.nodes.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    w.errors.sort_by(|a, b| a.0.cmp(&b.0));
    tick(w.nodes.len() as u64);
    Ok(w)
}

use std::os::unix::ffi::OsStringExt;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn lists_without_following_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::create_dir_all(r.join(".setten")).unwrap();
        std::fs::write(r.join(".setten/manifest.json"), b"x").unwrap();
        std::fs::write(r.join("a/b/f"), b"hello").unwrap();
        std::fs::write(r.join(OsStr::from_bytes(b"caf\xe9")), b"").unwrap();
        std::os::unix::fs::symlink("/etc", r.join("a/etc")).unwrap();
        std::os::unix::fs::symlink("b", r.join("a/loop")).unwrap();
        std::fs::set_permissions(r.join("a/b/f"), std::fs::Permissions::from_mode(0o640)).unwrap();
        let w = walk(r, &mut |_| {}).unwrap();
        let paths: Vec<&[u8]> = w.nodes.iter().map(|n| n.path.as_bytes()).collect();
        assert_eq!(
            paths,
            [&b"a"[..], b"a/b", b"a/b/f", b"a/etc", b"a/loop", b"caf\xe9"]
        );
        assert!(w.errors.is_empty());
        let f = &w.nodes[2];
        assert_eq!((f.kind, f.size, f.mode), (EntryKind::File, 5, 0o640));
        assert_eq!(w.nodes[3].kind, EntryKind::Symlink);
        assert_eq!(w.nodes[3].target.as_ref().unwrap().as_bytes(), b"/etc");
    }

    #[test]
    fn root_may_be_a_symlink_but_nothing_below_is_followed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::fs::write(d.path().join("real/f"), b"x").unwrap();
        std::os::unix::fs::symlink("real", d.path().join("link")).unwrap();
        let w = walk(&d.path().join("link"), &mut |_| {}).unwrap();
        assert_eq!(w.nodes.len(), 1);
        assert_eq!(w.nodes[0].path.as_bytes(), b"f");
    }

    #[test]
    fn error_covering_finds_the_closest_parent() {
        let w = Walk {
            nodes: vec![],
            errors: vec![
                (RawPath(b"a".to_vec()), io::Error::other("outer")),
                (RawPath(b"a/b".to_vec()), io::Error::other("inner")),
            ],
        };
        assert_eq!(w.error_covering(b"a/b/c").unwrap().to_string(), "inner");
        assert_eq!(w.error_covering(b"a/bc").unwrap().to_string(), "outer");
        assert!(w.error_covering(b"ab").is_none());
    }

    #[test]
    fn missing_root_is_root_unavailable() {
        assert!(matches!(
            walk(Path::new("/nonexistent/root"), &mut |_| {}),
            Err(Error::RootUnavailable { .. })
        ));
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(
            walk(f.path(), &mut |_| {}),
            Err(Error::RootUnavailable { .. })
        ));
    }
}
