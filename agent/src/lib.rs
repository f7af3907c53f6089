//! The library behind `jit`: everything that talks to Azure or keeps track of access.
//!
//! `jit` is split so that the command-line crate only parses arguments, resolves
//! settings and prints. Everything with behaviour worth testing lives here:
//!
//! - [`azure`]: credentials, the ARM client (retry, paging, errors) and one client per
//!   Azure resource, with models that keep their REST names.
//! - [`access`]: the JIT flow itself: find a VM, read its JIT status, enable JIT by
//!   merging into a policy, request access, wait until the port really answers.
//! - [`probe`]: protocol-level readiness checks (SSH banner, RDP X.224 confirm).
//! - [`daemon`]: the background agent (protocol, server, client, store, notifications).
//!
//! The emulator in `tests/emulator` never depends on this crate, nor this crate on it:
//! both are built from the Azure REST specs, so a misreading in one is caught by the other.

pub mod access;
pub mod azure;
pub mod daemon;
pub mod probe;
