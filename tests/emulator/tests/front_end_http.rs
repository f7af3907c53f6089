//! The emulator's front door over real HTTPS: the generated CA, ARM's headers, routing,
//! every kind of injected fault, and the admin API.

mod front_end_support;

use std::time::Duration;

use front_end_support::{arm_get, client, error_code, service_principal_token, start, start_with};
use jiff::{SignedDuration, Timestamp};
use jit_emulator::{EmulatorOptions, FaultKind, FaultSpec};
use serde_json::{Value, json};

const SUBSCRIPTIONS: &str = "/subscriptions?api-version=2022-12-01";

#[tokio::test]
async fn https_is_trusted_through_the_generated_ca_only() {
    let emulator = start();
    let info = emulator.info();
    let pem = std::fs::read_to_string(&info.ca_cert).expect("ca.pem");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    let response = client(&emulator)
        .get(&info.my_ip_url)
        .send()
        .await
        .expect("GET /ip over TLS");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "ALPN offers h2"
    );

    let http1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("PEM")])
        .http1_only()
        .no_proxy()
        .build()
        .expect("client");
    let response = http1
        .get(&info.my_ip_url)
        .send()
        .await
        .expect("GET over HTTP/1.1");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.text().await.expect("text"), "198.51.100.7");

    // Another emulator's CA does not vouch for this one.
    let other = start();
    let error = client(&other)
        .get(&info.my_ip_url)
        .send()
        .await
        .expect_err("a foreign CA must not be trusted");
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn arm_answers_carry_arm_headers_and_the_virtual_date() {
    let emulator = start();
    let client = client(&emulator);
    let token = service_principal_token(&client, &emulator).await;
    emulator.advance_clock(SignedDuration::from_hours(48));

    let response = client
        .get(format!("{}{SUBSCRIPTIONS}", emulator.info().arm_endpoint))
        .bearer_auth(&token)
        .header(
            "x-ms-correlation-request-id",
            "7d2e4f5a-0000-4000-8000-000000000001",
        )
        .header("x-ms-client-request-id", "client-request-1")
        .header("x-ms-return-client-request-id", "true")
        .send()
        .await
        .expect("GET");
    let headers = response.headers();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        text("x-ms-correlation-request-id"),
        "7d2e4f5a-0000-4000-8000-000000000001"
    );
    assert_eq!(text("x-ms-client-request-id"), "client-request-1");
    assert!(
        uuid::Uuid::parse_str(&text("x-ms-request-id")).is_ok(),
        "{headers:?}"
    );
    let routing = regex::Regex::new(r"^[A-Z]+:\d{8}T\d{6}Z:[0-9a-f-]{36}$").expect("regex");
    assert!(
        routing.is_match(&text("x-ms-routing-request-id")),
        "{headers:?}"
    );
    assert!(
        text("x-ms-ratelimit-remaining-subscription-reads")
            .parse::<u32>()
            .is_ok()
    );
    assert!(!headers.contains_key("x-ms-ratelimit-remaining-subscription-writes"));
    assert_eq!(text("cache-control"), "no-cache");
    assert_eq!(text("content-type"), "application/json; charset=utf-8");

    let date = jiff::fmt::rfc2822::parse(&text("date"))
        .expect("an RFC 1123 Date")
        .timestamp();
    let expected = emulator.clock().now();
    assert!(
        date.duration_until(expected).abs() < SignedDuration::from_mins(5),
        "Date {date} should follow the virtual clock {expected}"
    );
    assert!(date.duration_since(Timestamp::now()) > SignedDuration::from_hours(47));

    // Writes and deletes report their own budgets; correlation ids are made up when absent.
    let write = client
        .put(format!(
            "{}/subscriptions/{}/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/x?api-version=2020-01-01",
            emulator.info().arm_endpoint, emulator.info().subscription_ids[0]
        ))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .expect("PUT");
    assert!(
        write
            .headers()
            .contains_key("x-ms-ratelimit-remaining-subscription-writes")
    );
    assert!(
        uuid::Uuid::parse_str(
            write.headers()["x-ms-correlation-request-id"]
                .to_str()
                .expect("ASCII")
        )
        .is_ok()
    );
    let delete = client
        .delete(format!(
            "{}/subscriptions/{}/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/x?api-version=2020-01-01",
            emulator.info().arm_endpoint, emulator.info().subscription_ids[0]
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("DELETE");
    assert!(
        delete
            .headers()
            .contains_key("x-ms-ratelimit-remaining-subscription-deletes")
    );
}

#[tokio::test]
async fn arm_paths_match_case_insensitively() {
    let emulator = start();
    let client = client(&emulator);
    let token = service_principal_token(&client, &emulator).await;
    let lower = arm_get(&client, &emulator, SUBSCRIPTIONS, &token).await;
    assert_eq!(lower.status(), 200);
    let lower: Value = lower.json().await.expect("JSON");
    let upper = arm_get(
        &client,
        &emulator,
        "/SUBSCRIPTIONS?api-version=2022-12-01",
        &token,
    )
    .await;
    assert_eq!(upper.status(), 200);
    let upper: Value = upper.json().await.expect("JSON");
    assert_eq!(lower, upper);

    let ip = client
        .get(format!("{}/IP", emulator.info().arm_endpoint))
        .send()
        .await
        .expect("GET /IP");
    assert_eq!(ip.text().await.expect("text"), "198.51.100.7");
}

#[tokio::test]
async fn a_missing_or_unknown_api_version_is_a_cloud_error() {
    let emulator = start();
    let client = client(&emulator);
    let token = service_principal_token(&client, &emulator).await;
    let subscription = &emulator.info().subscription_ids[0];
    let policies = format!(
        "/subscriptions/{subscription}/providers/Microsoft.Security/jitNetworkAccessPolicies"
    );

    let missing = arm_get(&client, &emulator, &policies, &token).await;
    assert_eq!(missing.status(), 400);
    let body: Value = missing.json().await.expect("JSON");
    assert_eq!(error_code(&body), "MissingApiVersionParameter");

    let unknown = arm_get(
        &client,
        &emulator,
        &format!("{policies}?api-version=1999-01-01"),
        &token,
    )
    .await;
    assert_eq!(unknown.status(), 400);
    let body: Value = unknown.json().await.expect("JSON");
    assert_eq!(error_code(&body), "InvalidApiVersionParameter");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("2020-01-01"),
        "names the supported versions: {message}"
    );
}

#[tokio::test]
async fn cloud_metadata_points_az_at_the_emulator() {
    let emulator = start();
    let client = client(&emulator);
    let base = &emulator.info().arm_endpoint;
    let metadata: Value = client
        .get(format!("{base}/metadata/endpoints?api-version=2022-09-01"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(metadata["resourceManager"], format!("{base}/"));
    assert_eq!(
        metadata["authentication"]["loginEndpoint"],
        format!("{base}/")
    );
    assert_eq!(
        metadata["authentication"]["audiences"][0],
        "https://management.core.windows.net/"
    );
    let list: Value = client
        .get(format!("{base}/metadata/endpoints?api-version=2019-05-01"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(list[0]["resourceManager"], format!("{base}/"));
}

fn fault(method: Option<&str>, path: &str, fault: FaultKind, times: Option<u32>) -> FaultSpec {
    FaultSpec {
        method: method.map(str::to_owned),
        path: Some(path.to_owned()),
        path_regex: None,
        fault,
        probability: None,
        times,
    }
}

#[tokio::test]
async fn throttling_faults_answer_429_with_retry_after_for_the_next_n_calls() {
    let emulator = start();
    let client = client(&emulator);
    let token = service_principal_token(&client, &emulator).await;
    let id = emulator
        .inject_fault(fault(
            Some("GET"),
            "/subscriptions",
            FaultKind::Throttle {
                retry_after_seconds: 7,
            },
            Some(2),
        ))
        .expect("fault");
    for _ in 0..2 {
        let response = arm_get(&client, &emulator, SUBSCRIPTIONS, &token).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
        assert!(
            response.headers().contains_key("x-ms-request-id"),
            "ARM headers on faults too"
        );
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(error_code(&body), "TenantRequestsThrottled");
    }
    let third = arm_get(&client, &emulator, SUBSCRIPTIONS, &token).await;
    assert_ne!(third.status(), 429);
    let status = emulator
        .faults()
        .into_iter()
        .find(|fault| fault.id == id)
        .expect("listed");
    assert_eq!((status.hits, status.remaining), (2, Some(0)));

    let log = emulator.requests();
    let statuses: Vec<Option<u16>> = log
        .iter()
        .filter(|record| record.path.starts_with("/subscriptions"))
        .map(|record| record.status)
        .collect();
    assert_eq!(statuses[..2], [Some(429), Some(429)]);
    assert_eq!(log.iter().filter(|record| record.faults == [id]).count(), 2);
}

#[tokio::test]
async fn server_error_expired_token_and_forbidden_faults() {
    let emulator = start();
    let client = client(&emulator);
    let token = service_principal_token(&client, &emulator).await;
    let subscription = emulator.info().subscription_ids[0].clone();
    let vms = format!(
        "/subscriptions/{subscription}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01"
    );

    let cases = [
        (FaultKind::InternalError, 500, "InternalServerError"),
        (
            FaultKind::ServiceUnavailable {
                retry_after_seconds: Some(3),
            },
            503,
            "ServiceUnavailable",
        ),
        (FaultKind::ExpiredToken, 401, "ExpiredAuthenticationToken"),
        (FaultKind::Forbidden, 403, "AuthorizationFailed"),
        (
            FaultKind::Throttle {
                retry_after_seconds: 1,
            },
            429,
            "SubscriptionRequestsThrottled",
        ),
    ];
    for (kind, status, code) in cases {
        emulator.clear_faults();
        emulator
            .inject_fault(fault(
                None,
                "/subscriptions/*/virtualmachines",
                kind.clone(),
                Some(1),
            ))
            .expect("fault");
        let response = arm_get(&client, &emulator, &vms, &token).await;
        assert_eq!(response.status(), status, "{kind:?}");
        if status == 503 {
            assert_eq!(response.headers()["retry-after"], "3");
        }
        if status == 401 {
            assert!(response.headers().contains_key("www-authenticate"));
        }
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(error_code(&body), code, "{body}");
        if status == 403 {
            let message = body["error"]["message"].as_str().expect("message");
            let client_id = &emulator.info().service_principal.client_id;
            assert!(
                message.contains(&format!("The client '{client_id}'")),
                "{message}"
            );
            assert!(
                message.contains("'Microsoft.Compute/virtualMachines/read'"),
                "{message}"
            );
        }
        // Only the next call was hit.
        assert_ne!(
            arm_get(&client, &emulator, &vms, &token).await.status(),
            status,
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn faults_reach_the_token_endpoint_with_entra_error_bodies() {
    let emulator = start();
    let client = client(&emulator);
    emulator
        .inject_fault(FaultSpec {
            path_regex: Some("/oauth2/v2\\.0/token$".to_owned()),
            path: None,
            ..fault(
                Some("POST"),
                "",
                FaultKind::ServiceUnavailable {
                    retry_after_seconds: None,
                },
                Some(1),
            )
        })
        .expect("fault");
    let (status, body) = front_end_support::token_request(
        &client,
        &emulator,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "temporarily_unavailable");
    // The fault is used up: the endpoint answers for itself again.
    let (status, _) = front_end_support::token_request(
        &client,
        &emulator,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn latency_faults_delay_but_still_answer() {
    let emulator = start();
    let client = client(&emulator);
    let id = emulator
        .inject_fault(fault(
            None,
            "/ip",
            FaultKind::Latency {
                delay: "200ms".to_owned(),
            },
            None,
        ))
        .expect("fault");
    for _ in 0..3 {
        let response = client
            .get(&emulator.info().my_ip_url)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200);
    }
    let status = emulator
        .faults()
        .into_iter()
        .find(|fault| fault.id == id)
        .expect("listed");
    assert_eq!(status.hits, 3);
}

#[tokio::test]
async fn connection_reset_faults_drop_the_connection_without_an_answer() {
    let emulator = start();
    let client = client(&emulator);
    emulator
        .inject_fault(fault(
            Some("GET"),
            "/ip",
            FaultKind::ConnectionReset,
            Some(1),
        ))
        .expect("fault");
    let error = client
        .get(&emulator.info().my_ip_url)
        .send()
        .await
        .expect_err("the connection is dropped");
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    assert!(error.status().is_none());
    let reset = emulator
        .requests()
        .into_iter()
        .find(|record| record.path == "/ip")
        .expect("logged");
    assert_eq!(reset.status, None);
    // The next call gets through on a new connection (a fresh client, so no pooled
    // connection from before the reset is tried).
    let response = front_end_support::client(&emulator)
        .get(&emulator.info().my_ip_url)
        .send()
        .await
        .expect("GET after the reset");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn probability_zero_never_fires() {
    let emulator = start();
    let client = client(&emulator);
    let id = emulator
        .inject_fault(FaultSpec {
            probability: Some(0.0),
            ..fault(None, "*", FaultKind::InternalError, None)
        })
        .expect("fault");
    for _ in 0..5 {
        assert_eq!(
            client
                .get(&emulator.info().my_ip_url)
                .send()
                .await
                .expect("GET")
                .status(),
            200
        );
    }
    assert_eq!(emulator.faults()[0].id, id);
    assert_eq!(emulator.faults()[0].hits, 0);
}

#[tokio::test]
async fn faults_from_options_are_active_from_the_start() {
    let emulator = start_with(EmulatorOptions {
        faults: vec![fault(None, "/ip", FaultKind::InternalError, Some(1))],
        ..EmulatorOptions::default()
    });
    let response = client(&emulator)
        .get(&emulator.info().my_ip_url)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 500);
}

#[tokio::test]
async fn faults_from_the_world_file_are_active_from_the_start() {
    let mut world = jit_emulator::World::default_world();
    world.faults.push(fault(
        Some("GET"),
        "/ip",
        FaultKind::ServiceUnavailable {
            retry_after_seconds: Some(5),
        },
        Some(1),
    ));
    let emulator = jit_emulator::Emulator::start(world).expect("emulator starts");
    let client = client(&emulator);
    let response = client
        .get(&emulator.info().my_ip_url)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let response = client
        .get(&emulator.info().my_ip_url)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_admin_api_manages_faults() {
    let emulator = start();
    let client = client(&emulator);
    let admin = &emulator.info().admin_endpoint;
    let created = client
        .post(format!("{admin}/faults"))
        .json(&json!([
            {"method": "GET", "path": "/ip", "fault": {"kind": "throttle", "retry_after_seconds": 2}, "times": 1},
            {"path_regex": "^/nothing$", "fault": {"kind": "internal_error"}}
        ]))
        .send()
        .await
        .expect("POST faults");
    assert_eq!(created.status(), 201);
    let ids: Value = created.json().await.expect("JSON");
    assert_eq!(ids["ids"].as_array().map(Vec::len), Some(2));

    let throttled = client
        .get(&emulator.info().my_ip_url)
        .send()
        .await
        .expect("GET");
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "2");

    let listed: Value = client
        .get(format!("{admin}/faults"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed["value"][0]["hits"], 1);
    assert_eq!(listed["value"][0]["remaining"], 0);
    assert_eq!(listed["value"][1]["hits"], 0);

    let bad = client
        .post(format!("{admin}/faults"))
        .json(&json!({"path": "/x", "fault": {"kind": "latency", "delay": "whenever"}}))
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status(), 400);

    let second_id = ids["ids"][1].as_u64().expect("id");
    let removed = client
        .delete(format!("{admin}/faults/{second_id}"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(removed.status(), 204);
    let cleared = client
        .delete(format!("{admin}/faults"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(cleared.status(), 204);
    assert!(emulator.faults().is_empty());
}

#[tokio::test]
async fn the_admin_api_moves_the_clock() {
    let emulator = start();
    let client = client(&emulator);
    let admin = &emulator.info().admin_endpoint;
    let before = emulator.clock().now();
    let moved = client
        .post(format!("{admin}/CLOCK"))
        .json(&json!({"advance": "PT1H"}))
        .send()
        .await
        .expect("POST clock");
    assert_eq!(moved.status(), 200);
    let moved = client
        .post(format!("{admin}/clock"))
        .json(&json!({"advance": "30m"}))
        .send()
        .await
        .expect("POST clock");
    let body: Value = moved.json().await.expect("JSON");
    let now: Timestamp = body["now"]
        .as_str()
        .expect("now")
        .parse()
        .expect("a timestamp");
    assert!(now.duration_since(before) >= SignedDuration::from_mins(90));
    assert_eq!(emulator.clock().offset(), SignedDuration::from_mins(90));
    let offset: SignedDuration = body["offset"]
        .as_str()
        .expect("offset")
        .parse()
        .expect("a duration");
    assert_eq!(offset, SignedDuration::from_mins(90));

    let bad = client
        .post(format!("{admin}/clock"))
        .json(&json!({"advance": "a while"}))
        .send()
        .await
        .expect("POST clock");
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn my_ip_can_be_overridden_and_reset() {
    let emulator = start();
    let client = client(&emulator);
    let info = emulator.info();
    let admin = &info.admin_endpoint;
    let json_ip: Value = client
        .get(format!("{}?format=json", info.my_ip_url))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(json_ip, json!({"ip": "198.51.100.7"}));

    let set = client
        .put(format!("{admin}/my-ip"))
        .json(&json!({"address": "2001:db8::7"}))
        .send()
        .await
        .expect("PUT my-ip");
    assert_eq!(set.status(), 200);
    assert_eq!(
        client
            .get(&info.my_ip_url)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("text"),
        "2001:db8::7"
    );

    emulator.set_my_ip(None);
    let moved = client
        .put(format!("{admin}/client-ip"))
        .json(&json!({"address": "203.0.113.9"}))
        .send()
        .await
        .expect("PUT client-ip");
    assert_eq!(moved.status(), 200);
    assert_eq!(
        client
            .get(&info.my_ip_url)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("text"),
        "203.0.113.9"
    );
    let bad = client
        .put(format!("{admin}/client-ip"))
        .json(&json!({"address": "not an address"}))
        .send()
        .await
        .expect("PUT client-ip");
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn the_admin_api_reports_state_requests_and_refuses_nonsense() {
    let emulator = start();
    let client = client(&emulator);
    let admin = &emulator.info().admin_endpoint;

    let state = client
        .get(format!("{admin}/state"))
        .send()
        .await
        .expect("GET state");
    assert_eq!(state.status(), 200);
    let state: Value = state.json().await.expect("JSON");
    let snapshot = emulator.snapshot();
    assert!(
        state.as_object().is_some_and(|fields| !fields.is_empty()),
        "a state dump"
    );
    let keys = |value: &Value| {
        value
            .as_object()
            .map(|fields| fields.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(
        keys(&state),
        keys(&snapshot),
        "the same dump as Emulator::snapshot"
    );

    let page = client
        .put(format!("{admin}/page-size"))
        .json(&json!({"size": 1}))
        .send()
        .await
        .expect("PUT page-size");
    assert_eq!(page.status(), 200);
    let zero = client
        .put(format!("{admin}/page-size"))
        .json(&json!({"size": 0}))
        .send()
        .await
        .expect("PUT page-size");
    assert_eq!(zero.status(), 400);

    // Paging applies to ARM lists.
    let token = service_principal_token(&client, &emulator).await;
    let first_page: Value = arm_get(&client, &emulator, SUBSCRIPTIONS, &token)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        first_page["value"].as_array().map(Vec::len),
        Some(1),
        "{first_page}"
    );
    assert!(first_page["nextLink"].as_str().is_some(), "{first_page}");

    let subscription = &emulator.info().subscription_ids[0];
    let vm_id = format!(
        "/subscriptions/{subscription}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/api-01"
    );
    let powered = client
        .post(format!("{admin}/power"))
        .json(&json!({"vm_id": vm_id, "running": false}))
        .send()
        .await
        .expect("POST power");
    assert_eq!(powered.status(), 200);
    let view = arm_get(
        &client,
        &emulator,
        &format!("{vm_id}?api-version=2024-07-01&$expand=instanceView"),
        &token,
    )
    .await
    .text()
    .await
    .expect("text");
    assert!(view.contains("PowerState/deallocated"), "{view}");

    let unknown_vm = client
        .post(format!("{admin}/power"))
        .json(&json!({"vm_id": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/none", "running": false}))
        .send()
        .await
        .expect("POST power");
    assert_eq!(unknown_vm.status(), 404);

    let identity: Value = client
        .get(format!("{admin}/managed-identity"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        identity["identity_endpoint"],
        emulator.managed_identity().endpoint
    );

    assert_eq!(
        client
            .get(format!("{admin}/nowhere"))
            .send()
            .await
            .expect("GET")
            .status(),
        404
    );
    assert_eq!(
        client
            .delete(format!("{admin}/clock"))
            .send()
            .await
            .expect("DELETE")
            .status(),
        405
    );
    let malformed = client
        .post(format!("{admin}/clock"))
        .body("{")
        .send()
        .await
        .expect("POST");
    assert_eq!(malformed.status(), 400);

    // The request log holds the non-admin calls only, without headers or bodies.
    let logged_before = emulator.requests();
    assert!(
        logged_before
            .iter()
            .any(|record| record.path.starts_with("/subscriptions?")),
        "{logged_before:?}"
    );
    let cleared = client
        .delete(format!("{admin}/requests"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(cleared.status(), 204);
    assert!(emulator.requests().is_empty());
    client
        .get(format!("{}?format=json", emulator.info().my_ip_url))
        .send()
        .await
        .expect("GET");
    let log: Value = client
        .get(format!("{admin}/requests"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let entries = log["value"].as_array().expect("a list");
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(entries[0]["method"], "GET");
    assert_eq!(entries[0]["path"], "/ip?format=json");
    assert_eq!(entries[0]["status"], 200);
    assert!(entries[0]["time"].as_str().is_some());
}

#[tokio::test]
async fn dropping_the_handle_stops_serving_and_removes_the_state_dir() {
    let emulator = start();
    let state_dir = emulator.state_dir().to_owned();
    let url = emulator.info().my_ip_url.clone();
    let client = client(&emulator);
    assert_eq!(client.get(&url).send().await.expect("GET").status(), 200);
    drop(emulator);
    assert!(
        !state_dir.exists(),
        "{} is left behind",
        state_dir.display()
    );
    let fresh = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let error = fresh
        .get(&url)
        .send()
        .await
        .expect_err("nothing listens any more");
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn a_given_state_dir_is_kept() {
    let directory = tempfile::tempdir().expect("temp dir");
    let state_dir = directory.path().join("state");
    let emulator = start_with(EmulatorOptions {
        state_dir: Some(state_dir.clone()),
        ..EmulatorOptions::default()
    });
    assert_eq!(emulator.info().ca_cert, state_dir.join("ca.pem"));
    drop(emulator);
    assert!(state_dir.join("ca.pem").exists());
    assert!(state_dir.join("bin/az").exists());
}

#[test]
fn only_loopback_addresses_may_be_bound() {
    let result = jit_emulator::Emulator::start_with(
        jit_emulator::World::default_world(),
        EmulatorOptions {
            listen: "0.0.0.0:0".parse().expect("address"),
            ..EmulatorOptions::default()
        },
    );
    let error = result.expect_err("0.0.0.0 is refused");
    assert!(error.to_string().contains("loopback"), "{error}");
}
