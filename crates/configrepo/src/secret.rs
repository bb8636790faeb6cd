//! Credentials at rest: ChaCha20-Poly1305 with a 256-bit key, a fresh random nonce per write.
//! File format: `keptn-secret-v1\n` ‖ nonce (12 bytes) ‖ ciphertext with tag.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8] = b"keptn-secret-v1\n";

/// The key that encrypts every project's upstream credentials.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// Reads the key from `path` (32 raw bytes), creating it with a random key and mode 0600 if
    /// it does not exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    std::io::Error::other(format!(
                        "{} must hold exactly 32 bytes; restore it from a backup (credentials encrypted with another key can't be read)",
                        path.display()
                    ))
                })?;
                Ok(SecretKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_private(path, &key)?;
                Ok(SecretKey(key))
            }
            Err(e) => Err(e),
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let cipher = ChaCha20Poly1305::new(&Key::from(self.0));
        let sealed = cipher.encrypt(&Nonce::from(nonce), plaintext).expect("in-memory encryption cannot fail");
        [MAGIC, &nonce, &sealed].concat()
    }

    /// `None` if the data was not sealed with this key or was altered.
    pub fn open(&self, data: &[u8]) -> Option<Vec<u8>> {
        let rest = data.strip_prefix(MAGIC)?;
        if rest.len() < 12 {
            return None;
        }
        let (nonce, sealed) = rest.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        ChaCha20Poly1305::new(&Key::from(self.0)).decrypt(&Nonce::from(nonce), sealed).ok()
    }
}

/// Writes `data` to `path` with mode 0600, atomically (temporary file + rename).
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load_or_create(&dir.path().join("k")).unwrap();
        let again = SecretKey::load_or_create(&dir.path().join("k")).unwrap();
        let sealed = key.seal(b"token-123");
        assert!(!sealed.windows(9).any(|w| w == b"token-123"));
        assert_eq!(again.open(&sealed).unwrap(), b"token-123");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(key.open(&bad).is_none());
        assert!(SecretKey::from_bytes([7; 32]).open(&sealed).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("k")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
