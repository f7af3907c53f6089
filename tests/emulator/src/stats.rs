//! The emulator's own timings: how long it took to answer each route (real time, from the
//! request read to the answer built), as percentiles, and its memory, so a benchmark of a
//! client can tell the client's cost from the emulator's (`GET /_emulator/stats`,
//! [`crate::Emulator::stats`], `bench/emulator.py`).
//!
//! Routes are grouped by template: ARM paths with their subscription, resource group and
//! resource names replaced (`/subscriptions/{subscription}/resourceGroups/{resourceGroup}/providers/Microsoft.Compute/virtualMachines/{name}`),
//! so a thousand VM reads are one line. Each route keeps its most recent
//! [`SAMPLES_PER_ROUTE`] timings.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

/// How many recent timings each route keeps.
pub const SAMPLES_PER_ROUTE: usize = 4096;

/// The timings of one route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteStats {
    /// `METHOD template`.
    pub route: String,
    /// How many requests it answered since the start (or the last reset).
    pub count: u64,
    /// Percentiles of the kept timings, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest kept timing.
    pub max_ms: f64,
}

/// The emulator's memory, from `/proc/self/status` (Linux; `None` elsewhere).
#[derive(Debug, Clone, Serialize)]
pub struct MemoryStats {
    /// Resident now, KiB.
    pub resident_kib: Option<u64>,
    /// Highest resident so far, KiB.
    pub peak_resident_kib: Option<u64>,
}

/// What `GET /_emulator/stats` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Every route answered, slowest median first.
    pub routes: Vec<RouteStats>,
    /// The process's memory.
    pub memory: MemoryStats,
}

#[derive(Debug, Default)]
struct Samples {
    count: u64,
    recent: VecDeque<f64>,
}

/// Timings by route.
#[derive(Debug, Default)]
pub(crate) struct Timings {
    routes: HashMap<String, Samples>,
}

impl Timings {
    /// Records one answer.
    pub(crate) fn record(&mut self, method: &str, path: &str, elapsed: Duration) {
        let samples = self
            .routes
            .entry(format!("{method} {}", template(path)))
            .or_default();
        samples.count += 1;
        if samples.recent.len() == SAMPLES_PER_ROUTE {
            samples.recent.pop_front();
        }
        samples.recent.push_back(elapsed.as_secs_f64() * 1000.0);
    }

    /// Forgets every timing.
    pub(crate) fn clear(&mut self) {
        self.routes.clear();
    }

    /// Percentiles per route, and the memory now.
    pub(crate) fn report(&self) -> Stats {
        let mut routes: Vec<RouteStats> = self
            .routes
            .iter()
            .map(|(route, samples)| {
                let mut sorted: Vec<f64> = samples.recent.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                let pick = |fraction: f64| {
                    if sorted.is_empty() {
                        return 0.0;
                    }
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        clippy::cast_precision_loss,
                        reason = "an index into at most SAMPLES_PER_ROUTE samples"
                    )]
                    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
                    sorted[index.min(sorted.len() - 1)]
                };
                RouteStats {
                    route: route.clone(),
                    count: samples.count,
                    p50_ms: pick(0.5),
                    p90_ms: pick(0.9),
                    p99_ms: pick(0.99),
                    max_ms: sorted.last().copied().unwrap_or(0.0),
                }
            })
            .collect();
        routes.sort_by(|left, right| right.p50_ms.total_cmp(&left.p50_ms));
        Stats {
            routes,
            memory: memory(),
        }
    }
}

/// A route's template: names in ARM paths replaced by what they are.
fn template(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut parts = Vec::with_capacity(segments.len());
    let mut index = 0;
    // After `providers/{namespace}`, segments alternate type, name.
    let mut in_provider = false;
    let mut expect_name = false;
    while index < segments.len() {
        let segment = segments[index];
        let lower = segment.to_ascii_lowercase();
        if lower == "subscriptions" && index + 1 < segments.len() {
            parts.push(segment.to_owned());
            parts.push("{subscription}".to_owned());
            index += 2;
            continue;
        }
        if lower == "resourcegroups" && index + 1 < segments.len() {
            parts.push(segment.to_owned());
            parts.push("{resourceGroup}".to_owned());
            index += 2;
            continue;
        }
        if lower == "providers" && index + 1 < segments.len() {
            parts.push(segment.to_owned());
            parts.push(segments[index + 1].to_owned());
            in_provider = true;
            expect_name = false;
            index += 2;
            continue;
        }
        if in_provider && expect_name {
            parts.push("{name}".to_owned());
        } else {
            parts.push(segment.to_owned());
        }
        expect_name = in_provider && !expect_name;
        index += 1;
    }
    format!("/{}", parts.join("/"))
}

fn memory() -> MemoryStats {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    MemoryStats {
        resident_kib: field("VmRSS:"),
        peak_resident_kib: field("VmHWM:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_paths_group_by_template() {
        assert_eq!(
            template(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1"
            ),
            "/subscriptions/{subscription}/resourceGroups/{resourceGroup}/providers/Microsoft.Compute/virtualMachines/{name}"
        );
        assert_eq!(
            template(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default/initiate"
            ),
            "/subscriptions/{subscription}/resourceGroups/{resourceGroup}/providers/Microsoft.Security/locations/{name}/jitNetworkAccessPolicies/{name}/initiate"
        );
        assert_eq!(
            template("/providers/Microsoft.ResourceGraph/resources"),
            "/providers/Microsoft.ResourceGraph/resources"
        );
        assert_eq!(template("/t/oauth2/v2.0/token"), "/t/oauth2/v2.0/token");
    }

    #[test]
    fn percentiles_come_from_the_kept_samples() {
        let mut timings = Timings::default();
        for millis in 1..=100 {
            timings.record("GET", "/subscriptions/a", Duration::from_millis(millis));
        }
        timings.record("POST", "/x", Duration::from_millis(5));
        let report = timings.report();
        let get = &report.routes[0];
        assert_eq!(get.route, "GET /subscriptions/{subscription}");
        assert_eq!(get.count, 100);
        assert!((get.p50_ms - 50.0).abs() < 1.5, "{get:?}");
        assert!((get.max_ms - 100.0).abs() < 0.5, "{get:?}");
        timings.clear();
        assert!(timings.report().routes.is_empty());
    }
}
