//! The agent's named pipe on Windows, private to the user who runs the agent.
//!
//! A pipe name is global to the machine: any user can try to create it first (and wait
//! for our clients to hand it their requests and take our tokens) or open ours. So:
//!
//! - the name carries the user's SID (`\\.\pipe\jit-agent-S-1-5-21-…-<hash>`), so each
//!   user has their own;
//! - the agent creates it as the *first instance* (`FILE_FLAG_FIRST_PIPE_INSTANCE`): if
//!   any process already holds the name, binding fails instead of joining its instances.
//!   Wine does not enforce that flag, so the agent first asks whether the name answers
//!   (and whose process does); on Windows the flag closes the gap between the two;
//! - its DACL is protected and grants access to the current user only (`D:P(A;;GA;;;SID)`),
//!   instead of the default that lets everyone read;
//! - the agent asks who each client is (`GetNamedPipeClientProcessId`, that process's
//!   token) and refuses other users, and the client asks who the server is
//!   (`GetNamedPipeServerProcessId`) *before sending anything*, so a pipe squatted by
//!   another user gets neither a request nor a token.
//!
//! This is the only `unsafe` code of the crate: Win32 calls through `windows-sys`, each
//! with its reason. A peer whose user cannot be read (its process already gone, or no
//! access to its token) is treated as a stranger.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::net::windows::named_pipe::{
    ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions,
};
use windows_sys::Win32::Foundation::{ERROR_PIPE_BUSY, HANDLE, HLOCAL, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetLengthSid, GetTokenInformation, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY,
    TOKEN_USER, TokenUser,
};
use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, GetNamedPipeServerProcessId};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// A user's security identifier: its binary form (compared) and its text (`S-1-5-…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserSid {
    bytes: Vec<u8>,
    text: String,
}

impl UserSid {
    /// The SID as text, `S-1-5-21-…`.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

/// The user this process runs as (read once).
pub(crate) fn current_user() -> io::Result<UserSid> {
    static CURRENT: OnceLock<UserSid> = OnceLock::new();
    if let Some(user) = CURRENT.get() {
        return Ok(user.clone());
    }
    // SAFETY: `GetCurrentProcess` returns a pseudo-handle that needs no closing and is
    // valid for the life of the process.
    let process = unsafe { GetCurrentProcess() };
    let user = token_user(process)?;
    Ok(CURRENT.get_or_init(|| user).clone())
}

/// The user process `pid` runs as.
fn process_user(pid: u32) -> io::Result<UserSid> {
    // SAFETY: plain call; a null handle means failure and is checked below.
    let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a handle we own (just opened, not null); `OwnedHandle` closes it.
    let process = unsafe { OwnedHandle::from_raw_handle(raw as RawHandle) };
    token_user(process.as_raw_handle() as HANDLE)
}

/// The user of `process`'s primary token.
fn token_user(process: HANDLE) -> io::Result<UserSid> {
    let mut raw_token: HANDLE = std::ptr::null_mut();
    // SAFETY: `process` is a valid process handle for the duration of the call and
    // `raw_token` is a valid place for the result.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut raw_token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so `raw_token` is a token handle we own.
    let token = unsafe { OwnedHandle::from_raw_handle(raw_token as RawHandle) };

    let mut needed = 0u32;
    // SAFETY: a size query (null buffer, length 0); it fails by design and sets `needed`.
    unsafe {
        GetTokenInformation(
            token.as_raw_handle() as HANDLE,
            TokenUser,
            std::ptr::null_mut(),
            0,
            &mut needed,
        )
    };
    if needed == 0 {
        return Err(io::Error::last_os_error());
    }
    // `u64` storage keeps TOKEN_USER (which holds a pointer) aligned.
    let mut buffer = vec![0u64; (needed as usize).div_ceil(8)];
    let length = u32::try_from(buffer.len() * 8).map_err(io::Error::other)?;
    // SAFETY: `buffer` is writable for `length` bytes and suitably aligned.
    if unsafe {
        GetTokenInformation(
            token.as_raw_handle() as HANDLE,
            TokenUser,
            buffer.as_mut_ptr().cast::<c_void>(),
            length,
            &mut needed,
        )
    } == 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points into the
    // same buffer, which outlives every use below.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    // SAFETY: `sid` is a valid SID (see above).
    let sid_length = unsafe { GetLengthSid(sid) } as usize;
    // SAFETY: a valid SID is `sid_length` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(sid.cast::<u8>(), sid_length) }.to_vec();

    let mut text_pointer: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` is valid; on success `text_pointer` is a NUL-terminated string that
    // we free with `LocalFree`.
    if unsafe { ConvertSidToStringSidW(sid, &mut text_pointer) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `text_pointer` is NUL-terminated (see above); we read up to the NUL, then
    // free it exactly once.
    let text = unsafe {
        let length = (0..)
            .take_while(|&index| *text_pointer.add(index) != 0)
            .count();
        let text = String::from_utf16_lossy(std::slice::from_raw_parts(text_pointer, length));
        LocalFree(text_pointer as HLOCAL);
        text
    };
    Ok(UserSid { bytes, text })
}

/// A self-relative security descriptor whose DACL grants the current user, and only
/// that user, full access. Kept as bytes so the listener stays `Send`.
#[derive(Debug)]
struct OwnerOnlyDescriptor {
    // `u32` storage keeps the descriptor's fields aligned.
    bytes: Vec<u32>,
}

impl OwnerOnlyDescriptor {
    fn new(user: &UserSid) -> io::Result<Self> {
        let sddl: Vec<u16> = format!("D:P(A;;GA;;;{})", user.text)
            .encode_utf16()
            .chain(Some(0))
            .collect();
        let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        let mut size = 0u32;
        // SAFETY: `sddl` is NUL-terminated; on success `descriptor` points to `size` bytes
        // allocated with `LocalAlloc`, which we copy and then free once.
        if unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                &mut size,
            )
        } == 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut bytes = vec![0u32; (size as usize).div_ceil(4)];
        // SAFETY: `descriptor` holds `size` readable bytes and `bytes` has room for them;
        // the two do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                descriptor.cast::<u8>(),
                bytes.as_mut_ptr().cast::<u8>(),
                size as usize,
            );
            LocalFree(descriptor as HLOCAL);
        }
        Ok(Self { bytes })
    }

    /// Creates one instance of pipe `name` with this descriptor.
    fn create(&self, options: &ServerOptions, name: &str) -> io::Result<NamedPipeServer> {
        let mut attributes = SECURITY_ATTRIBUTES {
            nLength: u32::try_from(std::mem::size_of::<SECURITY_ATTRIBUTES>())
                .map_err(io::Error::other)?,
            lpSecurityDescriptor: self.bytes.as_ptr().cast_mut().cast::<c_void>(),
            bInheritHandle: 0,
        };
        // SAFETY: `attributes` is a valid SECURITY_ATTRIBUTES whose descriptor (a
        // self-relative copy in `self.bytes`) lives for the whole call; the OS does not
        // keep either pointer.
        unsafe {
            options.create_with_security_attributes_raw(
                name,
                std::ptr::from_mut(&mut attributes).cast::<c_void>(),
            )
        }
    }
}

/// Listens on a pipe: one instance waits for a client at a time; once one connects, a
/// fresh instance is created for the next client before the connected one is handed over.
#[derive(Debug)]
pub(crate) struct PipeListener {
    name: String,
    descriptor: OwnerOnlyDescriptor,
    next: NamedPipeServer,
}

impl PipeListener {
    /// Creates the first instance of `name`, private to the current user. Fails with
    /// `PermissionDenied` when the name is taken by another agent of this user, and with
    /// another error naming the owner when a process of another user holds it.
    pub(crate) fn bind(name: String) -> io::Result<Self> {
        let user = current_user()?;
        if let Some(taken) = name_in_use(&name, &user) {
            return Err(taken);
        }
        let descriptor = OwnerOnlyDescriptor::new(&user)?;
        let next = match descriptor.create(
            ServerOptions::new()
                .first_pipe_instance(true)
                .reject_remote_clients(true),
            &name,
        ) {
            Ok(next) => next,
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                return Err(name_in_use(&name, &user).unwrap_or(error));
            }
            Err(error) => return Err(error),
        };
        Ok(Self {
            name,
            descriptor,
            next,
        })
    }

    /// Waits for the next client; returns its pipe and the user it runs as.
    pub(crate) async fn accept(&mut self) -> io::Result<(NamedPipeServer, io::Result<UserSid>)> {
        self.next.connect().await?;
        let fresh = self
            .descriptor
            .create(ServerOptions::new().reject_remote_clients(true), &self.name)?;
        let connected = std::mem::replace(&mut self.next, fresh);
        let user = client_user(&connected);
        Ok((connected, user))
    }
}

/// Whether a server already answers on `name`, as the error binding it should give:
/// `PermissionDenied` for one of this user's processes (another agent), another kind
/// naming the owner for a process of another user. `None` when the name is free.
fn name_in_use(name: &str, user: &UserSid) -> Option<io::Error> {
    let client = match ClientOptions::new().open(name) {
        Ok(client) => client,
        Err(error) if error.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
            return Some(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the pipe {name} is already served (every instance is busy)"),
            ));
        }
        // Our own agents let us in; a pipe that refuses us belongs to someone else.
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
            return Some(io::Error::other(format!(
                "the pipe {name} exists but refuses this user: a process of another user holds it"
            )));
        }
        Err(_) => return None,
    };
    Some(match server_user(&client) {
        Ok(owner) if owner != *user => io::Error::other(format!(
            "the pipe {name} is held by a process of another user ({}); it may be an attempt to intercept the agent",
            owner.text
        )),
        _ => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the pipe {name} is already served by another process of this user"),
        ),
    })
}

/// The user of the process at the client end of `server`.
fn client_user(server: &NamedPipeServer) -> io::Result<UserSid> {
    let mut pid = 0u32;
    // SAFETY: the handle is a connected pipe owned by `server` for the whole call.
    if unsafe { GetNamedPipeClientProcessId(server.as_raw_handle() as HANDLE, &mut pid) } == 0 {
        return Err(io::Error::last_os_error());
    }
    process_user(pid)
}

/// The user of the process at the server end of `client`.
fn server_user(client: &NamedPipeClient) -> io::Result<UserSid> {
    let mut pid = 0u32;
    // SAFETY: the handle is a connected pipe owned by `client` for the whole call.
    if unsafe { GetNamedPipeServerProcessId(client.as_raw_handle() as HANDLE, &mut pid) } == 0 {
        return Err(io::Error::last_os_error());
    }
    process_user(pid)
}

/// Opens pipe `name` (waiting while every instance is busy) and checks that the server
/// runs as the current user before anything is sent.
pub(crate) async fn connect(name: &str) -> io::Result<NamedPipeClient> {
    let client = loop {
        match ClientOptions::new().open(name) {
            Err(error) if error.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other?,
        }
    };
    let user = current_user()?;
    match server_user(&client) {
        Ok(owner) if owner == user => Ok(client),
        Ok(owner) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the pipe {name} is served by a process of another user ({}); nothing was sent to it",
                owner.text
            ),
        )),
        Err(error) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("cannot tell who serves the pipe {name} ({error}); nothing was sent to it"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique_name() -> String {
        format!(
            r"\\.\pipe\jit-agent-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        )
    }

    #[test]
    fn the_current_user_has_a_sid() {
        let user = current_user().expect("the process token names a user");
        assert!(user.text().starts_with("S-1-"), "{}", user.text());
        assert!(user.bytes.len() >= 8);
        assert_eq!(process_user(std::process::id()).ok(), Some(user));
    }

    #[tokio::test]
    async fn a_second_first_instance_is_refused() {
        let name = unique_name();
        let _listener = PipeListener::bind(name.clone()).expect("the first instance");
        let second = PipeListener::bind(name);
        let error = second.expect_err("the name is taken");
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
    }

    #[tokio::test]
    async fn both_ends_see_the_same_user() {
        let name = unique_name();
        let mut listener = PipeListener::bind(name.clone()).expect("bind");
        let accepting = tokio::spawn(async move {
            let (_pipe, user) = listener.accept().await.expect("accept");
            user.expect("the client's user")
        });
        let client = connect(&name).await.expect("the server runs as this user");
        let client_side_user = accepting.await.expect("the accept task");
        assert_eq!(client_side_user, current_user().expect("current user"));
        drop(client);
    }

    #[test]
    fn the_descriptor_grants_only_the_current_user() {
        let user = current_user().expect("current user");
        let descriptor = OwnerOnlyDescriptor::new(&user).expect("SDDL parses");
        // A self-relative descriptor: revision 1, then control flags with
        // SE_SELF_RELATIVE (0x8000), SE_DACL_PRESENT (0x0004), SE_DACL_PROTECTED (0x1000).
        let header = descriptor.bytes[0].to_le_bytes();
        assert_eq!(header[0], 1);
        let control = u16::from_le_bytes([header[2], header[3]]);
        assert_eq!(control & 0x9004, 0x9004, "{control:#x}");
        // The one ACE's SID is the user's.
        let raw: Vec<u8> = descriptor
            .bytes
            .iter()
            .flat_map(|word| word.to_le_bytes())
            .collect();
        assert!(
            raw.windows(user.bytes.len())
                .any(|window| window == user.bytes),
            "the DACL names the user"
        );
    }
}
