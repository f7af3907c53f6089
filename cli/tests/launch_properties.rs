//! Security invariant: a user name or address — from ARM (`adminUsername`, a public
//! IP's FQDN), the config file or `--user` — never reaches a launched program as an
//! option, a setting or a command, whatever it holds (shell metacharacters, newlines,
//! leading dashes, `@`, quotes, Unicode).
//!
//! Over generated hostile values: `ssh`'s argv always has exactly one element for the
//! destination, after `--` (the checked builder refuses what OpenSSH could misread, the
//! unchecked one still cannot be broken out of); a `.rdp` file always has exactly its
//! own lines; FreeRDP and Remmina get each value inside one argument of their own.
//! `connect.rs` runs the real OpenSSH with such names; these cover every shape.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use jit::launch::rdp::{
    Platform, ProgramFinder, RdpLaunch, RdpTarget, checked_rdp_file_content, rdp_file_content,
    rdp_launch,
};
use jit::launch::ssh::{SshTarget, checked_ssh_command_line, ssh_command_line};
use proptest::prelude::*;

/// Text built from the pieces an attacker would use.
fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("-".to_owned()),
        Just("--".to_owned()),
        Just("-oProxyCommand=touch /tmp/pwned".to_owned()),
        Just(" ".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("\t".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\u{1b}[31m".to_owned()),
        Just("\u{85}".to_owned()),
        Just("\u{2028}".to_owned()),
        Just(";rm -rf ~".to_owned()),
        Just("$(id)".to_owned()),
        Just("`id`".to_owned()),
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("@".to_owned()),
        Just("/".to_owned()),
        Just(":".to_owned()),
        Just("%".to_owned()),
        Just("\\".to_owned()),
        Just("username:s:admin".to_owned()),
        Just("/cert:ignore".to_owned()),
        "[a-z0-9.]{1,8}",
        "\\PC{1,3}",
    ];
    prop::collection::vec(piece, 1..6).prop_map(|pieces| pieces.concat())
}

fn ssh_target() -> impl Strategy<Value = SshTarget> {
    (
        prop_oneof![
            hostile(),
            Just("20.1.2.3".to_owned()),
            Just("vm.example.com".to_owned())
        ],
        any::<u16>(),
        prop::option::of(prop_oneof![hostile(), Just("azureuser".to_owned())]),
    )
        .prop_map(|(address, port, user)| SshTarget {
            address,
            port,
            user,
        })
}

fn rdp_target() -> impl Strategy<Value = RdpTarget> {
    ssh_target().prop_map(|target| RdpTarget {
        address: target.address,
        port: target.port,
        user: target.user,
    })
}

/// Whether OpenSSH or an RDP client could read `value` as more than one value.
fn unsafe_value(value: &str) -> bool {
    value.is_empty()
        || value.starts_with('-')
        || value
            .chars()
            .any(|character| character.is_control() || character.is_whitespace())
}

fn destination(target: &SshTarget) -> String {
    match &target.user {
        Some(user) => format!("{user}@{}", target.address),
        None => target.address.clone(),
    }
}

/// FreeRDP and Remmina installed, and nothing else.
struct Installed(&'static [&'static str]);

impl ProgramFinder for Installed {
    fn find(&self, name: &str) -> Option<PathBuf> {
        self.0
            .contains(&name)
            .then(|| PathBuf::from(format!("/usr/bin/{name}")))
    }
}

fn arguments(launch: &RdpLaunch) -> Vec<String> {
    match launch {
        RdpLaunch::Run { arguments, .. } => arguments
            .iter()
            .map(|argument| argument.to_string_lossy().into_owned())
            .collect(),
        RdpLaunch::ShowFile => Vec::new(),
    }
}

proptest! {
    // A failure prints its minimal input; a bug found this way gets a unit test of its
    // own next to the code, so no regression files are written here.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ssh_gets_the_destination_as_one_argument_after_the_end_of_options(target in ssh_target()) {
        let expected: Vec<OsString> = vec![
            "-p".into(),
            target.port.to_string().into(),
            "--".into(),
            destination(&target).into(),
        ];
        // Unchecked: whatever the names hold, they stay one argument after `--`.
        let (_, argv) = ssh_command_line(Path::new("ssh"), &[], &target, &[]);
        prop_assert_eq!(&argv, &expected);
        // Checked: refused exactly when OpenSSH could misread them.
        let misreadable = unsafe_value(&target.address)
            || target.address.contains(['@', '/'])
            || target.user.as_deref().is_some_and(unsafe_value);
        match checked_ssh_command_line(Path::new("ssh"), &[], &target, &[]) {
            Ok((_, argv)) => {
                prop_assert!(!misreadable, "{:?} was accepted", target);
                prop_assert_eq!(argv, expected);
            }
            Err(error) => {
                prop_assert!(misreadable, "{:?} was refused: {}", target, error);
                // The refusal shows the value escaped: nothing reaches the terminal raw.
                let message = error.to_string();
                prop_assert!(!message.chars().any(char::is_control), "{:?}", message);
            }
        }
    }

    #[test]
    fn a_target_adds_no_ssh_argument_and_removes_none_of_the_users(
        target in ssh_target(),
        options in prop::collection::vec(prop_oneof![
            Just("-A".to_owned()),
            Just("-L".to_owned()),
            Just("8080:localhost:80".to_owned()),
            Just("-vL8080:x:80".to_owned()),
            Just("--".to_owned()),
            Just("uptime".to_owned()),
        ], 0..5),
    ) {
        let (_, argv) = ssh_command_line(Path::new("ssh"), &[], &target, &options);
        prop_assert_eq!(&argv[..2], &[OsString::from("-p"), OsString::from(target.port.to_string())]);
        // The rest is the user's own arguments in their order (their own `--` may be
        // dropped, ours takes its place), with `--` and the destination put in between:
        // the target adds no argument and removes none.
        let wanted = OsString::from(destination(&target));
        let own: Vec<OsString> = options.iter().map(OsString::from).collect();
        let fits = (3..argv.len()).any(|position| {
            if argv[position] != wanted || argv[position - 1] != "--" {
                return false;
            }
            let mut rest: Vec<OsString> = argv[2..position - 1].to_vec();
            rest.extend(argv[position + 1..].iter().cloned());
            rest == own
                || (0..own.len()).any(|index| {
                    let mut without = own.clone();
                    without.remove(index) == "--" && rest == without
                })
        });
        prop_assert!(fits, "{:?}", argv);
    }

    #[test]
    fn an_rdp_file_has_its_own_lines_and_no_others(target in rdp_target()) {
        let content = rdp_file_content(&target);
        let lines: Vec<&str> = content.trim_end_matches("\r\n").split("\r\n").collect();
        let mut expected_keys = vec![
            "full address:s:",
            "prompt for credentials:i:",
            "administrative session:i:",
            "screen mode id:i:",
            "authentication level:i:",
        ];
        if target.user.is_some() {
            expected_keys.push("username:s:");
        }
        prop_assert_eq!(lines.len(), expected_keys.len(), "{:?}", content);
        for (line, key) in lines.iter().zip(&expected_keys) {
            prop_assert!(line.starts_with(key), "{line:?} is not {key:?}");
            prop_assert!(!line.chars().any(char::is_control), "{line:?}");
        }
        prop_assert_eq!(
            checked_rdp_file_content(&target).is_ok(),
            !unsafe_value(&target.address)
                && !target.address.contains(['@', '/'])
                && !target.user.as_deref().is_some_and(unsafe_value)
        );
    }

    #[test]
    fn rdp_clients_get_each_value_inside_one_argument(target in rdp_target()) {
        let file = Path::new("/home/u/.local/state/jit/rdp/vm.rdp");
        let freerdp = rdp_launch(Platform::Linux, &Installed(&["xfreerdp3"]), None, &target, file);
        let argv = arguments(&freerdp);
        let mut expected = vec![format!("/v:{}", target.host_and_port())];
        if let Some(user) = &target.user {
            expected.push(format!("/u:{user}"));
        }
        expected.push("/dynamic-resolution".to_owned());
        prop_assert_eq!(argv, expected);

        let remmina = rdp_launch(Platform::Linux, &Installed(&["remmina"]), None, &target, file);
        let argv = arguments(&remmina);
        prop_assert_eq!(argv.len(), 2);
        prop_assert_eq!(argv[0].as_str(), "-c");
        prop_assert!(argv[1].starts_with("rdp://"), "{}", argv[1]);
        // Whatever the user name holds, the URL still reaches this host and port.
        let plain_address = target
            .address
            .chars()
            .all(|character| character.is_ascii_lowercase() || character.is_ascii_digit() || character == '.');
        if plain_address && let Ok(parsed) = url::Url::parse(&argv[1]) {
            prop_assert_eq!(parsed.host_str(), Some(target.address.as_str()));
            prop_assert_eq!(parsed.port(), Some(target.port));
        }

        let windows = rdp_launch(Platform::Windows, &Installed(&[]), None, &target, file);
        prop_assert_eq!(arguments(&windows), vec![format!("/v:{}", target.host_and_port())]);
    }
}
