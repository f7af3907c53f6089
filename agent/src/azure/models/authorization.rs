//! Microsoft.Authorization `permissions` (api-version 2022-04-01): what the signed-in
//! identity may do at a scope, so a diagnosis can say "you may read JIT policies but not
//! request access" without trying.
//!
//! `GET {scope}/providers/Microsoft.Authorization/permissions` answers one [`Permission`]
//! per role the caller holds at (or above) the scope (`PermissionGetResult`,
//! `authorization-RoleDefinitionsCalls.json`). An action is allowed when some role's
//! `actions` match it and the same role's `notActions` do not; `*` in a pattern matches
//! any run of characters, case-insensitively, as in role definitions. What is given up:
//! deny assignments and conditions are not part of this answer, so "allowed" here can
//! still meet a 403.

use serde::{Deserialize, Serialize};

/// The api-version of the permissions call.
pub const AUTHORIZATION_API_VERSION: &str = "2022-04-01";

/// The actions and data actions of one role (`Permission`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// Allowed actions (patterns with `*`).
    #[serde(default)]
    pub actions: Vec<String>,
    /// Actions taken out of `actions`.
    #[serde(default)]
    pub not_actions: Vec<String>,
    /// Allowed data actions.
    #[serde(default)]
    pub data_actions: Vec<String>,
    /// Data actions taken out of `data_actions`.
    #[serde(default)]
    pub not_data_actions: Vec<String>,
}

impl Permission {
    /// Whether this role allows `action`.
    pub fn allows(&self, action: &str) -> bool {
        self.actions
            .iter()
            .any(|pattern| action_matches(pattern, action))
            && !self
                .not_actions
                .iter()
                .any(|pattern| action_matches(pattern, action))
    }
}

/// Whether any of the roles allows `action`.
pub fn permits(permissions: &[Permission], action: &str) -> bool {
    permissions
        .iter()
        .any(|permission| permission.allows(action))
}

/// Whether an action pattern (`Microsoft.Security/*/read`, `*`) matches `action`,
/// ignoring case.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let action = action.trim().to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        // No `*`: the whole action.
        return pattern == action;
    };
    let Some(mut rest) = action.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(position) => rest = &rest[position + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_any_run_of_characters_ignoring_case() {
        assert!(action_matches(
            "*",
            "Microsoft.Compute/virtualMachines/read"
        ));
        assert!(action_matches(
            "*/read",
            "Microsoft.Compute/virtualMachines/read"
        ));
        assert!(!action_matches(
            "*/read",
            "Microsoft.Compute/virtualMachines/write"
        ));
        assert!(action_matches(
            "Microsoft.Security/locations/jitNetworkAccessPolicies/*",
            "microsoft.security/locations/jitnetworkaccesspolicies/initiate/action"
        ));
        assert!(action_matches(
            "Microsoft.Network/networkInterfaces/*/read",
            "Microsoft.Network/networkInterfaces/ipconfigurations/read"
        ));
        assert!(!action_matches(
            "Microsoft.Network/*/read",
            "Microsoft.Network/read"
        ));
        assert!(action_matches("a*b*c", "abc"));
        assert!(!action_matches("a*bc*c", "abc"));
    }

    #[test]
    fn not_actions_take_out_of_the_same_role_only() {
        let reader = Permission {
            actions: vec!["*".to_owned()],
            not_actions: vec!["Microsoft.Security/*/initiate/action".to_owned()],
            ..Permission::default()
        };
        let initiate = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action";
        assert!(!reader.allows(initiate));
        assert!(reader.allows("Microsoft.Security/locations/jitNetworkAccessPolicies/read"));
        let requester = Permission {
            actions: vec![initiate.to_owned()],
            ..Permission::default()
        };
        assert!(permits(&[reader.clone(), requester], initiate));
        assert!(!permits(&[reader], initiate));
    }
}
