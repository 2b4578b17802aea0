//! `GET /api/openapi.json`: an OpenAPI 3.1 document whose references resolve, and whose paths and
//! methods are exactly what the running server routes.

use inbox_tests::TestEnv;
use inbox_tests::team::{Api, read};
use reqwest::Method;
use serde_json::Value;

inbox_store::on_both_backends!(inbox_tests::TestEnv; the_document_is_openapi_3_1_and_matches_the_served_routes);

/// Every route API.md names for the API binary (the sending route belongs to another issue).
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/api/openapi.json"),
    ("get", "/api/me"),
    ("post", "/api/messages/send"),
    ("get", "/api/workspaces/{workspace}"),
    ("patch", "/api/workspaces/{workspace}"),
    ("get", "/api/workspaces/{workspace}/members"),
    ("get", "/api/conversations"),
    ("get", "/api/conversations/counts"),
    ("get", "/api/conversations/{id}"),
    ("get", "/api/conversations/{id}/messages"),
    ("post", "/api/conversations/{id}/assign"),
    ("post", "/api/conversations/{id}/handover"),
    ("get", "/api/conversations/{id}/handover"),
    ("post", "/api/conversations/{id}/read"),
    ("post", "/api/conversations/{id}/status"),
    ("get", "/api/contacts"),
    ("post", "/api/contacts"),
    ("get", "/api/contacts/by-phone"),
    ("get", "/api/contacts/{id}"),
    ("patch", "/api/contacts/{id}"),
    ("delete", "/api/contacts/{id}"),
    ("get", "/api/events"),
    ("post", "/api/webhook/kapso"),
    ("get", "/api/webhook/kapso"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Whether an answer is the router's own "no such route" (as opposed to a handler's 404).
async fn route_missing(response: reqwest::Response) -> bool {
    match response.status().as_u16() {
        405 => true,
        404 => {
            let (_, body) = read(response).await;
            body["error"]["message"] == "Route not found."
        }
        _ => false,
    }
}

async fn the_document_is_openapi_3_1_and_matches_the_served_routes(env: TestEnv) {
    let direct = env.direct().await;
    let team = direct.team("acme").await;
    let server = env.api(&[]).await;
    let api = Api::new(&server);
    let doc = api.get_ok("/api/openapi.json", &team.owner.token).await;

    assert!(
        doc["openapi"].as_str().expect("openapi").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "unresolved $ref {r}");
    }

    let paths = doc["paths"].as_object().expect("paths");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                documented.push((method.to_owned(), path.clone()));
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}"
                );
                if op.get("security").is_some() {
                    assert!(
                        op["responses"].get("429").is_some(),
                        "{method} {path}: every authenticated route may answer 429"
                    );
                }
                if path.starts_with("/api/")
                    && !path.starts_with("/api/webhook")
                    && path != "/api/openapi.json"
                {
                    assert!(
                        op["responses"].get("401").is_some(),
                        "{method} {path} documents 401"
                    );
                    assert!(
                        op["security"].is_array(),
                        "{method} {path} documents its auth"
                    );
                }
            }
        }
    }
    let mut expected: Vec<(String, String)> = SPEC_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    documented.sort();
    expected.sort();
    assert_eq!(documented, expected);

    // The server routes every documented method of every documented path, and no other
    // method on those paths (axum answers 405 for those).
    for (path, item) in paths {
        let mut concrete = path
            .replace("{workspace}", "acme")
            .replace("{id}", "0190f5c4-7d2a-7c1e-9a4b-2f1d3c4b5a69");
        let required: Vec<String> = item
            .as_object()
            .into_iter()
            .flat_map(|ops| ops.values())
            .filter_map(|op| op["parameters"].as_array())
            .flatten()
            .filter(|p| p["in"] == "query" && p["required"] == true)
            .filter_map(|p| p["name"].as_str())
            .map(|name| match name {
                "workspace" => "workspace=acme".to_owned(),
                "phone" => "phone=081234567890".to_owned(),
                other => format!("{other}=x"),
            })
            .collect();
        if !required.is_empty() {
            concrete = format!("{concrete}?{}", required.join("&"));
        }
        for method in METHODS {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let mut request = api.request(m, &concrete, Some(&team.owner.token));
            if method != "get" && method != "delete" {
                request = request.json(&serde_json::json!({}));
            }
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            let missing = route_missing(response).await;
            assert_eq!(
                missing,
                item.get(method).is_none(),
                "{method} {concrete} answered {status}"
            );
        }
    }
}
