//! The cluster key on the host: where `hostd` finds it, what it says about
//! it, and `hostd keygen` (the key itself and its format:
//! [`sion_companion_mgr::auth`]).
//!
//! `hostd` reads `--key FILE` (or `$SION_KEY_FILE`), else
//! `$XDG_CONFIG_HOME/sion/cluster.key` (`~/.config/sion/cluster.key`) when it
//! exists. `--key none` forces an open group. Without a key `hostd` speaks the
//! open group's protocol and sees only nodes built without a key.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use sion_companion_mgr::auth::{KEY_LEN, KeyId, Keyring, key_file_text};

/// The environment variable naming the key file (as `--key`).
pub const KEY_ENV: &str = "SION_KEY_FILE";

/// The cluster keys `hostd` uses, and where they came from.
#[derive(Clone, Debug, Default)]
pub struct HostKeys {
    /// The keyring; `None` for an open group.
    pub keys: Option<Keyring>,
    /// The file read, if any.
    pub path: Option<PathBuf>,
}

impl HostKeys {
    /// The signing key's id, `None` for an open group.
    pub fn key_id(&self) -> Option<KeyId> {
        self.keys.as_ref().map(|k| k.signing().id())
    }

    /// One line for messages: `cluster key 1a2b3c4d (from PATH)` or
    /// `no cluster key (open group)`.
    pub fn describe(&self) -> String {
        match (&self.keys, &self.path) {
            (Some(k), Some(p)) => {
                format!("cluster key {} (from {})", k.signing().id(), p.display())
            }
            (Some(k), None) => format!("cluster key {}", k.signing().id()),
            (None, _) => "no cluster key (open group)".into(),
        }
    }
}

/// `$XDG_CONFIG_HOME/sion/cluster.key`, else `$HOME/.config/sion/cluster.key`.
pub fn default_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("sion").join("cluster.key"))
}

/// Reads the keys: `arg` (`--key`; `none` for an open group) if given, else
/// the default file if it exists, else none.
///
/// # Errors
/// A given file that cannot be read, or any key file that is malformed.
pub fn load(arg: Option<&Path>) -> Result<HostKeys> {
    let path = match arg {
        Some(p) if p == Path::new("none") => return Ok(HostKeys::default()),
        Some(p) => p.to_path_buf(),
        None => match default_path() {
            Some(p) if p.exists() => p,
            _ => return Ok(HostKeys::default()),
        },
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the cluster key file {}", path.display()))?;
    let keys = Keyring::parse(&text)
        .with_context(|| format!("the cluster key file {} is malformed", path.display()))?;
    if let Ok(meta) = std::fs::metadata(&path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "hostd: warning: the cluster key file {} can be read by other users (chmod 600 it)",
            path.display()
        );
    }
    Ok(HostKeys {
        keys: Some(keys),
        path: Some(path),
    })
}

static CURRENT: OnceLock<HostKeys> = OnceLock::new();

/// Sets the keys of this process (once, from the command line); later calls
/// are ignored.
pub fn set_current(keys: HostKeys) {
    let _ = CURRENT.set(keys);
}

/// The keys of this process: what [`set_current`] set, else an open group.
pub fn current() -> &'static HostKeys {
    CURRENT.get_or_init(HostKeys::default)
}

/// `hostd keygen`: writes a new random key to `out` (`-`: standard output)
/// with mode 0600, creating its directory (mode 0700); refuses to replace a
/// file unless `force`. The key comes from the kernel's random source
/// (`/dev/urandom`, the same pool as getrandom(2)).
///
/// # Errors
/// The file exists (without `force`), or an I/O error.
pub fn keygen(out: &Path, force: bool) -> Result<KeyId> {
    let mut secret = [0u8; KEY_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .context("reading /dev/urandom")?;
    let text = key_file_text(&secret);
    let id = Keyring::parse(&text)
        .expect("a made key parses")
        .signing()
        .id();
    if out == Path::new("-") {
        std::io::stdout().write_all(text.as_bytes())?;
        return Ok(id);
    }
    if out.exists() && !force {
        bail!(
            "{} exists: a new key would lock out every node built with the old one (use --force to replace it)",
            out.display()
        );
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("writing {}", out.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_key_that_loads() {
        let dir = std::env::temp_dir().join(format!("hostd-keygen-{}", std::process::id()));
        let file = dir.join("sub").join("cluster.key");
        let id = keygen(&file, false).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = load(Some(&file)).unwrap();
        assert_eq!(loaded.key_id(), Some(id));
        assert!(loaded.describe().contains(&id.to_string()));
        let again = keygen(&file, false).unwrap_err().to_string();
        assert!(again.contains("--force"), "{again}");
        let other = keygen(&file, true).unwrap();
        assert_ne!(other, id);
        std::fs::write(&file, "not a key\n").unwrap();
        let bad = format!("{:#}", load(Some(&file)).unwrap_err());
        assert!(
            bad.contains("malformed") && bad.contains("64 hex digits"),
            "{bad}"
        );
        assert!(load(Some(Path::new("none"))).unwrap().keys.is_none());
        let missing = format!("{:#}", load(Some(&dir.join("nope"))).unwrap_err());
        assert!(missing.contains("cannot read"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
