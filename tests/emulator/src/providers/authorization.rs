//! `Microsoft.Authorization/permissions`: what the caller may do at a scope, so a client
//! can say "you may read JIT policies but not request access" before it tries.
//!
//! The spec (2022-04-01, `authorization-RoleDefinitionsCalls.json`, not among the copied
//! specs in `../shared/azure-rest/`) defines `Permissions_ListForResourceGroup` and
//! `Permissions_ListForResource`; the subscription scope answers the same way on ARM
//! *(inferred)*. The emulator's RBAC model is one set of `actions`/`not_actions` per
//! principal, valid at every scope, so every scope answers one `Permission` with them
//! (no data actions: the emulator has no data plane).

use serde_json::json;

use super::{Call, paged_list};
use crate::arm_http::ArmResponse;

/// `GET {scope}/providers/Microsoft.Authorization/permissions`: the caller's permissions.
pub(super) fn list_permissions(call: &Call<'_>) -> ArmResponse {
    let caller = &call.request.caller;
    let principal = call
        .inner
        .principals
        .iter()
        .find(|principal| principal.object_id.eq_ignore_ascii_case(&caller.object_id));
    let items: Vec<serde_json::Value> = principal
        .map(|principal| {
            json!({
                "actions": principal.actions,
                "notActions": principal.not_actions,
                "dataActions": [],
                "notDataActions": []
            })
        })
        .into_iter()
        .collect();
    paged_list(call, &items)
}
