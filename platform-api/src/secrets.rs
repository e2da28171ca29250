//! Secrets: sealed with ChaCha20-Poly1305 under a key kept 0600 in the data directory, before
//! they reach the store. Every change makes a new version; a release records the version it
//! was deployed with, so a rollback brings back the matching values.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

pub const KEY_FILE: &str = "secrets.key";

pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    /// Loads the key, creating it (0600) on first start.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let key: [u8; 32] = match std::fs::read(&path) {
            Ok(bytes) => bytes.try_into().map_err(|_| {
                anyhow::anyhow!("{} is not a 32-byte key; restore it from a backup (without it no secret can be read)", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use rand::Rng;
                let key: [u8; 32] = rand::rng().random();
                write_private(&path, &key)?;
                key
            }
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    /// (nonce, sealed) for a value; the name is bound in as associated data, so a sealed value
    /// cannot be moved to another name.
    pub fn seal(&self, name: &str, value: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        use rand::Rng;
        let nonce: [u8; 12] = rand::rng().random();
        let payload = chacha20poly1305::aead::Payload {
            msg: value.as_bytes(),
            aad: name.as_bytes(),
        };
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| anyhow::anyhow!("cannot seal the secret {name}"))?;
        Ok((nonce.to_vec(), sealed))
    }

    pub fn open_value(&self, name: &str, nonce: &[u8], sealed: &[u8]) -> anyhow::Result<String> {
        if nonce.len() != 12 {
            anyhow::bail!("the secret {name} is damaged");
        }
        let payload = chacha20poly1305::aead::Payload {
            msg: sealed,
            aad: name.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| {
                anyhow::anyhow!("the secret {name} cannot be opened with this platform's key")
            })?;
        String::from_utf8(plain).map_err(|_| anyhow::anyhow!("the secret {name} is not text"))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(bytes)
}

/// A secret's name must be an environment variable name.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid secret name: letters, digits and `_`, not starting with a digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_pattern_is_the_check() {
        let re = regex::Regex::new(faas_spec::names::SECRET_NAME_PATTERN).unwrap();
        let long = "A".repeat(128);
        let longer = "A".repeat(129);
        for name in [
            "TOKEN",
            "_x",
            "a1",
            "1a",
            "",
            "A-B",
            "A B",
            "é",
            "DATABASE_URL",
            &long,
            &longer,
        ] {
            assert_eq!(re.is_match(name), check_name(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn values_round_trip_and_are_bound_to_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::open(dir.path()).unwrap();
        let (nonce, sealed) = sealer.seal("TOKEN", "s3cret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(
            sealer.open_value("TOKEN", &nonce, &sealed).unwrap(),
            "s3cret"
        );
        assert!(
            sealer.open_value("OTHER", &nonce, &sealed).is_err(),
            "moved to another name"
        );
        // The same key after a restart.
        let again = Sealer::open(dir.path()).unwrap();
        assert_eq!(
            again.open_value("TOKEN", &nonce, &sealed).unwrap(),
            "s3cret"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn names_are_environment_variable_names() {
        assert!(check_name("DATABASE_URL").is_ok());
        assert!(check_name("_x1").is_ok());
        assert!(check_name("1X").is_err());
        assert!(check_name("A-B").is_err());
    }
}
