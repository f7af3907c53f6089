//! A local Azure for JIT VM access.

pub mod vm_ports;
