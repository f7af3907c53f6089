//! ARM error bodies (as ARM sends them, see azure-contract.md §4.4) become typed errors
//! with stable kinds and actionable hints.

use std::time::Duration;

use jit_agent::azure::arm::{ArmError, ArmErrorKind, RBAC_DOCS_URL, parse_authorization_failure};

fn error(status: u16, body: &str) -> ArmError {
    ArmError::from_response(status, None, body.as_bytes())
}

#[test]
fn forbidden_names_the_missing_action_and_scope() {
    let body = r#"{"error":{"code":"AuthorizationFailed","message":"The client 'jit-reader' with object id '5f0c7f4e-1d2b-4a57-9d7c-2f3b8c1a9e10' does not have authorization to perform action 'Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action' over scope '/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default' or the scope is invalid. If access was recently granted, please refresh your credentials."}}"#;
    let error = error(403, body);
    let ArmError::Forbidden {
        action,
        scope,
        code,
        ..
    } = &error
    else {
        panic!("expected Forbidden, got {error:?}");
    };
    assert_eq!(
        action.as_deref(),
        Some("Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action")
    );
    assert_eq!(
        scope.as_deref(),
        Some(
            "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
        )
    );
    assert_eq!(code, "AuthorizationFailed");
    assert_eq!(error.kind(), ArmErrorKind::Forbidden);
    assert_eq!(error.kind().as_str(), "forbidden");
    let message = error.to_string();
    assert!(
        message.contains("jitNetworkAccessPolicies/initiate/action"),
        "{message}"
    );
    let hint = error.hint();
    assert!(hint.contains("initiate/action"), "{hint}");
    assert!(hint.contains(RBAC_DOCS_URL), "{hint}");
    assert!(RBAC_DOCS_URL.ends_with("/docs/rbac.md"));
}

#[test]
fn linked_authorization_failure_names_the_linked_action() {
    let message = "The client 'user@contoso.com' with object id '1' has permission to perform action 'Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action' on scope '/subscriptions/a/resourceGroups/rg'; however, it does not have permission to perform action(s) 'Microsoft.Compute/virtualMachines/read' on the linked scope(s) '/subscriptions/a/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1' (respectively) or the linked scope(s) are invalid.";
    let (action, scope) = parse_authorization_failure(message);
    assert_eq!(
        action.as_deref(),
        Some("Microsoft.Compute/virtualMachines/read")
    );
    assert_eq!(
        scope.as_deref(),
        Some("/subscriptions/a/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1")
    );
}

#[test]
fn forbidden_without_a_recognisable_message_still_points_to_the_docs() {
    let error = error(
        403,
        r#"{"error":{"code":"Forbidden","message":"Access denied."}}"#,
    );
    assert!(matches!(&error, ArmError::Forbidden { action: None, .. }));
    assert!(error.to_string().contains("Access denied."));
    assert!(error.hint().contains(RBAC_DOCS_URL));
}

#[test]
fn not_found_keeps_what_was_not_found() {
    let error = error(
        404,
        r#"{"error":{"code":"ResourceNotFound","message":"The Resource 'Microsoft.Compute/virtualMachines/nope' under resource group 'rg-web' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"}}"#,
    );
    assert!(error.is_not_found());
    assert_eq!(error.code(), Some("ResourceNotFound"));
    assert!(error.to_string().contains("virtualMachines/nope"));
    assert!(error.to_string().contains("rg-web"));
    assert!(error.hint().contains("jit list"));
}

#[test]
fn expired_token_is_unauthorized() {
    let error = error(
        401,
        r#"{"error":{"code":"ExpiredAuthenticationToken","message":"The access token expiry UTC time '8/17/2017 10:54:41 PM' is earlier than current UTC time '8/17/2017 10:55:43 PM'."}}"#,
    );
    assert_eq!(error.kind(), ArmErrorKind::Unauthorized);
    assert_eq!(error.code(), Some("ExpiredAuthenticationToken"));
    assert!(error.hint().contains("az login"));
}

#[test]
fn throttled_carries_the_wait() {
    let error = ArmError::from_response(
        429,
        Some(Duration::from_secs(17)),
        br#"{"error":{"code":"SubscriptionRequestsThrottled","message":"Number of read requests for subscription exceeded the limit."}}"#,
    );
    assert!(matches!(
        &error,
        ArmError::Throttled { retry_after: Some(wait), .. } if *wait == Duration::from_secs(17)
    ));
    assert_eq!(
        error.to_string(),
        "Azure is throttling requests (retry after 17 s)"
    );
    assert!(error.hint().contains("17 s"));
}

#[test]
fn conflict_bad_request_and_server_errors() {
    let conflict = error(
        409,
        r#"{"error":{"code":"AnotherOperationInProgress","message":"Another operation on this or dependent resource is in progress."}}"#,
    );
    assert_eq!(conflict.kind(), ArmErrorKind::Conflict);
    assert_eq!(conflict.code(), Some("AnotherOperationInProgress"));

    let bad = error(
        400,
        r#"{"error":{"code":"BadRequest","message":"The given access request is not a subset of policy '/subscriptions/a/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default'. Please make sure that the access request is within the allowed policy properties."}}"#,
    );
    assert_eq!(bad.kind(), ArmErrorKind::BadRequest);
    assert!(bad.to_string().contains("not a subset of policy"));

    let server = error(
        500,
        r#"{"error":{"code":"InternalServerError","message":"Internal server error has occurred."}}"#,
    );
    assert!(matches!(
        &server,
        ArmError::Server {
            status: 500,
            not_retried: false,
            ..
        }
    ));
    assert_eq!(server.kind().as_str(), "server");
}

#[test]
fn resource_graph_details_are_part_of_the_message() {
    let error = error(
        400,
        r#"{"error":{"code":"BadRequest","message":"Please provide below info when asking for support: timestamp = 2026-11-28T10:00:00Z, correlationId = 1.","details":[{"code":"InvalidQuery","message":"Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying."},{"code":"ParserFailure","message":"Parser failure"}]}}"#,
    );
    let text = error.to_string();
    assert!(text.contains("Query is invalid"), "{text}");
    assert!(text.contains("Parser failure"), "{text}");
}

#[test]
fn bodies_that_are_not_cloud_errors() {
    let bare = error(400, r#"{"code":"InvalidParameter","message":"bare shape"}"#);
    assert_eq!(bare.code(), Some("InvalidParameter"));
    assert!(bare.to_string().contains("bare shape"));

    let html = error(502, "<html><body>Bad Gateway</body></html>");
    assert!(html.to_string().contains("Bad Gateway"));

    let empty = error(503, "");
    assert!(
        empty.to_string().contains("HTTP 503 with an empty body"),
        "{empty}"
    );

    let long = error(500, &"x".repeat(5000));
    assert!(long.to_string().len() < 400, "long bodies are cut short");
}

#[test]
fn kinds_have_stable_names() {
    let names: Vec<&str> = [
        ArmErrorKind::Unauthorized,
        ArmErrorKind::Forbidden,
        ArmErrorKind::NotFound,
        ArmErrorKind::BadRequest,
        ArmErrorKind::Conflict,
        ArmErrorKind::Throttled,
        ArmErrorKind::Server,
        ArmErrorKind::Transport,
        ArmErrorKind::InvalidResponse,
        ArmErrorKind::InvalidRequest,
        ArmErrorKind::OperationFailed,
        ArmErrorKind::Credential,
    ]
    .iter()
    .map(|kind| kind.as_str())
    .collect();
    assert_eq!(
        names,
        [
            "unauthorized",
            "forbidden",
            "not_found",
            "bad_request",
            "conflict",
            "throttled",
            "server",
            "transport",
            "invalid_response",
            "invalid_request",
            "operation_failed",
            "credential"
        ]
    );
}
