//! Launching the SSH and RDP clients of the platform: argv builders that are pure
//! functions (tested for every platform), and the code that runs them.

pub mod rdp;
pub mod ssh;
