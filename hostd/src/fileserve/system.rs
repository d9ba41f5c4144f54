//! The submitter's system paths a job may read (issue 11: dynamically linked
//! programs need their program interpreter, shared libraries,
//! `/etc/ld.so.cache` and data such as time zones): a set of roots exported
//! read-only. A path is a system path when, normalized lexically, it lies
//! under one of the roots as named; it is then resolved with all its links
//! (`realpath(3)`), and the result must lie under one of the roots' own
//! resolved forms (on a merged-`/usr` system `/lib` is a link to `usr/lib`),
//! so no link leads out of the exported set. Writing gives `EROFS`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// What `hostd submit` exports by default: the places a glibc or musl
/// dynamic program, and Python, read at start and while they run.
pub const DEFAULT_ROOTS: &[&str] = &[
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/usr/lib",
    "/usr/lib64",
    "/usr/lib32",
    "/usr/libx32",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/usr/share/zoneinfo",
];

/// Read-only roots, each as named and as resolved.
#[derive(Clone, Debug, Default)]
pub struct SystemPaths {
    roots: Vec<(PathBuf, PathBuf)>,
}

impl SystemPaths {
    /// No system path is visible (the default of a [`super::FileServer`]).
    pub fn none() -> SystemPaths {
        SystemPaths::default()
    }

    /// [`DEFAULT_ROOTS`] that exist here, plus `extra` (`--ro PATH`).
    ///
    /// # Errors
    /// An `extra` path that is not absolute or does not exist.
    pub fn defaults_and(extra: &[PathBuf]) -> anyhow::Result<SystemPaths> {
        let mut s = SystemPaths::none();
        for r in DEFAULT_ROOTS {
            let _ = s.add(Path::new(r));
        }
        for p in extra {
            anyhow::ensure!(
                p.is_absolute(),
                "--ro {}: give an absolute path",
                p.display()
            );
            s.add(p)
                .map_err(|e| anyhow::anyhow!("--ro {}: {e}", p.display()))?;
        }
        Ok(s)
    }

    /// Exports `root` (absolute). Errors: it does not exist.
    pub fn add(&mut self, root: &Path) -> std::io::Result<()> {
        let resolved = std::fs::canonicalize(root)?;
        let named = normalize(root.as_os_str().as_bytes()).unwrap_or_else(|| root.to_path_buf());
        if !self.roots.iter().any(|(n, _)| *n == named) {
            self.roots.push((named, resolved));
        }
        Ok(())
    }

    /// The exported roots as named, for `--verbose`.
    pub fn roots(&self) -> impl Iterator<Item = &Path> {
        self.roots.iter().map(|(n, _)| n.as_path())
    }

    /// `None` if `path` is not a system path (the job directory's rules
    /// apply); otherwise its resolved form, or why it cannot be read:
    /// `ENOENT` and the like from resolving it, `EACCES` if its links lead
    /// out of the exported roots.
    pub fn lookup(&self, path: &[u8]) -> Option<Result<PathBuf, Errno>> {
        let norm = normalize(path)?;
        if !self.roots.iter().any(|(n, _)| norm.starts_with(n)) {
            return None;
        }
        let resolved = match std::fs::canonicalize(&norm) {
            Ok(r) => r,
            Err(e) => return Some(Err(Errno::from_raw(e.raw_os_error().unwrap_or(2)))),
        };
        if self.roots.iter().any(|(_, r)| resolved.starts_with(r)) {
            Some(Ok(resolved))
        } else {
            Some(Err(Errno::EACCES))
        }
    }
}

/// `path` without `.`, `..` and repeated slashes, if absolute (`..` at the
/// root stays at the root, as the kernel resolves it).
fn normalize(path: &[u8]) -> Option<PathBuf> {
    if path.first() != Some(&b'/') {
        return None;
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = PathBuf::from("/");
    for p in parts {
        out.push(OsStr::from_bytes(p));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(b"/usr/./lib//x/../y"), Some("/usr/lib/y".into()));
        assert_eq!(normalize(b"/../../etc"), Some("/etc".into()));
        assert_eq!(normalize(b"rel/path"), None);
    }

    #[test]
    fn only_paths_under_the_roots_resolve_and_links_stay_inside() {
        let base = std::env::temp_dir().join(format!("sion-system-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("sys/lib")).unwrap();
        std::fs::create_dir_all(base.join("private")).unwrap();
        std::fs::write(base.join("sys/lib/libz.so.1"), b"lib").unwrap();
        std::fs::write(base.join("private/key"), b"secret").unwrap();
        std::os::unix::fs::symlink("libz.so.1", base.join("sys/lib/libz.so")).unwrap();
        std::os::unix::fs::symlink("../../private/key", base.join("sys/lib/key")).unwrap();
        let mut s = SystemPaths::none();
        s.add(&base.join("sys/lib")).unwrap();
        let b = |p: &str| base.join(p).into_os_string().into_vec();
        use std::os::unix::ffi::OsStringExt;
        assert_eq!(
            s.lookup(&b("sys/lib/libz.so")),
            Some(Ok(base.join("sys/lib/libz.so.1").canonicalize().unwrap()))
        );
        assert_eq!(s.lookup(&b("sys/lib/missing")), Some(Err(Errno::ENOENT)));
        assert_eq!(
            s.lookup(&b("sys/lib/key")),
            Some(Err(Errno::EACCES)),
            "a link out"
        );
        assert_eq!(s.lookup(&b("private/key")), None, "not exported");
        assert_eq!(s.lookup(&b("sys/lib/../../private/key")), None);
        assert_eq!(s.lookup(b"relative"), None);
        let _ = std::fs::remove_dir_all(&base);
    }
}
