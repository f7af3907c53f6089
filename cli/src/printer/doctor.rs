//! A diagnosis as `jit doctor` prints it: a table of checks (status, check, subject,
//! finding), then the fixes of those that did not pass; or one JSON document.

use jit_agent::access::doctor::{Check, CheckStatus};
use serde::Serialize;

use super::table::Table;

/// How many checks came out how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Passed.
    pub ok: usize,
    /// Passed with a warning.
    pub warn: usize,
    /// Failed.
    pub fail: usize,
}

impl Counts {
    /// The counts of `checks`.
    pub fn of(checks: &[Check]) -> Self {
        let mut counts = Self::default();
        for check in checks {
            match check.status {
                CheckStatus::Ok => counts.ok += 1,
                CheckStatus::Warn => counts.warn += 1,
                CheckStatus::Fail => counts.fail += 1,
            }
        }
        counts
    }

    /// `2 failed, 1 warning, 9 ok`.
    pub fn summary(self) -> String {
        let plural = |count: usize, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        format!(
            "{}, {}, {} ok",
            plural(self.fail, "failed", "failed"),
            plural(self.warn, "warning", "warnings"),
            self.ok
        )
    }
}

/// The JSON document of `jit doctor`.
#[derive(Debug, Serialize)]
pub struct DiagnosisView<'a> {
    /// Whether no check failed (what the exit code says too).
    pub passed: bool,
    /// How many checks came out how.
    pub counts: Counts,
    /// Every check, in the order made.
    pub checks: &'a [Check],
}

impl<'a> DiagnosisView<'a> {
    /// The document of `checks`.
    pub fn of(checks: &'a [Check]) -> Self {
        let counts = Counts::of(checks);
        Self {
            passed: counts.fail == 0,
            counts,
            checks,
        }
    }
}

/// The table, then `fix:` lines for every check that did not pass.
pub fn render(checks: &[Check]) -> String {
    let mut table = Table::new(vec!["STATUS", "CHECK", "SUBJECT", "FINDING"]);
    for check in checks {
        table.push(vec![
            check.status.as_str().to_owned(),
            check.check.label().to_owned(),
            check.subject.clone(),
            check.finding.clone(),
        ]);
    }
    let mut text = table.render();
    let fixes: Vec<String> = checks
        .iter()
        .filter(|check| check.status != CheckStatus::Ok)
        .filter_map(|check| {
            check.fix.as_ref().map(|fix| {
                format!(
                    "  {} {} ({}): {fix}",
                    check.status.as_str(),
                    check.check.label(),
                    check.subject
                )
            })
        })
        .collect();
    if !fixes.is_empty() {
        text.push_str("\n\nFixes:\n");
        text.push_str(&fixes.join("\n"));
    }
    text
}
