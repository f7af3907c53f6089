//! The world file: what the emulated Azure holds when it starts.
//!
//! A world is a tenant with subscriptions, resource groups and the resources a JIT
//! client meets on its way to a VM (VMs, NICs, public IPs, virtual networks and subnets,
//! NSGs, Azure Firewalls, JIT policies), plus the principals that may get a token. It is
//! written by hand (TOML or JSON; `docs/world-file.md` describes every field), so it says
//! only what matters and the emulator derives the rest: ARM ids, `vmId` GUIDs, default
//! NSG rules, FQDNs, host keys and the loopback port each VM port is bound to.
//!
//! Resources refer to each other by name within their resource group (`"api-01-nsg"`,
//! a subnet as `"vnet-web/default"`), or by full ARM id across resource groups.
//! [`World::validate`] resolves every reference before anything starts, so a typo is a
//! [`WorldError`] naming the item instead of a half-working emulator.
//!
//! The built-in default world (`default-world.toml`, next to this file) is the one every
//! test and `jit demo` stand on; its names are fixed.

//!
//! Who does what: [`spec`] holds the types a world file reads into, [`values`] the checks
//! of single values shared with the ARM routes (GUIDs, durations, source prefixes),
//! `references` resolves names to ARM ids, and `validate` checks a whole world.

mod references;
pub mod spec;
mod validate;
pub mod values;

use std::path::{Path, PathBuf};

pub(crate) use references::{
    FIREWALLS, NICS, NSGS, PUBLIC_IPS, VIRTUAL_NETWORKS, VMS, reference_key, subnet_reference_key,
};
pub use spec::*;
pub use values::{
    MAX_MAX_DURATION, MIN_MAX_DURATION, is_guid, is_source_prefix, parse_iso_duration,
};

/// The built-in default world, as a world file.
pub const DEFAULT_WORLD_TOML: &str = include_str!("../default-world.toml");

/// Why a world could not be loaded or started.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The file could not be read.
    #[error("cannot read world file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or JSON for a world.
    #[error("cannot parse world file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
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
    /// The built-in default world (see `docs/world-file.md` for its contents).
    #[allow(
        clippy::expect_used,
        reason = "a compile-time constant checked by the `default_world_is_valid` test"
    )]
    pub fn default_world() -> World {
        Self::from_toml(DEFAULT_WORLD_TOML).expect("the built-in default world is valid")
    }

    /// Loads and validates a world from a `.json` file, or TOML for any other extension.
    pub fn load(path: &Path) -> Result<World, WorldError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorldError::Read {
            path: path.to_owned(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
        let parsed = if is_json {
            serde_json::from_str(&text).map_err(|error| error.to_string())
        } else {
            toml::from_str(&text).map_err(|error| error.to_string())
        };
        let world: World = parsed.map_err(|message| WorldError::Parse {
            path: path.to_owned(),
            message,
        })?;
        world.validate()?;
        Ok(world)
    }

    /// Parses and validates a world from TOML text.
    pub fn from_toml(text: &str) -> Result<World, WorldError> {
        let world: World =
            toml::from_str(text).map_err(|error| WorldError::Invalid(error.to_string()))?;
        world.validate()?;
        Ok(world)
    }

    /// Checks every id, reference and value; the error names the offending item.
    pub fn validate(&self) -> Result<(), WorldError> {
        validate::Validator::default().world(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_world_is_valid() {
        let world = World::from_toml(DEFAULT_WORLD_TOML);
        assert!(world.is_ok(), "{world:?}");
    }

    #[test]
    fn json_and_toml_worlds_load_alike() -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let world = World::default_world();
        let json_path = directory.path().join("world.json");
        std::fs::write(&json_path, serde_json::to_string_pretty(&world)?)?;
        let toml_path = directory.path().join("world.toml");
        std::fs::write(&toml_path, toml::to_string(&world)?)?;
        assert_eq!(World::load(&json_path)?, world);
        assert_eq!(World::load(&toml_path)?, world);
        Ok(())
    }

    #[test]
    fn an_unknown_field_is_a_parse_error_naming_it() -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("world.toml");
        std::fs::write(&path, "tenant_id = \"x\"\nsubscribtions = []\n")?;
        let message = World::load(&path)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(message.contains("subscribtions"), "{message}");
        Ok(())
    }
}
