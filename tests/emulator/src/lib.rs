//! A local Azure for JIT VM access.

pub mod arm_http;
pub mod clock;
pub mod providers;
pub mod state;
pub mod vm_ports;
pub mod world;
