//! The emulated resource providers. (Skeleton: filled in shortly.)

use crate::arm_http::{ArmRequest, ArmResponse};
use crate::state::SharedState;

/// Serves one ARM request.
pub fn dispatch(state: &SharedState, request: &ArmRequest) -> ArmResponse {
    let _ = state;
    ArmResponse::error(
        http::StatusCode::NOT_FOUND,
        "NoRegisteredProviderFound",
        format!(
            "No registered resource provider found for path '{}'.",
            request.path
        ),
    )
}

/// The ARM action a request needs, for the RBAC check.
pub fn required_action(request: &ArmRequest) -> Option<String> {
    let _ = request;
    None
}
