//! Talking to Azure: which cloud, which sign-in, one HTTP client, and typed ARM calls.
//!
//! There is no maintained Rust crate for Azure Resource Manager management APIs, so the
//! handful of calls `jit` makes are written here, on top of azure_core's HTTP
//! [`Pipeline`](azure_core::http::Pipeline) and azure_identity's credentials:
//!
//! - [`cloud`]: public, sovereign or custom endpoints (the emulator is a custom cloud);
//! - [`transport`]: the one pooled `reqwest` client (rustls, system proxy, extra CAs),
//!   shared by ARM calls and token requests;
//! - [`trust`]: which server certificates are trusted (platform verifier plus the
//!   roots of `JIT_CA_FILE`), the same way on every OS;
//! - [`credential`]: sign-in methods, the automatic chain, the OS keychain and the
//!   in-memory token cache;
//! - [`arm`]: the ARM client (retries tuned for an interactive tool, 401 refresh, paging,
//!   long-running operations, typed errors with hints);
//! - [`models`]: request and response bodies with their REST names;
//! - [`clients`]: one client per Azure resource, in the Azure SDK style;
//! - [`resource_id`]: parsing and comparing ARM resource ids.

pub mod arm;
pub mod clients;
pub mod cloud;
pub mod credential;
pub mod models;
pub mod resource_id;
pub mod transport;
pub mod trust;
