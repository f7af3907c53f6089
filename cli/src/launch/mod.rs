//! Launching the SSH and RDP clients of the platform.
