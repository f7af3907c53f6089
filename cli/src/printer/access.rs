//! How granted access is shown: the document `connect --no-launch`, `request` and
//! `proxy -v` print (schema in `docs/output-json.md`), and its lines for people.

use jiff::Timestamp;
use jit_agent::access::flow::Grant;
use jit_agent::access::ownership::readable_justification;
use jit_agent::access::plan::Service;
use jit_agent::access::request::OpenPort;
use serde::Serialize;

use super::Printer;
use super::format::format_duration;

/// The connection details shown by `--no-launch` and in JSON output.
#[derive(Debug, Serialize)]
pub struct AccessReport {
    /// The VM.
    pub vm: VmReport,
    /// The JIT policy the request went to.
    pub policy_id: String,
    /// The source the ports are open for.
    pub source: String,
    /// When the request was made, on Azure's clock.
    pub requested_at: Timestamp,
    /// When the window closes, on Azure's clock.
    pub ends_at: Timestamp,
    /// The duration asked for.
    pub duration: String,
    /// The justification, as the person wrote it.
    pub justification: Option<String>,
    /// The ports that answer.
    pub ports: Vec<OpenPort>,
    /// The `ssh` command that connects (SSH only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_command: Option<Vec<String>>,
    /// The `.rdp` file written (RDP only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdp_file: Option<String>,
}

/// The VM part of an [`AccessReport`].
#[derive(Debug, Serialize)]
pub struct VmReport {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Resource group.
    pub resource_group: String,
    /// Subscription id.
    pub subscription_id: String,
    /// `Linux` or `Windows`.
    pub os: Option<String>,
    /// The VM's admin user.
    pub admin_username: Option<String>,
}

impl AccessReport {
    /// The report for a grant.
    pub fn new(grant: &Grant) -> Self {
        let details = &grant.prepared.details;
        Self {
            vm: VmReport {
                id: details.id.clone(),
                name: details.name.clone(),
                resource_group: details.resource_group.clone(),
                subscription_id: details.subscription_id.clone(),
                os: details.os.as_ref().map(ToString::to_string),
                admin_username: details.admin_username.clone(),
            },
            policy_id: grant.window.policy_id.clone(),
            source: grant.prepared.source_text(),
            requested_at: grant.window.requested_at,
            ends_at: grant.window.ends_at,
            duration: format_duration(grant.prepared.duration),
            justification: grant
                .window
                .justification
                .as_deref()
                .map(|text| readable_justification(text).to_owned())
                .filter(|text| !text.is_empty()),
            ports: grant.open.clone(),
            ssh_command: None,
            rdp_file: None,
        }
    }

    /// Prints the report: one JSON document, or aligned lines for people.
    pub fn print(&self, printer: &Printer, command: Option<&str>) {
        if printer.is_json() {
            printer.json(self);
            return;
        }
        printer.data(self.lines(command));
    }

    /// The report as lines for people.
    pub fn lines(&self, command: Option<&str>) -> String {
        let mut lines = vec![format!(
            "vm:       {}/{}",
            self.vm.resource_group, self.vm.name
        )];
        for OpenPort {
            number,
            host,
            connect_port,
            mapped_port,
            service,
            ..
        } in &self.ports
        {
            let via = mapped_port
                .map(|mapped| format!(" (firewall port {mapped} for VM port {number})"))
                .unwrap_or_default();
            let service = match service {
                Service::Ssh => "ssh",
                Service::Rdp => "rdp",
                Service::Other => "tcp",
            };
            lines.push(format!("{service}:      {host}:{connect_port}{via}"));
        }
        lines.push(format!("source:   {}", self.source));
        lines.push(format!(
            "until:    {}",
            self.ends_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        ));
        if let Some(command) = command {
            lines.push(format!("command:  {command}"));
        }
        if let Some(file) = &self.rdp_file {
            lines.push(format!("rdp file: {file}"));
        }
        lines.join("\n")
    }
}
