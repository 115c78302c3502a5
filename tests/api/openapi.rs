//! The OpenAPI document of `/api/v1` (`src/http/api.openapi.yaml`) against the router: every
//! operation served is documented and every documented one is served, each documents the
//! API's one error body for its failures, and the live answers to bad input have that body.
//! (schemathesis checks the rest against the running binary in CI: `tests/schemathesis.sh`.)

use std::collections::BTreeSet;

use insurebot::http::api::Access;
use insurebot::http::{api_routes, openapi};
use reqwest::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::*;

const TOKEN: &str = "openapi-test-token-0123456789";

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

async fn spawn(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |s| s.api_token = Some(SecretString::from(TOKEN))).await
}

/// `(method, path)` of every documented operation, methods upper case.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                all.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    all
}

/// `$ref`s followed within the document.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            let target = document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} resolves"));
            resolve(document, target)
        }
        None => value,
    }
}

/// The path with every `{parameter}` filled with a value of its kind.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{phone}", "919800000001")
        .replace("{action}", "start")
}

/// The response is `status` with the API's error body; the body is returned.
async fn error_body(response: reqwest::Response, status: u16) -> Value {
    let url = response.url().clone();
    assert_eq!(response.status().as_u16(), status, "{url}");
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "application/json",
        "{url}"
    );
    let body: Value = response.json().await.expect("a JSON body");
    let object = body.as_object().expect("an object");
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, ["error", "problems"], "{url}: {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{url}: {body}"
    );
    for problem in body["problems"].as_array().expect("problems is a list") {
        let keys: Vec<&str> = problem
            .as_object()
            .expect("a problem is an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["field", "problem"], "{url}: {body}");
    }
    body
}

/// Sends `request` and checks it is refused with `status` in the API's error body.
async fn refused(request: reqwest::RequestBuilder, status: u16) -> Value {
    error_body(request.send().await.expect("request sent"), status).await
}

fn fields(body: &Value) -> Vec<&str> {
    body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect()
}

#[test]
fn every_served_operation_is_documented_and_every_documented_one_is_served() {
    let document = openapi::document();
    let served: BTreeSet<(String, String)> = api_routes()
        .operations()
        .into_iter()
        .map(|op| (op.method.as_str().to_owned(), op.path.to_owned()))
        .collect();
    let documented = documented(&document);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in src/http/api.openapi.yaml: {undocumented:?}; \
         documented but not served: {unserved:?}"
    );
    assert!(served.len() >= 11, "{served:?}");
    assert!(
        documented
            .iter()
            .all(|(_, path)| path.starts_with("/api/v1/")),
        "{documented:?}"
    );
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_api_path_is_routed_around_the_registry() {
    // `api_routes()` lists what it serves; a plain axum route to an `/api/` path elsewhere
    // would be served without being listed, so the comparison above would not see it.
    let around =
        regex::Regex::new(r#"\.(route|route_service|nest|nest_service)\(\s*"/api"#).unwrap();
    let mut files = Vec::new();
    rust_files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 20, "{files:?}");
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| around.is_match(&std::fs::read_to_string(f).unwrap()))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "add /api routes through insurebot::http::api::ApiRoutes, not axum directly: {offenders:?}"
    );
}

#[test]
fn an_operation_is_public_in_the_document_exactly_when_the_router_serves_it_without_the_token() {
    let document = openapi::document();
    assert_eq!(document["security"], json!([{ "bearer": [] }]));
    for op in api_routes().operations() {
        let described = &document["paths"][op.path][op.method.as_str().to_lowercase()];
        let public = described.get("security") == Some(&json!([]));
        assert_eq!(
            public,
            op.access == Access::Public,
            "{} {}",
            op.method,
            op.path
        );
    }
}

#[test]
fn every_operation_documents_its_failures_with_the_one_error_body() {
    let document = openapi::document();
    let error = json!({ "$ref": "#/components/schemas/Error" });
    for op in api_routes().operations() {
        let name = format!("{} {}", op.method, op.path);
        let operation = &document["paths"][op.path][op.method.as_str().to_lowercase()];
        let responses = operation["responses"].as_object().expect("responses");
        let mut wanted: Vec<&str> = Vec::new();
        if op.access == Access::Bearer {
            wanted.extend(["401", "429", "503"]);
        }
        if op.path.contains('{') {
            wanted.push("422");
        }
        if operation.get("requestBody").is_some() {
            wanted.extend(["413", "422"]);
        }
        for status in wanted {
            assert!(responses.contains_key(status), "{name} documents {status}");
        }
        for (status, response) in responses {
            if status.as_str() < "400" {
                continue;
            }
            let response = resolve(&document, response);
            assert_eq!(
                response["content"]["application/json"]["schema"], error,
                "{name} {status}"
            );
        }
    }
    let schema = &document["components"]["schemas"]["Error"];
    assert_eq!(schema["required"], json!(["error", "problems"]));
}

#[tokio::test]
async fn the_document_is_served_without_a_token_and_is_the_file() {
    let app = spawn(&Backend::Sqlite).await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let served: Value = response.json().await.unwrap();
    assert_eq!(served, openapi::document());
    assert_eq!(served["openapi"], "3.1.0");
}

#[tokio::test]
async fn every_bearer_operation_is_served_and_refuses_a_missing_token_in_the_error_body() {
    // One refused call per operation: more than the wrong-token throttle's default burst.
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.api_token = Some(SecretString::from(TOKEN));
        s.api.max_failures_per_minute = 1_000;
    })
    .await;
    for op in api_routes().operations() {
        let url = format!("{}{}", app.address, concrete(op.path));
        let response = app
            .http
            .request(op.method.clone(), &url)
            .send()
            .await
            .unwrap();
        match op.access {
            Access::Public => assert_eq!(response.status(), 200, "{url}"),
            Access::Bearer => {
                assert_eq!(
                    response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .map(|v| v.as_bytes()),
                    Some(&b"Bearer"[..]),
                    "{} {url}: {}",
                    op.method,
                    response.status()
                );
                error_body(response, 401).await;
            }
        }
    }
}

#[tokio::test]
async fn bad_input_is_refused_in_the_error_body_with_the_field_named() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let call = |method: reqwest::Method, path: &str| {
            app.http
                .request(method, format!("{}{path}", app.address))
                .bearer_auth(TOKEN)
        };
        use reqwest::Method;

        // Path parameters that do not parse: 422 naming them (axum says 400 in plain text).
        for path in [
            "/api/v1/outbox/abc",
            "/api/v1/notifications/99999999999999999999",
            "/api/v1/campaigns/1.5",
        ] {
            let body = refused(call(Method::GET, path), 422).await;
            assert_eq!(fields(&body), ["id"], "{path}: {body}");
        }
        let body = refused(call(Method::POST, "/api/v1/campaigns/1/restart"), 422).await;
        assert_eq!(fields(&body), ["action"], "{body}");
        assert!(
            body["problems"][0]["problem"]
                .as_str()
                .unwrap()
                .contains("start")
        );

        // A body of the wrong shape: the dotted path of the value that does not fit.
        let body = refused(call(Method::POST, "/api/v1/campaigns")
                .json(&json!({ "name": "x", "template": "policy_offer",
                               "audience": { "kind": "filter", "filter": { "has_policy": "yes" } } })), 422)
        .await;
        // Inside a tagged union serde reports the union itself, with what did not fit.
        assert_eq!(fields(&body), ["audience"], "{body}");
        assert!(
            body["problems"][0]["problem"]
                .as_str()
                .unwrap()
                .contains("boolean")
        );
        let body = refused(
            call(Method::POST, "/api/v1/campaigns").json(
                &json!({ "name": "x", "template": "policy_offer", "start_at": "soon",
                               "audience": { "kind": "filter" } }),
            ),
            422,
        )
        .await;
        assert_eq!(fields(&body), ["start_at"], "{body}");
        let body = refused(call(Method::POST, "/api/v1/consent").body("{not json"), 422).await;
        assert_eq!(fields(&body), ["body"], "{body}");
        // A campaign's rule: the field it is about.
        let body = refused(
            call(Method::POST, "/api/v1/campaigns").json(
                &json!({ "name": "x", "template": "policy_offer", "rate_per_second": 0,
                               "audience": { "kind": "filter", "params": ["a", "b"] } }),
            ),
            422,
        )
        .await;
        assert_eq!(fields(&body), ["rate_per_second"], "{body}");

        // Not found, and a state that does not allow the action.
        let body = refused(call(Method::GET, "/api/v1/outbox/424242"), 404).await;
        assert!(fields(&body).is_empty(), "{body}");
        refused(call(Method::GET, "/api/v1/campaigns/424242"), 404).await;
        refused(call(Method::GET, "/api/v1/nothing/here"), 404).await;
        let response = call(Method::POST, "/api/v1/campaigns")
            .json(&json!({ "name": "offer", "template": "policy_offer",
                           "audience": { "kind": "filter", "params": ["a", "b"] } }))
            .send()
            .await
            .expect("create a campaign");
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.expect("its id");
        let id = created["id"].as_i64().expect("created");
        let body = refused(
            call(Method::POST, &format!("/api/v1/campaigns/{id}/resume")),
            409,
        )
        .await;
        assert!(body["error"].as_str().unwrap().contains("draft"), "{body}");

        // A method the path does not serve: 405 with Allow, in the same body.
        let response = call(Method::DELETE, "/api/v1/campaigns")
            .send()
            .await
            .unwrap();
        let allow = response.headers()[ALLOW].to_str().unwrap().to_owned();
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
        error_body(response, 405).await;
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_in_the_error_body() {
    let app = spawn(&Backend::Sqlite).await;
    let big = format!(
        "{{\"phone\": \"919800000001\", \"change\": \"opt_out\", \"scope\": \"all\", \"x\": \"{}\"}}",
        "a".repeat(insurebot::http::api::MAX_BODY_BYTES)
    );
    for path in [
        "/api/v1/consent",
        "/api/v1/notifications",
        "/api/v1/campaigns",
    ] {
        let response = app
            .http
            .post(format!("{}{path}", app.address))
            .bearer_auth(TOKEN)
            .header("idempotency-key", "big-1")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        error_body(response, 413).await;
    }
}

#[tokio::test]
async fn wrong_tokens_past_the_allowance_get_a_429_in_the_error_body() {
    let app = spawn(&Backend::Sqlite).await;
    let call = || {
        app.http
            .get(format!("{}/api/v1/campaigns", app.address))
            .bearer_auth("wrong-token-0123456789")
            .send()
    };
    for _ in 0..app_allowance() {
        error_body(call().await.unwrap(), 401).await;
    }
    let response = call().await.unwrap();
    let retry: u64 = response.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    error_body(response, 429).await;
}

/// `api.max_failures_per_minute`'s default.
fn app_allowance() -> u32 {
    insurebot::config::Settings::default()
        .api
        .max_failures_per_minute
}
