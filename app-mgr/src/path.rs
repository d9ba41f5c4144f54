//! Lexical confinement of forwarded file paths to the job directory: `hostd`
//! performs a job's file calls only on paths that stay inside the directory the
//! job was submitted from.
//!
//! Paths are bytes (Linux paths need not be UTF-8). A path is resolved against
//! the job's current directory (itself inside the job directory) component by
//! component: empty and `.` components are skipped, `..` goes up one level, and
//! going up from the job directory itself is refused with `EACCES`, even if a
//! later component would come back in (as `openat2(2)` `RESOLVE_BENEATH`
//! does). An absolute path is accepted only if its leading components are
//! exactly the job directory's, and is then resolved inside it the same way.
//!
//! This is lexical only: a symbolic link inside the job directory can still
//! point outside it. `hostd` must check that on the real file system (open with
//! `openat2` `RESOLVE_BENEATH`, or `O_NOFOLLOW` on each component); this module
//! cannot, having no file system.

use alloc::vec::Vec;

use crate::errno::Errno;

/// Longest path accepted, in bytes including the terminating NUL (`PATH_MAX`).
pub const PATH_MAX: usize = linux_raw_sys::general::PATH_MAX as usize;
/// Longest path component accepted, in bytes (`NAME_MAX`).
pub const NAME_MAX: usize = linux_raw_sys::general::NAME_MAX as usize;

/// The job directory: an absolute, normalised host path (no `.`/`..`/empty
/// components, no trailing slash except for `/` itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jail {
    root: Vec<u8>,
}

/// A path inside the job directory, as components relative to it (empty for
/// the job directory itself).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct JailedPath {
    components: Vec<Vec<u8>>,
    trailing_slash: bool,
}

impl JailedPath {
    /// The job directory itself.
    pub fn root() -> JailedPath {
        JailedPath::default()
    }

    /// Whether this is the job directory itself.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The path relative to the job directory, components joined by `/`;
    /// `.` for the job directory itself (usable with `openat(jobdir_fd, ...)`).
    pub fn relative(&self) -> Vec<u8> {
        if self.components.is_empty() {
            return b".".to_vec();
        }
        self.components.join(&b'/')
    }

    /// The components relative to the job directory.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.components.iter().map(|c| c.as_slice())
    }

    /// The request ended in `/` (or `/.`): the target must be a directory
    /// (`ENOTDIR` otherwise, checked by `hostd`).
    pub fn must_be_directory(&self) -> bool {
        self.trailing_slash
    }
}

/// Splits `p` on `/`, ignoring empty components.
fn components(p: &[u8]) -> impl Iterator<Item = &[u8]> {
    p.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

impl Jail {
    /// The job directory `dir`. Errors: `EINVAL` unless `dir` is absolute and
    /// has no `.` or `..` components; `ENAMETOOLONG` as for paths. Repeated and
    /// trailing slashes are dropped.
    pub fn new(dir: &[u8]) -> Result<Jail, Errno> {
        check_lengths(dir)?;
        if dir.first() != Some(&b'/') || dir.contains(&0) {
            return Err(Errno::EINVAL);
        }
        let mut root = Vec::with_capacity(dir.len());
        for c in components(dir) {
            if c == b"." || c == b".." {
                return Err(Errno::EINVAL);
            }
            root.push(b'/');
            root.extend_from_slice(c);
        }
        if root.is_empty() {
            root.push(b'/');
        }
        Ok(Jail { root })
    }

    /// The job directory, normalised.
    pub fn dir(&self) -> &[u8] {
        &self.root
    }

    /// Resolves `path` as the job would see it with current directory `cwd`.
    ///
    /// Errors: `ENOENT` for an empty path; `ENAMETOOLONG` for a path of
    /// `PATH_MAX` bytes or more, or a component over `NAME_MAX`; `EINVAL` for a
    /// NUL byte; `EACCES` for an absolute path outside the job directory or any
    /// `..` that would climb above it.
    pub fn resolve(&self, cwd: &JailedPath, path: &[u8]) -> Result<JailedPath, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        check_lengths(path)?;
        if path.contains(&0) {
            return Err(Errno::EINVAL);
        }
        if path[0] == b'/' {
            // The leading components must be the job directory's, exactly;
            // "." components are harmless and skipped.
            let mut comps = components(path).filter(|c| *c != b".");
            for want in components(&self.root) {
                match comps.next() {
                    Some(c) if c == want => {}
                    _ => return Err(Errno::EACCES),
                }
            }
            return self.walk(JailedPath::root(), comps, path);
        }
        self.walk(cwd.clone(), components(path), path)
    }

    fn walk<'a>(
        &self,
        mut out: JailedPath,
        comps: impl Iterator<Item = &'a [u8]>,
        path: &[u8],
    ) -> Result<JailedPath, Errno> {
        for c in comps {
            match c {
                b"." => {}
                b".." => {
                    if out.components.pop().is_none() {
                        return Err(Errno::EACCES);
                    }
                }
                _ => out.components.push(c.to_vec()),
            }
        }
        let last = components(path).last();
        out.trailing_slash = path.ends_with(b"/") || last == Some(b".") || last == Some(b"..");
        Ok(out)
    }

    /// The absolute host path of `p`: the job directory joined with
    /// [`JailedPath::relative`] (the job directory itself for the root). Also
    /// what `getcwd` reports for the current directory, so the program sees the
    /// directory it was submitted from.
    pub fn host_path(&self, p: &JailedPath) -> Vec<u8> {
        let mut out = self.root.clone();
        for c in &p.components {
            if out.last() != Some(&b'/') {
                out.push(b'/');
            }
            out.extend_from_slice(c);
        }
        out
    }
}

fn check_lengths(p: &[u8]) -> Result<(), Errno> {
    if p.len() >= PATH_MAX || components(p).any(|c| c.len() > NAME_MAX) {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

/// `path` made absolute against the directory `cwd` (an absolute host
/// path): `path` itself if it is absolute, else `cwd/path` without leading
/// `./` components (what `/proc/self/exe` shows for a program run by a
/// relative path).
pub fn absolute(cwd: &[u8], path: &[u8]) -> Vec<u8> {
    if path.first() == Some(&b'/') {
        return path.to_vec();
    }
    let mut rel = path;
    while let Some(r) = rel.strip_prefix(b"./") {
        rel = r;
    }
    let mut p = cwd.to_vec();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(rel);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn jail() -> Jail {
        Jail::new(b"/home/user/job").unwrap()
    }

    fn rel(j: &Jail, cwd: &JailedPath, p: &str) -> Result<Vec<u8>, Errno> {
        j.resolve(cwd, p.as_bytes()).map(|r| r.relative())
    }

    #[test]
    fn jail_new_normalises_and_validates() {
        assert_eq!(
            Jail::new(b"/home//user/job/").unwrap().dir(),
            b"/home/user/job"
        );
        assert_eq!(Jail::new(b"/").unwrap().dir(), b"/");
        assert_eq!(Jail::new(b"job"), Err(Errno::EINVAL));
        assert_eq!(Jail::new(b"/a/../b"), Err(Errno::EINVAL));
        assert_eq!(Jail::new(b"/a/./b"), Err(Errno::EINVAL));
        assert_eq!(Jail::new(b""), Err(Errno::EINVAL));
    }

    #[test]
    fn relative_paths_inside() {
        let j = jail();
        let root = JailedPath::root();
        assert_eq!(rel(&j, &root, "data.txt"), Ok(b"data.txt".to_vec()));
        assert_eq!(rel(&j, &root, "./a//b/./c"), Ok(b"a/b/c".to_vec()));
        assert_eq!(rel(&j, &root, "a/b/../c"), Ok(b"a/c".to_vec()));
        assert_eq!(rel(&j, &root, "."), Ok(b".".to_vec()));
        assert_eq!(rel(&j, &root, "a/.."), Ok(b".".to_vec()));
        let sub = j.resolve(&root, b"sub/dir").unwrap();
        assert_eq!(rel(&j, &sub, "../x"), Ok(b"sub/x".to_vec()));
        assert_eq!(rel(&j, &sub, "../../x"), Ok(b"x".to_vec()));
        assert_eq!(j.host_path(&sub), b"/home/user/job/sub/dir".to_vec());
        assert_eq!(j.host_path(&root), b"/home/user/job".to_vec());
    }

    #[test]
    fn climbing_out_is_eacces() {
        let j = jail();
        let root = JailedPath::root();
        assert_eq!(rel(&j, &root, ".."), Err(Errno::EACCES));
        assert_eq!(rel(&j, &root, "../job/x"), Err(Errno::EACCES));
        assert_eq!(rel(&j, &root, "a/../../etc/passwd"), Err(Errno::EACCES));
        let sub = j.resolve(&root, b"sub").unwrap();
        assert_eq!(rel(&j, &sub, "../../etc"), Err(Errno::EACCES));
        assert_eq!(rel(&j, &sub, "../.."), Err(Errno::EACCES));
    }

    #[test]
    fn absolute_paths() {
        let j = jail();
        let sub = j.resolve(&JailedPath::root(), b"sub").unwrap();
        assert_eq!(rel(&j, &sub, "/home/user/job/x/y"), Ok(b"x/y".to_vec()));
        assert_eq!(rel(&j, &sub, "//home/./user//job"), Ok(b".".to_vec()));
        assert_eq!(rel(&j, &sub, "/home/user/job/x/../y"), Ok(b"y".to_vec()));
        assert_eq!(rel(&j, &sub, "/etc/passwd"), Err(Errno::EACCES));
        assert_eq!(rel(&j, &sub, "/"), Err(Errno::EACCES));
        assert_eq!(rel(&j, &sub, "/home/user"), Err(Errno::EACCES));
        assert_eq!(rel(&j, &sub, "/home/user/jobs/x"), Err(Errno::EACCES));
        assert_eq!(rel(&j, &sub, "/home/user/job/.."), Err(Errno::EACCES));
        assert_eq!(
            rel(&j, &sub, "/home/user/../user/job/x"),
            Err(Errno::EACCES)
        );
        // With the whole file system as the job directory, any absolute path is in.
        let all = Jail::new(b"/").unwrap();
        assert_eq!(
            rel(&all, &JailedPath::root(), "/etc/passwd"),
            Ok(b"etc/passwd".to_vec())
        );
        assert_eq!(rel(&all, &JailedPath::root(), "/.."), Err(Errno::EACCES));
        let p = all.resolve(&JailedPath::root(), b"/etc").unwrap();
        assert_eq!(all.host_path(&p), b"/etc".to_vec());
    }

    #[test]
    fn bad_paths() {
        let j = jail();
        let root = JailedPath::root();
        assert_eq!(rel(&j, &root, ""), Err(Errno::ENOENT));
        assert_eq!(j.resolve(&root, b"a\0b"), Err(Errno::EINVAL));
        let long_name = vec![b'a'; NAME_MAX + 1];
        assert_eq!(j.resolve(&root, &long_name), Err(Errno::ENAMETOOLONG));
        assert!(j.resolve(&root, &long_name[..NAME_MAX]).is_ok());
        let long_path: Vec<u8> = b"a/".iter().copied().cycle().take(PATH_MAX).collect();
        assert_eq!(j.resolve(&root, &long_path), Err(Errno::ENAMETOOLONG));
    }

    #[test]
    fn trailing_slash_means_directory() {
        let j = jail();
        let root = JailedPath::root();
        assert!(j.resolve(&root, b"dir/").unwrap().must_be_directory());
        assert!(j.resolve(&root, b"dir/.").unwrap().must_be_directory());
        assert!(!j.resolve(&root, b"dir/file").unwrap().must_be_directory());
        let cwd = j.resolve(&root, b"dir/").unwrap();
        assert!(!j.resolve(&cwd, b"file").unwrap().must_be_directory());
        let ab = j.resolve(&root, b"a/b").unwrap();
        let comps: Vec<&[u8]> = ab.components().collect();
        assert_eq!(comps, vec![&b"a"[..], &b"b"[..]]);
    }
}
