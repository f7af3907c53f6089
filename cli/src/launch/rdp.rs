//! Starting the RDP client of the platform.
//!
//! Windows has `mstsc`; macOS has Windows App (formerly Microsoft Remote Desktop), which
//! opens `.rdp` files; Linux has FreeRDP (`xfreerdp3`, `xfreerdp`) or Remmina. The argv
//! for each is a pure function of the platform and what is installed, so every variant
//! is unit-tested here even though CI runs on Linux only. When no client is found, the
//! `.rdp` file is written anyway and its path printed, which any RDP client can open.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

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
}

/// The content of a `.rdp` file for the target. CRLF line endings, as mstsc writes them.
pub fn rdp_file_content(target: &RdpTarget) -> String {
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
                let user = target
                    .user
                    .as_ref()
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

/// Writes the `.rdp` file atomically (temp file + rename) and returns its path.
pub fn write_rdp_file(directory: &Path, vm_name: &str, content: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(directory)?;
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
    let temporary = directory.join(format!(".{safe_name}.rdp.tmp"));
    std::fs::write(&temporary, content)?;
    std::fs::rename(&temporary, &path)?;
    Ok(path)
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
}
