//! The OpenAPI document and the router agree: every route the router has is in the document
//! with the same methods, every operation in the document is answered by a route (not the
//! API's "no such endpoint" fallback), and the wire types are in it.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

/// (method, path) of every `.route(...)` in the app's router, read from its source: the
/// router cannot list its routes, and this is where they are declared, once.
fn declared_routes() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/app.rs");
    let mut routes = BTreeSet::new();
    for part in source.split(".route(").skip(1) {
        // Up to the end of this `.route(...)` call: its parentheses balance.
        let mut depth = 1;
        let end = part
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(part.len(), |(i, _)| i);
        let call = &part[..end];
        let Some(path) = call.split('"').nth(1) else {
            continue;
        };
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                i == 0
                    || !call.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && call.as_bytes()[i - 1] != b'_'
            });
            if called {
                routes.insert((method.to_string(), format!("/api{path}")));
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_and_every_one_answers() {
    let server = TestServer::start().await;
    let (status, doc) = get_json(&plain_client(), &server.url("/api/openapi.json")).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let declared = declared_routes();
    assert!(declared.len() >= 24, "{declared:?}");
    let missing: Vec<_> = declared.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "routes the document does not list: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented operations no route serves: {extra:?}"
    );

    // And the server itself answers each, rather than its fallbacks.
    let c = plain_client();
    for (method, path) in &documented {
        let url = server.url(
            &path
                .replace("{group}", "default")
                .replace("{sid}", "nosuch")
                .replace("{type}", "appointment")
                .replace("{id}", "nosuch"),
        );
        let r = c
            .request(method.to_uppercase().parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert_ne!(
            body["error"]["message"], "no such API endpoint",
            "{method} {path}"
        );
    }

    // The wire types, the streams' events and the sockets' messages are described.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Reservation",
        "CreateReservationRequest",
        "CallResponse",
        "QueueEvent",
        "CallEvent",
        "UserEvent",
        "ClientMessage",
        "ServerMessage",
        "SignalClient",
        "SignalServer",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
    let reservation = &schemas["Reservation"]["properties"];
    for field in [
        "reservation_status",
        "estimated_wait_earliest",
        "join_deadline",
    ] {
        assert!(reservation.get(field).is_some(), "Reservation.{field}");
    }
    server.stop().await;
}
