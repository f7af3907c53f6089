//! SSH key material for emulated VMs and their clients.
//!
//! The emulator makes up every key it uses at start: a host key per Linux VM and one
//! client key (the contract's `ssh_identity`) that every VM's admin user accepts. Tests and
//! `jit demo` hand that client key to the real OpenSSH client, so it is written in
//! OpenSSH's own private-key format with the permissions OpenSSH insists on (it refuses a
//! key file that others can read), and the host keys are offered as `known_hosts` lines so
//! clients can keep strict host-key checking on.
//!
//! Only Ed25519 keys are generated: they are fast to make, and every OpenSSH still in
//! support accepts them.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};

/// Why key material could not be encoded or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key could not be encoded in OpenSSH format.
    #[error("cannot encode the SSH key in OpenSSH format: {0}")]
    Encoding(#[from] russh::keys::ssh_key::Error),
    /// The key file could not be written.
    #[error("cannot write the SSH key file {path}: {source}")]
    Write {
        /// The file that was being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Generates a new random Ed25519 key (no comment; set one with
/// [`PrivateKey::set_comment`]).
pub fn generate_ed25519() -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::random(&mut rand::rng()))
}

/// Writes `key` to `path` as an unencrypted OpenSSH private key.
///
/// The file is written next to its final place and renamed over it, so a reader never
/// sees half a key; on Unix it is created with mode `0600`, which OpenSSH requires of an
/// identity file.
pub fn write_private_key(key: &PrivateKey, path: &Path) -> Result<(), KeyError> {
    let encoded = key.to_openssh(LineEnding::LF)?;
    let write_error = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temporary = temporary_sibling(path);
    let written = create_owner_only(&temporary).and_then(|mut file| {
        file.write_all(encoded.as_bytes())?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = renamed {
        // Best effort: the temporary file holds a secret, so do not leave it behind.
        let _ = std::fs::remove_file(&temporary);
        return Err(write_error(error));
    }
    Ok(())
}

/// The public half of a key as one `authorized_keys` line: `ssh-ed25519 AAAA… comment`
/// (without the comment when the key has none).
pub fn public_key_line(key: &PublicKey) -> Result<String, KeyError> {
    Ok(key.to_openssh()?)
}

/// A `known_hosts` line saying that the SSH server at `host_port` has `host_key`:
/// `[127.0.0.1]:2201 ssh-ed25519 AAAA…`, or `127.0.0.1 ssh-ed25519 AAAA…` on port 22, the
/// way OpenSSH writes it.
pub fn known_hosts_line(host_port: SocketAddr, host_key: &PublicKey) -> Result<String, KeyError> {
    let mut key = host_key.clone();
    key.set_comment("");
    let key = key.to_openssh()?;
    let host = match host_port {
        SocketAddr::V4(address) if address.port() == 22 => address.ip().to_string(),
        SocketAddr::V6(address) if address.port() == 22 => address.ip().to_string(),
        SocketAddr::V4(address) => format!("[{}]:{}", address.ip(), address.port()),
        SocketAddr::V6(address) => format!("[{}]:{}", address.ip(), address.port()),
    };
    Ok(format!("{host} {key}"))
}

/// A name for a temporary file in the same directory as `path`, so the final rename
/// stays on one file system.
fn temporary_sibling(path: &Path) -> PathBuf {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique: u64 = rand::random();
    path.with_file_name(format!(".{file_name}.{unique:016x}.tmp"))
}

/// Creates a new file that only its owner can read and write.
fn create_owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_key_reads_back_as_the_same_key_and_only_its_owner_can_read_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("id_ed25519");
        let mut key = generate_ed25519();
        key.set_comment("azureuser@jit-emulator");

        write_private_key(&key, &path).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        let read_back = PrivateKey::from_openssh(&text).unwrap();
        assert_eq!(
            read_back.public_key().key_data(),
            key.public_key().key_data()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("id_ed25519")]);
    }

    #[test]
    fn writing_over_an_existing_key_replaces_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("id_ed25519");
        let first = generate_ed25519();
        let second = generate_ed25519();
        write_private_key(&first, &path).unwrap();
        write_private_key(&second, &path).unwrap();
        let read_back = PrivateKey::read_openssh_file(&path).unwrap();
        assert_eq!(
            read_back.public_key().key_data(),
            second.public_key().key_data()
        );
    }

    #[test]
    fn writing_into_a_missing_directory_names_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("missing").join("id_ed25519");
        let error = write_private_key(&generate_ed25519(), &path).unwrap_err();
        assert!(error.to_string().contains("id_ed25519"), "{error}");
    }

    #[test]
    fn public_key_line_is_the_authorized_keys_format_and_parses_back() {
        let mut key = generate_ed25519();
        key.set_comment("azureuser@jit-emulator");
        let line = public_key_line(key.public_key()).unwrap();
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert!(line.ends_with(" azureuser@jit-emulator"), "{line}");
        let parsed = PublicKey::from_openssh(&line).unwrap();
        assert_eq!(parsed.key_data(), key.public_key().key_data());
    }

    #[test]
    fn known_hosts_line_brackets_non_standard_ports_and_drops_the_comment() {
        let mut key = generate_ed25519();
        key.set_comment("host key of web-01");
        let public_line = public_key_line(key.public_key()).unwrap();
        let key_field = public_line.split(' ').nth(1).unwrap();

        let line = known_hosts_line("127.0.0.1:2201".parse().unwrap(), key.public_key()).unwrap();
        assert_eq!(line, format!("[127.0.0.1]:2201 ssh-ed25519 {key_field}"));

        let line = known_hosts_line("127.0.0.1:22".parse().unwrap(), key.public_key()).unwrap();
        assert_eq!(line, format!("127.0.0.1 ssh-ed25519 {key_field}"));

        let line = known_hosts_line("[::1]:2222".parse().unwrap(), key.public_key()).unwrap();
        assert_eq!(line, format!("[::1]:2222 ssh-ed25519 {key_field}"));
    }
}
