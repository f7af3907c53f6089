//! Starting the RDP client of the platform.
//!
//! Windows has `mstsc`; macOS has Windows App (formerly Microsoft Remote Desktop), which
//! opens `.rdp` files; Linux has FreeRDP (`xfreerdp3`, `xfreerdp`) or Remmina. The argv
//! for each is a pure function of the platform and what is installed, so every variant
//! is unit-tested here even though CI runs on Linux only. When no client is found, the
//! `.rdp` file is written anyway and its path printed, which any RDP client can open.
//!
//! A `.rdp` file is one `name:type:value` setting per line, with no escaping, so a line
//! break in a user name would add settings of its own (`alternate shell`, drive
//! redirection); values with control characters are refused
//! ([`checked_rdp_file_content`]). The files live in a private directory under the
//! user's state directory ([`rdp_directory`]), never in the shared temporary directory,
//! and are written through a fresh temporary file that is renamed into place, so a
//! symbolic link planted at the file's path is replaced, never followed.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{LaunchError, ValueKind, check_value};

/// The platforms with distinct RDP clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Windows,
    MacOs,
    Linux,
}

impl Platform {
    /// The platform this binary was built for (other Unixes count as Linux: FreeRDP and
    /// Remmina exist there too).
    pub fn current() -> Self {
        if cfg!(windows) {
            Self::Windows
        } else if cfg!(target_os = "macos") {
            Self::MacOs
        } else {
            Self::Linux
        }
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdpTarget {
    /// Address to connect to.
    pub address: String,
    /// TCP port (the firewall's mapped port when there is one).
    pub port: u16,
    /// User name to pre-fill, if known.
    pub user: Option<String>,
}

impl RdpTarget {
    /// `address:port`, bracketing IPv6 literals.
    pub fn host_and_port(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// Refuses a user name or address that could add settings to a `.rdp` file or be
    /// read as an option by an RDP client (see [`check_value`]).
    pub fn check(&self) -> Result<(), LaunchError> {
        check_value(ValueKind::Address, &self.address)?;
        if let Some(user) = &self.user {
            check_value(ValueKind::User, user)?;
        }
        Ok(())
    }
}

/// The content of a `.rdp` file for the target, after checking it. CRLF line endings, as
/// mstsc writes them.
pub fn checked_rdp_file_content(target: &RdpTarget) -> Result<String, LaunchError> {
    target.check()?;
    Ok(rdp_file_content(target))
}

/// The content of [`checked_rdp_file_content`] without checking the target. Control
/// characters are still dropped from every value, so none can start a line of its own;
/// prefer the checked form, which refuses such values with a clear error.
pub fn rdp_file_content(target: &RdpTarget) -> String {
    let target = RdpTarget {
        address: without_controls(&target.address),
        port: target.port,
        user: target.user.as_deref().map(without_controls),
    };
    let mut lines = vec![
        format!("full address:s:{}", target.host_and_port()),
        "prompt for credentials:i:1".to_owned(),
        "administrative session:i:0".to_owned(),
        "screen mode id:i:2".to_owned(),
        "authentication level:i:2".to_owned(),
    ];
    if let Some(user) = &target.user {
        lines.push(format!("username:s:{user}"));
    }
    let mut content = lines.join("\r\n");
    content.push_str("\r\n");
    content
}

fn without_controls(value: &str) -> String {
    value
        .chars()
        .filter(|character| !character.is_control())
        .collect()
}

/// An RDP client that can be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RdpLaunch {
    /// Run this program with these arguments.
    Run {
        program: PathBuf,
        arguments: Vec<OsString>,
    },
    /// No client found: show the `.rdp` file for the user to open.
    ShowFile,
}

/// Which RDP client programs exist, by name.
pub trait ProgramFinder {
    /// The full path of `name` if it can be run.
    fn find(&self, name: &str) -> Option<PathBuf>;
}

/// Looks programs up on `PATH`.
#[derive(Debug, Default)]
pub struct PathFinder;

impl ProgramFinder for PathFinder {
    fn find(&self, name: &str) -> Option<PathBuf> {
        find_on_path(name)
    }
}

/// Finds an executable on `PATH` (with `PATHEXT` extensions on Windows).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let extensions: Vec<String> = if cfg!(windows) {
        std::env::var("PATHEXT")
            .unwrap_or_else(|_| ".EXE;.CMD;.BAT".to_owned())
            .split(';')
            .map(str::to_owned)
            .chain(std::iter::once(String::new()))
            .collect()
    } else {
        vec![String::new()]
    };
    std::env::split_paths(&path).find_map(|directory| {
        extensions.iter().find_map(|extension| {
            let candidate = directory.join(format!("{name}{extension}"));
            is_executable(&candidate).then_some(candidate)
        })
    })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Chooses the client and builds its argv. `configured` is the `[rdp] program` from the
/// config file, which wins when set; `rdp_file` is where the `.rdp` file was written.
pub fn rdp_launch(
    platform: Platform,
    finder: &dyn ProgramFinder,
    configured: Option<(&Path, &[String])>,
    target: &RdpTarget,
    rdp_file: &Path,
) -> RdpLaunch {
    if let Some((program, extra)) = configured {
        let mut arguments: Vec<OsString> = extra.iter().map(OsString::from).collect();
        arguments.push(rdp_file.as_os_str().to_owned());
        return RdpLaunch::Run {
            program: program.to_owned(),
            arguments,
        };
    }
    match platform {
        Platform::Windows => RdpLaunch::Run {
            program: finder
                .find("mstsc")
                .unwrap_or_else(|| PathBuf::from("mstsc")),
            arguments: vec![format!("/v:{}", target.host_and_port()).into()],
        },
        Platform::MacOs => RdpLaunch::Run {
            program: PathBuf::from("open"),
            arguments: vec![rdp_file.as_os_str().to_owned()],
        },
        Platform::Linux => {
            for freerdp in ["xfreerdp3", "xfreerdp"] {
                if let Some(program) = finder.find(freerdp) {
                    let mut arguments: Vec<OsString> =
                        vec![format!("/v:{}", target.host_and_port()).into()];
                    if let Some(user) = &target.user {
                        arguments.push(format!("/u:{user}").into());
                    }
                    arguments.push("/dynamic-resolution".into());
                    return RdpLaunch::Run { program, arguments };
                }
            }
            if let Some(program) = finder.find("remmina") {
                // In `rdp://user@host:port` a user holding `@`, `:` or `/` would move the
                // host; Remmina then asks for the user instead.
                let user = target
                    .user
                    .as_ref()
                    .filter(|user| {
                        !user
                            .chars()
                            .any(|character| "@:/?#%".contains(character) || character.is_control())
                    })
                    .map(|user| format!("{user}@"))
                    .unwrap_or_default();
                return RdpLaunch::Run {
                    program,
                    arguments: vec![
                        "-c".into(),
                        format!("rdp://{user}{}", target.host_and_port()).into(),
                    ],
                };
            }
            RdpLaunch::ShowFile
        }
    }
}

/// The directory for `.rdp` files: `rdp` in the agent's state directory when one is set
/// (`JIT_STATE_DIR`), else in the platform's per-user state (or local data) directory.
/// Never the shared temporary directory: without a home directory this fails.
pub fn rdp_directory(state_dir: Option<&Path>) -> Result<PathBuf, LaunchError> {
    let paths =
        jit_agent::daemon::paths::AgentPaths::resolve(None, state_dir.map(Path::to_path_buf))
            .map_err(|_| LaunchError::NoStateDirectory)?;
    Ok(paths.state_dir().join("rdp"))
}

/// Writes the `.rdp` file and returns its path.
///
/// The directory is made private first (see [`prepare_private_directory`]). The content
/// goes to a new temporary file (created exclusively, with a random name, mode 0600)
/// that is then renamed over `<vm>.rdp`: a symbolic link planted at either name is never
/// followed, and a reader sees the old file or the new one, never half of it.
pub fn write_rdp_file(directory: &Path, vm_name: &str, content: &str) -> std::io::Result<PathBuf> {
    prepare_private_directory(directory)?;
    let safe_name: String = vm_name
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '-' || character == '_' {
                character
            } else {
                '_'
            }
        })
        .collect();
    let path = directory.join(format!("{safe_name}.rdp"));
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{safe_name}."))
        .suffix(".rdp.tmp")
        .tempfile_in(directory)?;
    temporary.write_all(content.as_bytes())?;
    temporary.as_file().sync_all()?;
    temporary.persist(&path).map_err(|error| error.error)?;
    Ok(path)
}

/// Creates `directory` (and missing parents) readable by the user only, or checks an
/// existing one: it must be a real directory (not a symbolic link) owned by the user;
/// group or other permissions are removed.
#[cfg(unix)]
pub fn prepare_private_directory(directory: &Path) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)?;
    let metadata = std::fs::symlink_metadata(directory)?;
    if !metadata.is_dir() {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory of its own (a symbolic link?); remove it",
                directory.display()
            ),
        ));
    }
    let own_uid = rustix::process::geteuid().as_raw();
    if metadata.uid() != own_uid {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to this user (uid {own_uid}); remove it or set JIT_STATE_DIR",
                directory.display(),
                metadata.uid()
            ),
        ));
    }
    if metadata.mode() & 0o077 != 0 {
        std::fs::set_permissions(directory, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `directory` (and missing parents); on Windows the user profile's ACLs already
/// make the per-user directories private.
#[cfg(not(unix))]
pub fn prepare_private_directory(directory: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(directory)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Installed(HashMap<&'static str, &'static str>);

    impl ProgramFinder for Installed {
        fn find(&self, name: &str) -> Option<PathBuf> {
            self.0.get(name).map(PathBuf::from)
        }
    }

    fn target() -> RdpTarget {
        RdpTarget {
            address: "20.1.2.3".to_owned(),
            port: 3389,
            user: Some("azureuser".to_owned()),
        }
    }

    fn argv(launch: &RdpLaunch) -> (String, Vec<String>) {
        match launch {
            RdpLaunch::Run { program, arguments } => (
                program.display().to_string(),
                arguments
                    .iter()
                    .map(|argument| argument.to_string_lossy().into_owned())
                    .collect(),
            ),
            RdpLaunch::ShowFile => ("<show file>".to_owned(), Vec::new()),
        }
    }

    #[test]
    fn windows_runs_mstsc_with_the_address_and_port() {
        let launch = rdp_launch(
            Platform::Windows,
            &Installed(HashMap::from([("mstsc", r"C:\Windows\System32\mstsc.exe")])),
            None,
            &target(),
            Path::new("vm.rdp"),
        );
        assert_eq!(
            argv(&launch),
            (
                r"C:\Windows\System32\mstsc.exe".to_owned(),
                vec!["/v:20.1.2.3:3389".to_owned()]
            )
        );
    }

    #[test]
    fn macos_opens_the_rdp_file() {
        let launch = rdp_launch(
            Platform::MacOs,
            &Installed(HashMap::new()),
            None,
            &target(),
            Path::new("/tmp/jit/sql-01.rdp"),
        );
        assert_eq!(
            argv(&launch),
            ("open".to_owned(), vec!["/tmp/jit/sql-01.rdp".to_owned()])
        );
    }

    #[test]
    fn linux_prefers_freerdp3_then_freerdp_then_remmina_then_the_file() {
        let all = Installed(HashMap::from([
            ("xfreerdp3", "/usr/bin/xfreerdp3"),
            ("xfreerdp", "/usr/bin/xfreerdp"),
            ("remmina", "/usr/bin/remmina"),
        ]));
        let (program, arguments) = argv(&rdp_launch(
            Platform::Linux,
            &all,
            None,
            &target(),
            Path::new("f.rdp"),
        ));
        assert_eq!(program, "/usr/bin/xfreerdp3");
        assert_eq!(
            arguments,
            ["/v:20.1.2.3:3389", "/u:azureuser", "/dynamic-resolution"]
        );

        let freerdp2 = Installed(HashMap::from([("xfreerdp", "/usr/bin/xfreerdp")]));
        assert_eq!(
            argv(&rdp_launch(
                Platform::Linux,
                &freerdp2,
                None,
                &target(),
                Path::new("f.rdp")
            ))
            .0,
            "/usr/bin/xfreerdp"
        );

        let remmina = Installed(HashMap::from([("remmina", "/usr/bin/remmina")]));
        assert_eq!(
            argv(&rdp_launch(
                Platform::Linux,
                &remmina,
                None,
                &target(),
                Path::new("f.rdp")
            )),
            (
                "/usr/bin/remmina".to_owned(),
                vec!["-c".to_owned(), "rdp://azureuser@20.1.2.3:3389".to_owned()]
            )
        );

        assert_eq!(
            rdp_launch(
                Platform::Linux,
                &Installed(HashMap::new()),
                None,
                &target(),
                Path::new("f.rdp")
            ),
            RdpLaunch::ShowFile
        );
    }

    #[test]
    fn a_configured_client_gets_the_rdp_file() {
        let extra = ["--fullscreen".to_owned()];
        let launch = rdp_launch(
            Platform::Linux,
            &Installed(HashMap::from([("xfreerdp", "/usr/bin/xfreerdp")])),
            Some((Path::new("/opt/rdp/client"), &extra)),
            &target(),
            Path::new("/tmp/sql-01.rdp"),
        );
        assert_eq!(
            argv(&launch),
            (
                "/opt/rdp/client".to_owned(),
                vec!["--fullscreen".to_owned(), "/tmp/sql-01.rdp".to_owned()]
            )
        );
    }

    #[test]
    fn the_rdp_file_names_address_port_and_user_with_crlf_lines() {
        let content = rdp_file_content(&target());
        assert!(
            content.starts_with("full address:s:20.1.2.3:3389\r\n"),
            "{content}"
        );
        assert!(content.contains("username:s:azureuser\r\n"), "{content}");
        assert!(content.contains("prompt for credentials:i:1\r\n"));
        assert!(!content.contains("\n\n"));
        let ipv6 = RdpTarget {
            address: "2001:db8::5".to_owned(),
            port: 50001,
            user: None,
        };
        assert!(rdp_file_content(&ipv6).starts_with("full address:s:[2001:db8::5]:50001\r\n"));
        assert!(!rdp_file_content(&ipv6).contains("username"));
    }

    #[test]
    fn the_rdp_file_is_written_atomically_with_a_safe_name() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = write_rdp_file(directory.path(), "sql/01 ../x", "full address:s:a:1\r\n")
            .expect("written");
        assert_eq!(path, directory.path().join("sql_01____x.rdp"));
        assert_eq!(
            std::fs::read_to_string(&path).expect("readable"),
            "full address:s:a:1\r\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(directory.path())
            .expect("listable")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_user_name_cannot_add_settings_to_the_rdp_file() {
        let hostile = RdpTarget {
            user: Some("admin\r\nalternate shell:s:cmd.exe /c calc".to_owned()),
            ..target()
        };
        assert!(matches!(
            checked_rdp_file_content(&hostile),
            Err(LaunchError::UnsafeValue {
                kind: ValueKind::User,
                ..
            })
        ));
        let content = rdp_file_content(&hostile);
        assert!(!content.contains("\r\nalternate shell"), "{content:?}");
        assert_eq!(content.matches("\r\n").count(), 6, "{content:?}");
        assert!(checked_rdp_file_content(&target()).is_ok());
        let hostile_address = RdpTarget {
            address: "20.1.2.3\nusername:s:x".to_owned(),
            ..target()
        };
        assert!(checked_rdp_file_content(&hostile_address).is_err());
    }

    #[test]
    fn remmina_is_not_given_a_user_that_would_move_the_host() {
        let remmina = Installed(HashMap::from([("remmina", "/usr/bin/remmina")]));
        let tricky = RdpTarget {
            user: Some("me@evil.example:3389/".to_owned()),
            ..target()
        };
        assert_eq!(
            argv(&rdp_launch(
                Platform::Linux,
                &remmina,
                None,
                &tricky,
                Path::new("f.rdp")
            ))
            .1,
            ["-c", "rdp://20.1.2.3:3389"]
        );
    }

    #[test]
    fn rdp_files_go_to_the_state_directory() {
        let state = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            rdp_directory(Some(state.path())).expect("a directory"),
            state.path().join("rdp")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_replaced_never_followed() {
        let scratch = tempfile::tempdir().expect("temp dir");
        let directory = scratch.path().join("rdp");
        std::fs::create_dir(&directory).expect("directory");
        let victim = scratch.path().join("victim");
        std::fs::write(&victim, "untouched").expect("victim written");
        // At the file's name and at the temporary name earlier versions used.
        std::os::unix::fs::symlink(&victim, directory.join("sql-01.rdp")).expect("symlink");
        std::os::unix::fs::symlink(&victim, directory.join(".sql-01.rdp.tmp")).expect("symlink");

        let path = write_rdp_file(&directory, "sql-01", "full address:s:a:1\r\n").expect("written");

        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "untouched"
        );
        let metadata = std::fs::symlink_metadata(&path).expect("written file");
        assert!(metadata.file_type().is_file(), "{metadata:?}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("readable"),
            "full address:s:a:1\r\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_rdp_directory_is_made_private() {
        use std::os::unix::fs::PermissionsExt as _;

        let scratch = tempfile::tempdir().expect("temp dir");
        let fresh = scratch.path().join("state/jit/rdp");
        write_rdp_file(&fresh, "a", "x").expect("written");
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode(&fresh), 0o700);

        let loose = scratch.path().join("loose");
        std::fs::create_dir(&loose).expect("directory");
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        write_rdp_file(&loose, "a", "x").expect("written");
        assert_eq!(mode(&loose), 0o700);
        assert_eq!(mode(&loose.join("a.rdp")), 0o600);

        // A symbolic link in place of the directory is refused.
        let elsewhere = scratch.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("directory");
        let linked = scratch.path().join("linked");
        std::os::unix::fs::symlink(&elsewhere, &linked).expect("symlink");
        assert!(write_rdp_file(&linked, "a", "x").is_err());
        assert!(!elsewhere.join("a.rdp").exists());
    }

    /// Needs root to give a directory away; elsewhere `chown` fails and this checks only
    /// that our own directory passes.
    #[cfg(unix)]
    #[test]
    fn a_directory_owned_by_someone_else_is_refused() {
        let scratch = tempfile::tempdir().expect("temp dir");
        let foreign = scratch.path().join("foreign");
        std::fs::create_dir(&foreign).expect("directory");
        if std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).is_ok() {
            let error = write_rdp_file(&foreign, "a", "x").expect_err("refused");
            assert!(
                error.to_string().contains("belongs to uid 65534"),
                "{error}"
            );
            assert!(!foreign.join("a.rdp").exists());
        } else {
            assert!(write_rdp_file(&foreign, "a", "x").is_ok());
        }
    }
}
