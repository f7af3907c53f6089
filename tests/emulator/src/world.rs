//! The world file: what the emulated Azure holds when it starts.
//!
//! (Skeleton: filled in shortly.)

use serde::{Deserialize, Serialize};

/// Everything the emulator holds at start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct World {
    /// The Entra tenant every subscription belongs to.
    pub tenant_id: String,
    /// Who can get a token.
    #[serde(default)]
    pub principals: Vec<PrincipalSpec>,
}

/// A principal the token endpoint knows.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct PrincipalSpec {
    /// What kind of principal it is.
    pub kind: PrincipalKind,
    /// UPN for users, display name otherwise (JIT records it as `requestor`).
    pub name: String,
    /// Application id (service principals, managed identities).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Service principal secret; `None` = generated at start.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The principal's object id.
    pub object_id: String,
    /// Allowed ARM actions, with `*` wildcards.
    #[serde(default = "all_actions")]
    pub actions: Vec<String>,
}

impl std::fmt::Debug for PrincipalSpec {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PrincipalSpec")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("object_id", &self.object_id)
            .field("actions", &self.actions)
            .finish()
    }
}

fn all_actions() -> Vec<String> {
    vec!["*".to_owned()]
}

/// The kinds of principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// An application with a client secret.
    ServicePrincipal,
    /// A user (what the fake `az` signs in as).
    User,
    /// A managed identity (the managed-identity endpoint).
    ManagedIdentity,
}

/// Why a world could not be loaded or started.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The file could not be read.
    #[error("cannot read world file {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or JSON for a world.
    #[error("cannot parse world file {path}: {message}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The world refers to something it does not define, or holds an impossible value.
    #[error("invalid world: {0}")]
    Invalid(String),
    /// A VM port could not be bound or served.
    #[error("cannot listen for {what}: {source}")]
    Listen {
        /// The VM port.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl World {
    /// The built-in default world.
    pub fn default_world() -> World {
        World {
            tenant_id: "72f988bf-0000-4000-8000-00000000c0de".to_owned(),
            principals: Vec::new(),
        }
    }

    /// Loads a world from a `.toml` or `.json` file.
    pub fn load(path: &std::path::Path) -> Result<World, WorldError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorldError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parsed = if path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("json"))
        {
            serde_json::from_str(&text).map_err(|error| error.to_string())
        } else {
            toml::from_str(&text).map_err(|error| error.to_string())
        };
        parsed.map_err(|message| WorldError::Parse {
            path: path.to_owned(),
            message,
        })
    }
}
