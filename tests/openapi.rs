//! The OpenAPI document is generated from the code: it must be a valid OpenAPI 3 document (checked
//! by an independent validator) and describe every route the router serves.
mod common;

use qaqpa::auth::Role;
use utoipa::OpenApi;

#[test]
fn openapi_document_covers_every_route() {
    let doc = serde_json::to_value(qaqpa::api::ApiDoc::openapi()).expect("serialises");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    for (method, path) in qaqpa::api::ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is routed but not documented"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|p| p.as_object().map_or(0, |m| m.len()))
        .sum();
    assert_eq!(
        documented,
        qaqpa::api::ROUTES.len(),
        "documented operations that are not routed"
    );
}

#[test]
fn openapi_document_passes_an_independent_validator() {
    let doc = serde_json::to_string(&qaqpa::api::ApiDoc::openapi()).expect("serialises");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, doc).expect("write");
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys, json; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')"])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "openapi-spec-validator (PyPI, listed in .ci/pip-packages) rejected the document or is missing:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_served() {
    let gw = common::Gateway::start("").await;
    let token = gw.key("edms-a", Role::Admin).await;
    for (method, path) in qaqpa::api::ROUTES {
        let url = format!(
            "{}{}",
            gw.url,
            path.replace("{id}", "00000000-0000-7000-8000-000000000000")
                .replace("{n}", "0")
                .replace("{service}", "none")
        );
        let req = match *method {
            "get" => gw.http.get(&url),
            _ => gw
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body("{}"),
        };
        let resp = req.bearer_auth(&token).send().await.expect("request");
        // A route that exists answers anything but 404-for-the-route or 405.
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            !body.contains("this route not found"),
            "{method} {path} is not routed"
        );
    }
    let served: serde_json::Value = gw
        .http
        .get(format!("{}/openapi.json", gw.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(served["paths"]["/v1/messages"].is_object());
    gw.stop().await;
}
