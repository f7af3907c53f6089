//! Starting the agent at login: a systemd user unit (Linux), a LaunchAgent (macOS), or a
//! `Run` value in the user's registry (Windows).
//!
//! The CLI starts the agent on demand anyway; an autostart entry only matters for
//! windows that outlive a logout or reboot (the agent reloads them and still warns).
//! Each mechanism is split into a pure function that renders the entry (unit-tested)
//! and side effects that take the entry's location, so tests write into temp dirs and
//! never touch the real user session (`activate = false` skips `systemctl`/`launchctl`).
//!
//! The LaunchAgent plist is written and read with the `plist` crate (escaping and
//! structure are its business, and an entry edited by hand still parses).
//!
//! On Windows the `Run` value (`HKCU\Software\Microsoft\Windows\CurrentVersion\Run`) is
//! used rather than a script in the Startup folder, because a script flashes a console
//! window at every login while `jit-agent.exe` is a windowless program. It is written
//! through the registry API (`windows-registry`); the key is part of the mechanism, so
//! tests use a key of their own (and run under Wine in CI).
//!
//! Installing over an entry that runs another program (an old install path, a second
//! copy of `jit`) replaces it and reports what it pointed at, so the CLI can warn.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The systemd unit's file name.
pub const SYSTEMD_UNIT: &str = "jit-agent.service";
/// The LaunchAgent's label (and plist file stem).
pub const LAUNCH_AGENT_LABEL: &str = "io.github.jit-cli.agent";
/// The registry key (under `HKEY_CURRENT_USER`) holding per-user login programs.
pub const WINDOWS_RUN_KEY: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";
/// The value name under [`WINDOWS_RUN_KEY`].
pub const WINDOWS_RUN_VALUE: &str = "jit-agent";

/// Where and how the agent is started at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// A systemd user unit file.
    SystemdUser {
        /// The unit file, normally `~/.config/systemd/user/jit-agent.service`.
        unit_file: PathBuf,
    },
    /// A launchd LaunchAgent plist.
    LaunchAgent {
        /// The plist, normally `~/Library/LaunchAgents/io.github.jit-cli.agent.plist`.
        plist_file: PathBuf,
    },
    /// A value named [`WINDOWS_RUN_VALUE`] under a key of `HKEY_CURRENT_USER`.
    WindowsRun {
        /// The key, normally [`WINDOWS_RUN_KEY`].
        key: String,
    },
}

/// Why autostart could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AutostartError {
    /// This OS has no mechanism here, or the user's directories are unknown.
    #[error("starting the agent at login is not supported here: {0}")]
    Unsupported(String),
    /// Writing or removing the entry failed.
    #[error("{action} {location}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Which entry.
        location: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// The entry written (file path or registry value).
    pub location: String,
    /// The program an earlier entry ran, when there was one.
    pub previous_program: Option<PathBuf>,
    /// Whether that earlier entry ran another program than this one.
    pub pointed_elsewhere: bool,
    /// Whether the session manager was told.
    pub activation: Activation,
}

/// What [`uninstall`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallReport {
    /// The entry removed, or `None` when there was none.
    pub removed: Option<String>,
    /// Whether the session manager was told.
    pub activation: Activation,
}

/// Whether `systemctl`/`launchctl` was run, and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// The session manager accepted the change.
    Done,
    /// Not attempted, with why (asked not to, or the tool is missing).
    Skipped(String),
    /// The tool failed; the entry is still written and takes effect at next login.
    Failed(String),
}

impl Mechanism {
    /// The mechanism for this OS at its usual per-user location.
    pub fn for_this_os() -> Result<Self, AutostartError> {
        let dirs = directories::BaseDirs::new()
            .ok_or_else(|| AutostartError::Unsupported("no home directory".to_owned()))?;
        if cfg!(windows) {
            Ok(Mechanism::WindowsRun {
                key: WINDOWS_RUN_KEY.to_owned(),
            })
        } else if cfg!(target_os = "macos") {
            Ok(Mechanism::LaunchAgent {
                plist_file: dirs
                    .home_dir()
                    .join("Library/LaunchAgents")
                    .join(format!("{LAUNCH_AGENT_LABEL}.plist")),
            })
        } else if cfg!(target_os = "linux") {
            Ok(Mechanism::SystemdUser {
                unit_file: dirs.config_dir().join("systemd/user").join(SYSTEMD_UNIT),
            })
        } else {
            Err(AutostartError::Unsupported(
                "only Linux (systemd), macOS and Windows are supported".to_owned(),
            ))
        }
    }

    /// The entry's location, for messages.
    pub fn location(&self) -> String {
        match self {
            Mechanism::SystemdUser { unit_file } => unit_file.display().to_string(),
            Mechanism::LaunchAgent { plist_file } => plist_file.display().to_string(),
            Mechanism::WindowsRun { key } => format!(r"HKCU\{key}\{WINDOWS_RUN_VALUE}"),
        }
    }
}

/// The systemd user unit that runs `program args…`.
pub fn render_systemd_unit(program: &Path, args: &[String]) -> String {
    let command_line = std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(|word| systemd_quote(&word))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "# Written by `jit agent install`; remove with `jit agent uninstall`.\n\
         [Unit]\n\
         Description=jit agent: warns before just-in-time VM access ends\n\
         Documentation=https://github.com/jit-cli/jit/blob/main/docs/agent.md\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={command_line}\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

/// The LaunchAgent plist that runs `program args…` at login (and again if it fails).
pub fn render_launch_agent(program: &Path, args: &[String]) -> String {
    let arguments = std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(plist::Value::String)
        .collect();
    let mut keep_alive = plist::Dictionary::new();
    keep_alive.insert("SuccessfulExit".to_owned(), plist::Value::Boolean(false));
    let mut agent = plist::Dictionary::new();
    agent.insert(
        "Label".to_owned(),
        plist::Value::String(LAUNCH_AGENT_LABEL.to_owned()),
    );
    agent.insert(
        "ProgramArguments".to_owned(),
        plist::Value::Array(arguments),
    );
    agent.insert("RunAtLoad".to_owned(), plist::Value::Boolean(true));
    agent.insert("KeepAlive".to_owned(), plist::Value::Dictionary(keep_alive));
    agent.insert(
        "ProcessType".to_owned(),
        plist::Value::String("Interactive".to_owned()),
    );
    let mut xml = Vec::new();
    // Writing a dictionary of strings and booleans into memory cannot fail.
    if let Err(error) = plist::Value::Dictionary(agent).to_writer_xml(&mut xml) {
        tracing::error!(%error, "could not render the LaunchAgent plist");
    }
    let mut text = String::from_utf8_lossy(&xml).into_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The command line stored in the `Run` value: the program quoted, then its arguments.
pub fn render_windows_run_value(program: &Path, args: &[String]) -> String {
    std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(|word| {
            if word.is_empty() || word.contains([' ', '\t', '"']) {
                format!("\"{}\"", word.replace('"', "\\\""))
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The program an existing entry runs, read from its content.
pub fn program_in_entry(mechanism: &Mechanism, content: &str) -> Option<PathBuf> {
    match mechanism {
        Mechanism::SystemdUser { .. } => content
            .lines()
            .find_map(|line| line.trim().strip_prefix("ExecStart="))
            .and_then(first_word),
        Mechanism::LaunchAgent { .. } => {
            let plist = plist::Value::from_reader_xml(content.as_bytes()).ok()?;
            let program = plist
                .as_dictionary()?
                .get("ProgramArguments")?
                .as_array()?
                .first()?
                .as_string()?;
            Some(PathBuf::from(program))
        }
        Mechanism::WindowsRun { .. } => first_word(content),
    }
}

/// Writes the entry for `program args…` and (when `activate`) tells the session
/// manager, so the agent also starts now.
pub fn install(
    mechanism: &Mechanism,
    program: &Path,
    args: &[String],
    activate: bool,
) -> Result<InstallReport, AutostartError> {
    let location = mechanism.location();
    let previous_program =
        read_entry(mechanism)?.and_then(|content| program_in_entry(mechanism, &content));
    let pointed_elsewhere = previous_program
        .as_deref()
        .is_some_and(|previous| !same_program(previous, program));
    let activation = match mechanism {
        Mechanism::SystemdUser { unit_file } => {
            write_entry(unit_file, &render_systemd_unit(program, args), &location)?;
            if activate {
                run_all(&[
                    &["systemctl", "--user", "daemon-reload"],
                    &["systemctl", "--user", "enable", "--now", SYSTEMD_UNIT],
                ])
            } else {
                Activation::Skipped("not requested".to_owned())
            }
        }
        Mechanism::LaunchAgent { plist_file } => {
            write_entry(plist_file, &render_launch_agent(program, args), &location)?;
            if activate {
                let domain = gui_domain();
                let target = format!("{domain}/{LAUNCH_AGENT_LABEL}");
                let plist = plist_file.to_string_lossy().into_owned();
                // Unload a previous version first; failing to is normal when none is loaded.
                let _ = run(&["launchctl", "bootout", &target]);
                run_all(&[&["launchctl", "bootstrap", &domain, &plist]])
            } else {
                Activation::Skipped("not requested".to_owned())
            }
        }
        Mechanism::WindowsRun { key } => {
            let value = render_windows_run_value(program, args);
            registry::write_run_value(key, &value).map_err(|source| AutostartError::Io {
                action: "could not write",
                location: location.clone(),
                source,
            })?;
            // The value takes effect at next login; the CLI starts the agent now.
            Activation::Skipped("takes effect at next login".to_owned())
        }
    };
    Ok(InstallReport {
        location,
        previous_program,
        pointed_elsewhere,
        activation,
    })
}

/// Removes the entry (and, when `deactivate`, stops the agent the session manager runs).
pub fn uninstall(
    mechanism: &Mechanism,
    deactivate: bool,
) -> Result<UninstallReport, AutostartError> {
    let location = mechanism.location();
    let Some(file) = entry_file(mechanism) else {
        return uninstall_windows_run(mechanism, location);
    };
    let activation = match mechanism {
        Mechanism::SystemdUser { .. } if deactivate => {
            run_all(&[&["systemctl", "--user", "disable", "--now", SYSTEMD_UNIT]])
        }
        Mechanism::LaunchAgent { .. } if deactivate => {
            let target = format!("{}/{LAUNCH_AGENT_LABEL}", gui_domain());
            run_all(&[&["launchctl", "bootout", &target]])
        }
        _ => Activation::Skipped("not requested".to_owned()),
    };
    let removed = match std::fs::remove_file(file) {
        Ok(()) => Some(location),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(AutostartError::Io {
                action: "could not remove",
                location,
                source,
            });
        }
    };
    if deactivate && matches!(mechanism, Mechanism::SystemdUser { .. }) {
        let _ = run(&["systemctl", "--user", "daemon-reload"]);
    }
    Ok(UninstallReport {
        removed,
        activation,
    })
}

fn uninstall_windows_run(
    mechanism: &Mechanism,
    location: String,
) -> Result<UninstallReport, AutostartError> {
    let Mechanism::WindowsRun { key } = mechanism else {
        return Err(AutostartError::Unsupported(
            "not a registry entry".to_owned(),
        ));
    };
    let removed = registry::remove_run_value(key).map_err(|source| AutostartError::Io {
        action: "could not remove",
        location: location.clone(),
        source,
    })?;
    Ok(UninstallReport {
        removed: removed.then_some(location),
        activation: Activation::Skipped("nothing to stop".to_owned()),
    })
}

/// The file an entry lives in (`None` for the registry).
fn entry_file(mechanism: &Mechanism) -> Option<&Path> {
    match mechanism {
        Mechanism::SystemdUser { unit_file } => Some(unit_file),
        Mechanism::LaunchAgent { plist_file } => Some(plist_file),
        Mechanism::WindowsRun { .. } => None,
    }
}

/// The current entry's content, `None` when there is none.
fn read_entry(mechanism: &Mechanism) -> Result<Option<String>, AutostartError> {
    let Some(file) = entry_file(mechanism) else {
        let Mechanism::WindowsRun { key } = mechanism else {
            return Ok(None);
        };
        return registry::read_run_value(key).map_err(|source| AutostartError::Io {
            action: "could not read",
            location: mechanism.location(),
            source,
        });
    };
    match std::fs::read_to_string(file) {
        Ok(content) => Ok(Some(content)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AutostartError::Io {
            action: "could not read",
            location: file.display().to_string(),
            source,
        }),
    }
}

/// Writes `content` to `file` through a temp file and a rename, creating the directory.
fn write_entry(file: &Path, content: &str, location: &str) -> Result<(), AutostartError> {
    let io_error = |action: &'static str| {
        move |source| AutostartError::Io {
            action,
            location: location.to_owned(),
            source,
        }
    };
    let directory = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory).map_err(io_error("could not create the directory of"))?;
    let temp = directory.join(format!(
        ".{}.tmp-{}",
        file.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&temp, content).map_err(io_error("could not write"))?;
    std::fs::rename(&temp, file).map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        io_error("could not write")(source)
    })
}

/// Whether two program paths name the same file (after resolving links when possible).
fn same_program(first: &Path, second: &Path) -> bool {
    let resolve = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    resolve(first) == resolve(second)
}

/// launchd's per-user GUI domain, `gui/<uid>`.
fn gui_domain() -> String {
    #[cfg(unix)]
    let uid = rustix::process::geteuid().as_raw();
    #[cfg(not(unix))]
    let uid = 0;
    format!("gui/{uid}")
}

/// Runs each command in turn, stopping at the first failure.
fn run_all(commands: &[&[&str]]) -> Activation {
    for command in commands {
        match run(command) {
            Activation::Done => {}
            other => return other,
        }
    }
    Activation::Done
}

/// Runs one command (argv, no shell); a missing tool is `Skipped`.
fn run(argv: &[&str]) -> Activation {
    let Some((program, args)) = argv.split_first() else {
        return Activation::Skipped("nothing to run".to_owned());
    };
    match Command::new(program).args(args).output() {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            Activation::Skipped(format!("{program} not found"))
        }
        Err(error) => Activation::Failed(format!("{program}: {error}")),
        Ok(output) if output.status.success() => Activation::Done,
        Ok(output) => Activation::Failed(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// Quotes a word for a systemd command line: always double quotes, with `\` and `"`
/// escaped, and `%` / `$` doubled so systemd expands neither specifiers nor variables.
fn systemd_quote(word: &str) -> String {
    let escaped = word
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// The first word of a command line, honouring double quotes (and `\"`, `\\` inside).
fn first_word(command_line: &str) -> Option<PathBuf> {
    let text = command_line.trim_start();
    let word = if let Some(quoted) = text.strip_prefix('"') {
        let mut word = String::new();
        let mut chars = quoted.chars();
        while let Some(character) = chars.next() {
            match character {
                '"' => break,
                '\\' => match chars.next() {
                    Some(next @ ('"' | '\\')) => word.push(next),
                    Some(next) => {
                        word.push('\\');
                        word.push(next);
                    }
                    None => word.push('\\'),
                },
                other => word.push(other),
            }
        }
        word.replace("%%", "%").replace("$$", "$")
    } else {
        text.split_whitespace().next()?.to_owned()
    };
    (!word.is_empty()).then(|| PathBuf::from(word))
}

/// The `Run` value in the registry (Windows); elsewhere there is no registry.
#[cfg(windows)]
mod registry {
    use std::io;

    use super::WINDOWS_RUN_VALUE;

    /// `ERROR_FILE_NOT_FOUND` as an HRESULT: no such key or value.
    const NOT_FOUND: i32 = 0x8007_0002_u32 as i32;

    fn io_error(error: windows_registry::Result<()>) -> io::Result<()> {
        error.map_err(io::Error::from)
    }

    pub(super) fn read_run_value(key: &str) -> io::Result<Option<String>> {
        let opened = match windows_registry::CURRENT_USER.open(key) {
            Ok(opened) => opened,
            Err(error) if error.code().0 == NOT_FOUND => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        match opened.get_string(WINDOWS_RUN_VALUE) {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.code().0 == NOT_FOUND => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    pub(super) fn write_run_value(key: &str, value: &str) -> io::Result<()> {
        let created = windows_registry::CURRENT_USER.create(key)?;
        io_error(created.set_string(WINDOWS_RUN_VALUE, value))
    }

    /// Removes the value; `false` when there was none.
    pub(super) fn remove_run_value(key: &str) -> io::Result<bool> {
        let opened = match windows_registry::CURRENT_USER
            .options()
            .read()
            .write()
            .open(key)
        {
            Ok(opened) => opened,
            Err(error) if error.code().0 == NOT_FOUND => return Ok(false),
            Err(error) => return Err(error.into()),
        };
        match opened.remove_value(WINDOWS_RUN_VALUE) {
            Ok(()) => Ok(true),
            Err(error) if error.code().0 == NOT_FOUND => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(not(windows))]
mod registry {
    use std::io;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "the Windows registry exists only on Windows",
        )
    }

    pub(super) fn read_run_value(_key: &str) -> io::Result<Option<String>> {
        Ok(None)
    }

    pub(super) fn write_run_value(_key: &str, _value: &str) -> io::Result<()> {
        Err(unsupported())
    }

    pub(super) fn remove_run_value(_key: &str) -> io::Result<bool> {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Vec<String> {
        vec!["run".to_owned()]
    }

    #[test]
    fn the_systemd_unit_runs_the_program_quoted() {
        let unit = render_systemd_unit(Path::new("/opt/my tools/jit-agent"), &args());
        assert!(
            unit.contains("ExecStart=\"/opt/my tools/jit-agent\" \"run\"\n"),
            "{unit}"
        );
        assert!(unit.contains("WantedBy=default.target"));
        let mechanism = Mechanism::SystemdUser {
            unit_file: PathBuf::new(),
        };
        assert_eq!(
            program_in_entry(&mechanism, &unit),
            Some(PathBuf::from("/opt/my tools/jit-agent"))
        );
        let odd = render_systemd_unit(Path::new("/home/a%b/$x\"y/jit-agent"), &args());
        assert_eq!(
            program_in_entry(&mechanism, &odd),
            Some(PathBuf::from("/home/a%b/$x\"y/jit-agent"))
        );
    }

    #[test]
    fn the_launch_agent_is_a_plist_that_parses_back() {
        let program = Path::new("/Applications/A&B <tools>/jit-agent");
        let rendered = render_launch_agent(program, &args());
        let parsed = plist::Value::from_reader_xml(rendered.as_bytes())
            .expect("the rendered LaunchAgent is a valid XML plist");
        let agent = parsed.as_dictionary().expect("a dictionary at the top");
        assert_eq!(
            agent.get("Label").and_then(plist::Value::as_string),
            Some(LAUNCH_AGENT_LABEL)
        );
        let arguments: Vec<&str> = agent
            .get("ProgramArguments")
            .and_then(plist::Value::as_array)
            .expect("ProgramArguments")
            .iter()
            .filter_map(plist::Value::as_string)
            .collect();
        assert_eq!(arguments, ["/Applications/A&B <tools>/jit-agent", "run"]);
        assert_eq!(
            agent.get("RunAtLoad").and_then(plist::Value::as_boolean),
            Some(true)
        );
        let keep_alive = agent
            .get("KeepAlive")
            .and_then(plist::Value::as_dictionary)
            .expect("KeepAlive");
        assert_eq!(
            keep_alive
                .get("SuccessfulExit")
                .and_then(plist::Value::as_boolean),
            Some(false),
            "restarted after a failure, not after `jit agent stop`"
        );
        assert!(rendered.contains("A&amp;B &lt;tools&gt;"), "{rendered}");
        let mechanism = Mechanism::LaunchAgent {
            plist_file: PathBuf::new(),
        };
        assert_eq!(
            program_in_entry(&mechanism, &rendered),
            Some(program.into())
        );
        assert_eq!(program_in_entry(&mechanism, "<plist>not closed"), None);
    }

    #[test]
    fn the_windows_run_value_quotes_paths_with_spaces() {
        let value =
            render_windows_run_value(Path::new(r"C:\Program Files\jit\jit-agent.exe"), &args());
        assert_eq!(value, r#""C:\Program Files\jit\jit-agent.exe" run"#);
        let mechanism = Mechanism::WindowsRun {
            key: WINDOWS_RUN_KEY.to_owned(),
        };
        assert_eq!(
            program_in_entry(&mechanism, &value),
            Some(PathBuf::from(r"C:\Program Files\jit\jit-agent.exe"))
        );
        assert_eq!(
            mechanism.location(),
            r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run\jit-agent"
        );
    }
}
