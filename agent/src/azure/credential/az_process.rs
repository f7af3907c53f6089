//! Running `az` with a time limit.
//!
//! azure_identity's `AzureCliCredential` runs `az account get-access-token` and waits for
//! it however long it takes: unlike the C++, .NET and JavaScript SDKs, its options have
//! no process timeout, only an [`Executor`] that runs the command. A hung `az` (a proxy
//! that never answers, a locked MSAL cache, a prompt nobody sees) would stall the command
//! and, through the shared token cache, the agent with it.
//!
//! [`TimedExecutor`] is that executor with a limit. azure_identity runs `az` through a
//! shell (`/bin/sh -c "cd /bin && az …"`), and `az` is itself a script that starts
//! Python, so killing the direct child would leave `az` running: the shell is started in
//! a process group of its own and, when the limit passes or the caller stops waiting, the
//! whole group is killed. On Windows, where `cmd /C` starts `az.cmd`, the process tree is
//! ended with `taskkill /T`.

use std::ffi::OsStr;
use std::io;
use std::process::{Output, Stdio};
use std::time::Duration;

use azure_identity::Executor;

use super::error::CredentialError;

/// How long one `az account get-access-token` may take unless configured otherwise.
pub const DEFAULT_AZ_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs what azure_identity asks for, killing it (and everything it started) after
/// `limit`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimedExecutor {
    limit: Duration,
}

impl TimedExecutor {
    pub(crate) fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

#[async_trait::async_trait]
impl Executor for TimedExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> io::Result<Output> {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let child = command.spawn()?;
        // Armed until the child has been waited for: a timeout, or the caller dropping
        // this future, kills the whole tree.
        let tree = ProcessTree { leader: child.id() };
        match tokio::time::timeout(self.limit, child.wait_with_output()).await {
            Ok(finished) => {
                tree.disarm();
                finished
            }
            Err(_) => {
                tracing::debug!(limit = ?self.limit, "az did not finish in time; killing it");
                drop(tree);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    CredentialError::AzureCliTimedOut { limit: self.limit },
                ))
            }
        }
    }
}

/// The process started for `az` and everything it started, ended on drop unless
/// disarmed.
struct ProcessTree {
    leader: Option<u32>,
}

impl ProcessTree {
    fn disarm(mut self) {
        // The leader has been reaped; its id may be reused from now on.
        self.leader = None;
    }
}

impl Drop for ProcessTree {
    fn drop(&mut self) {
        if let Some(leader) = self.leader {
            kill_tree(leader);
        }
    }
}

#[cfg(unix)]
fn kill_tree(leader: u32) {
    let Some(group) = i32::try_from(leader)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(error) = rustix::process::kill_process_group(group, rustix::process::Signal::KILL) {
        tracing::debug!(%error, "could not kill the az process group");
    }
}

#[cfg(windows)]
fn kill_tree(leader: u32) {
    let pid = leader.to_string();
    let started = std::process::Command::new("taskkill")
        .args(["/T", "/F", "/PID", pid.as_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(error) = started {
        tracing::debug!(%error, "could not run taskkill for az");
    }
}

#[cfg(not(any(unix, windows)))]
fn kill_tree(_leader: u32) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Runs a script the way azure_identity runs `az`: `/bin/sh -c …`.
    async fn run(executor: TimedExecutor, script: &str) -> io::Result<Output> {
        executor
            .run(
                OsStr::new("/bin/sh"),
                &[OsStr::new("-c"), OsStr::new(script)],
            )
            .await
    }

    #[tokio::test]
    async fn a_quick_command_runs_to_completion() {
        let output = run(
            TimedExecutor::new(Duration::from_secs(30)),
            "echo token; echo err >&2",
        )
        .await
        .expect("runs");
        assert!(output.status.success());
        assert_eq!(String::from_utf8_lossy(&output.stdout), "token\n");
        assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
    }

    #[tokio::test]
    async fn a_hung_command_and_its_children_are_killed_at_the_limit() {
        let scratch = tempfile::tempdir().expect("temp dir");
        let pid_file = scratch.path().join("pid");
        // The shell starts a grandchild that would outlive it, as az (Python) would.
        let script = format!(
            "sh -c 'echo $$ > {}; exec sleep 600' & wait",
            pid_file.display()
        );
        let error = run(TimedExecutor::new(Duration::from_millis(500)), &script)
            .await
            .expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let ours = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<CredentialError>());
        assert_eq!(
            ours,
            Some(&CredentialError::AzureCliTimedOut {
                limit: Duration::from_millis(500)
            })
        );
        let grandchild: i32 = std::fs::read_to_string(&pid_file)
            .expect("the grandchild started")
            .trim()
            .parse()
            .expect("a pid");
        assert!(
            wait_until_gone(grandchild).await,
            "the grandchild {grandchild} still runs"
        );
    }

    /// Whether the process is gone (or a zombie nobody reaped yet), within ten seconds.
    async fn wait_until_gone(pid: i32) -> bool {
        for _ in 0..100 {
            if !is_running(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn is_running(pid: i32) -> bool {
        let Some(pid) = rustix::process::Pid::from_raw(pid) else {
            return false;
        };
        if rustix::process::test_kill_process(pid).is_err() {
            return false;
        }
        // A killed process whose parent is gone may linger as a zombie until init
        // reaps it; it runs nothing.
        std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
            .map(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    }
}
