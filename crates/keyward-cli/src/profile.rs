//! Saved logins: one TOML file per named profile under `$XDG_CONFIG_HOME/keyward/profiles/`
//! (else `~/.config/keyward/profiles/`), the file 0600 and the directories 0700, because the
//! secret in it is the only copy on disk.

use crate::failure::Failure;
use anyhow::Context;
use keyward_core::secret::Secret;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The profile used when neither `--profile` nor `KEYWARD_PROFILE` names one.
pub const DEFAULT_PROFILE: &str = "default";

/// A saved login.
#[derive(Debug)]
pub struct Profile {
    pub url: String,
    pub key_id: String,
    pub secret: Secret,
}

/// The file's shape; only built right before writing and right after reading.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    url: String,
    key_id: String,
    secret: String,
}

/// `$XDG_CONFIG_HOME/keyward`, else `$HOME/.config/keyward`.
pub fn config_dir() -> Result<PathBuf, Failure> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => {
                return Err(Failure::Usage("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep profiles".into()));
            }
        },
    };
    Ok(base.join("keyward"))
}

/// Refuses names that could leave the profiles directory or hide as dot files.
fn check_name(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Failure::Usage(format!("profile name `{name}`: use 1 to 64 letters, digits, `_`, `-` or `.`")))
    }
}

pub fn path(name: &str) -> Result<PathBuf, Failure> {
    check_name(name)?;
    Ok(config_dir()?.join("profiles").join(format!("{name}.toml")))
}

/// Loads a profile, or says how to create it.
pub fn load(name: &str) -> Result<Profile, Failure> {
    let path = path(name)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::Usage(format!(
                "no profile `{name}` ({}): run `keyward login --url URL --key-id ID{}` first",
                path.display(),
                if name == DEFAULT_PROFILE { String::new() } else { format!(" --profile {name}") }
            )));
        }
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display()).into()),
    };
    warn_if_loose(&path);
    // toml's message quotes the offending line, which may be the secret: name the file only.
    let stored: Stored = toml::from_str(&text)
        .map_err(|_| Failure::Other(anyhow::anyhow!("{} is not a valid profile; log in again", path.display())))?;
    Ok(Profile { url: stored.url, key_id: stored.key_id, secret: Secret::from_presented(stored.secret) })
}

#[cfg(unix)]
fn warn_if_loose(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "keyward: warning: {} is readable by others (mode {:o}); it holds a secret: chmod 600 it",
            path.display(),
            m.permissions().mode() & 0o777
        );
    }
}

#[cfg(not(unix))]
fn warn_if_loose(_: &Path) {}

/// Writes a profile atomically: a new 0600 file in a 0700 directory, renamed over the old one.
pub fn save(name: &str, profile: &Profile) -> Result<PathBuf, Failure> {
    let path = path(name)?;
    let dir = path.parent().ok_or_else(|| anyhow::anyhow!("profile path has no directory"))?;
    let keyward_dir = dir.parent().ok_or_else(|| anyhow::anyhow!("profile path has no directory"))?;
    for d in [keyward_dir, dir] {
        private_dir(d)?;
    }
    let stored =
        Stored { url: profile.url.clone(), key_id: profile.key_id.clone(), secret: profile.secret.expose().to_owned() };
    let text = toml::to_string(&stored).context("cannot encode the profile")?;
    let tmp = dir.join(format!(".{name}.toml.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::anyhow!("cannot write {}: {e}", path.display()).into());
    }
    Ok(path)
}

/// Creates `dir` 0700, or narrows an existing one to 0700: it is ours and holds secrets.
fn private_dir(dir: &Path) -> Result<(), Failure> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(())
}
