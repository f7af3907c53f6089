//! Service-principal secrets in the OS keychain instead of the environment.
//!
//! A client secret in a shell profile or a config file leaks into backups, screen shares
//! and `env` dumps; the OS keychain (macOS Keychain, Windows Credential Manager, the
//! Secret Service on Linux) is where such a secret belongs. Entries live under service
//! [`KEYCHAIN_SERVICE`] (`jit`), user = the client (application) id.
//!
//! Everything goes through `keyring_core::Entry`, never keyring's v1 wrapper: that
//! wrapper installs the platform store lazily and would silently replace a mock store in
//! tests. Production code calls [`install_platform_store`] once at start-up; tests hand a
//! `keyring_core::mock::Store` to [`Keychain::in_store`], which touches no global state.
//! keyring's API is blocking: call it from `spawn_blocking` in async code.

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::Secret;
use keyring_core::{CredentialStore, Entry};

/// The keychain service name every `jit` entry uses.
pub const KEYCHAIN_SERVICE: &str = "jit";

/// Where secrets are read and written.
#[derive(Clone)]
pub struct Keychain {
    store: Option<Arc<CredentialStore>>,
}

impl fmt::Debug for Keychain {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.store {
            None => formatter.write_str("Keychain(default store)"),
            Some(store) => formatter
                .debug_tuple("Keychain")
                .field(&store.vendor())
                .finish(),
        }
    }
}

/// The keychain failed or is not there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeychainError {
    /// No keychain is usable in this session (no default store, no Secret Service…).
    #[error("the OS keychain is not available: {detail}")]
    Unavailable {
        /// What the platform said.
        detail: String,
    },
    /// The keychain is there but refused access (locked, denied).
    #[error("the OS keychain refused access: {detail}")]
    AccessDenied {
        /// What the platform said.
        detail: String,
    },
    /// Any other keychain failure.
    #[error("the OS keychain failed: {detail}")]
    Failed {
        /// What the platform said.
        detail: String,
    },
}

impl KeychainError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            KeychainError::Unavailable { .. } => "no keychain in this session (headless Linux needs a Secret Service such as gnome-keyring); set AZURE_CLIENT_SECRET instead".to_owned(),
            KeychainError::AccessDenied { .. } => "unlock the keychain (or allow `jit` to use it) and try again, or set AZURE_CLIENT_SECRET".to_owned(),
            KeychainError::Failed { .. } => "try again; if it persists, set AZURE_CLIENT_SECRET instead".to_owned(),
        }
    }

    fn from_keyring(error: &keyring_core::Error) -> Self {
        let detail = error.to_string();
        match error {
            keyring_core::Error::NoDefaultStore | keyring_core::Error::PlatformFailure(_) => {
                KeychainError::Unavailable { detail }
            }
            keyring_core::Error::NoStorageAccess(_) => KeychainError::AccessDenied { detail },
            _ => KeychainError::Failed { detail },
        }
    }
}

impl Keychain {
    /// The process-wide default store (set by [`install_platform_store`]).
    pub fn default_store() -> Self {
        Self { store: None }
    }

    /// A specific store (tests use `keyring_core::mock::Store`).
    pub fn in_store(store: Arc<CredentialStore>) -> Self {
        Self { store: Some(store) }
    }

    /// The secret stored for `client_id`, or `None` when there is no entry. Blocking.
    pub fn client_secret(&self, client_id: &str) -> Result<Option<Secret>, KeychainError> {
        match self.entry(client_id)?.get_password() {
            Ok(password) => Ok(Some(Secret::new(password))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(error) => Err(KeychainError::from_keyring(&error)),
        }
    }

    /// Stores (or replaces) the secret for `client_id`. Blocking.
    pub fn set_client_secret(&self, client_id: &str, secret: &Secret) -> Result<(), KeychainError> {
        self.entry(client_id)?
            .set_password(secret.secret())
            .map_err(|error| KeychainError::from_keyring(&error))
    }

    /// Removes the secret for `client_id`; `false` when there was none. Blocking.
    pub fn delete_client_secret(&self, client_id: &str) -> Result<bool, KeychainError> {
        match self.entry(client_id)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(error) => Err(KeychainError::from_keyring(&error)),
        }
    }

    fn entry(&self, client_id: &str) -> Result<Entry, KeychainError> {
        let entry = match &self.store {
            None => Entry::new(KEYCHAIN_SERVICE, client_id),
            Some(store) => Entry::new_in_store(store, KEYCHAIN_SERVICE, client_id),
        };
        entry.map_err(|error| KeychainError::from_keyring(&error))
    }
}

/// Installs the platform's secure store as keyring_core's default store: macOS
/// Keychain, Windows Credential Manager, or the Secret Service (zbus) elsewhere on Unix.
/// Call once at start-up, before the first [`Keychain::default_store`] use; calling it
/// again returns the first outcome. Never call it in tests.
#[cfg(any(target_os = "macos", target_os = "windows", target_os = "linux"))]
pub fn install_platform_store() -> Result<(), KeychainError> {
    keyring::Entry::store_status()
        .as_ref()
        .map(|_| ())
        .map_err(KeychainError::from_keyring)
}

/// No platform store exists on this target; the keychain is reported unavailable.
#[cfg(not(any(target_os = "macos", target_os = "windows", target_os = "linux")))]
pub fn install_platform_store() -> Result<(), KeychainError> {
    Err(KeychainError::Unavailable {
        detail: "this platform has no supported keychain".to_owned(),
    })
}
