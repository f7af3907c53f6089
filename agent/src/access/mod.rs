//! The JIT flow: find a VM, read its JIT status, enable JIT by merging into a policy,
//! request access for the caller's address, and wait until the port really answers.
//!
//! Decisions (which port, which source, how long) are pure functions in [`plan`];
//! everything that talks to Azure goes through the clients in [`crate::azure`].

pub mod details;
pub mod doctor;
pub mod enable;
pub mod extend;
pub mod flow;
pub mod inventory;
pub mod locate;
pub mod memory;
pub mod my_ip;
pub mod ownership;
pub mod plan;
pub mod policy_file;
pub mod request;
pub mod status;
pub mod window;
