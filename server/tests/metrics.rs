//! What an operator sees: `/metrics` after a real flow, every value that should have moved, and
//! each request's id. One test in this file: the recorder is the process's, shared by every
//! server in it.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::*;
use serde_json::{Value, json};

/// `name{a="b",c="d"} value` lines: (name, labels) → value.
fn parse(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once("=\""))
            .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            .collect();
        out.insert(
            (name.to_string(), labels),
            value.parse().unwrap_or(f64::NAN),
        );
    }
    out
}

/// The value of the series `name` whose labels include `labels` (summed over the rest).
fn value(
    all: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    all.iter()
        .filter(|((n, l), _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn metrics_move_with_a_real_flow_and_requests_carry_an_id() {
    let server = TestServer::start_with(|c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        c.call_seconds = 600;
    })
    .await;
    let metrics_url = format!("{}/metrics", server.metrics.clone().unwrap());
    let scrape = || async {
        let r = plain_client().get(&metrics_url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        parse(&r.text().await.unwrap())
    };
    // Only /metrics there, and not on the public address.
    let other = format!("{}/other", server.metrics.clone().unwrap());
    assert_eq!(
        plain_client().get(&other).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        plain_client()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let doc = specialist(&server, "dr-metrics").await;
    let anna = client();
    let a = join_queue(&server, &anna).await;
    let bob = client();
    let b = join_queue(&server, &bob).await;
    let m = scrape().await;
    assert_eq!(
        value(&m, "callqueue_queue_length", &[("group", "default")]),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "callqueue_available_specialists",
            &[("group", "default")]
        ),
        1.0
    );

    // Bob leaves before a match: abandoned.
    let r = bob
        .delete(server.url(&format!("/api/groups/default/reservations/{}", sid(&b))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Anna is matched, joins, the specialist extends and then ends the call.
    let mut stream = SseReader::open(
        &anna,
        &server.url(&format!("/api/events/g/default/r/{}", sid(&a))),
        None,
    )
    .await;
    stream.next().await.unwrap();
    let m = scrape().await;
    assert_eq!(
        value(
            &m,
            "callqueue_open_connections",
            &[("kind", "event_stream")]
        ),
        1.0
    );
    let accepted = accept_next(&server, &doc).await;
    let call = accepted["call"]["call"]["id"].as_str().unwrap().to_string();
    let call_url = server.url(&format!("/api/calls/appointment/{call}"));
    assert_eq!(
        anna.post(format!("{call_url}/join"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        doc.post(format!("{call_url}/join"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = doc
        .patch(&call_url)
        .json(&json!({"settings_override": {"limits": {"max_duration_seconds": 1200}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        doc.post(format!("{call_url}/leave"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(stream);

    // A second customer now gets an estimate (a call has completed), and is matched against it.
    let carol = client();
    let c = join_queue(&server, &carol).await;
    assert!(c["estimated_wait_until"].is_string(), "{c}");
    accept_next(&server, &doc).await;

    let m = scrape().await;
    let group = [("group", "default")];
    assert_eq!(value(&m, "callqueue_queue_length", &group), 0.0);
    assert_eq!(
        value(&m, "callqueue_wait_to_match_seconds_count", &group),
        2.0
    );
    assert_eq!(
        value(&m, "callqueue_wait_to_join_seconds_count", &group),
        1.0
    );
    assert_eq!(
        value(&m, "callqueue_estimate_error_seconds_count", &group),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "callqueue_abandoned_total",
            &[("group", "default"), ("reason", "left")]
        ),
        1.0
    );
    assert_eq!(value(&m, "callqueue_calls_started_total", &group), 1.0);
    assert_eq!(
        value(
            &m,
            "callqueue_calls_ended_total",
            &[("group", "default"), ("reason", "specialist_left")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "callqueue_extensions_total",
            &[("group", "default"), ("kind", "session")]
        ),
        1.0
    );
    let created = [
        ("route", "/api/groups/{group}/reservations"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert_eq!(value(&m, "callqueue_http_requests_total", &created), 3.0);
    assert!(
        value(
            &m,
            "callqueue_http_request_duration_seconds_count",
            &[("route", "/api/groups/{group}/accept")]
        ) >= 2.0
    );
    // The closed stream is no longer counted (its task notices the drop a moment later).
    let mut open = f64::NAN;
    for _ in 0..50 {
        open = value(
            &scrape().await,
            "callqueue_open_connections",
            &[("kind", "event_stream")],
        );
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0.0);

    // Every answer names its request; a sane id from a proxy is kept, anything else replaced.
    let r = plain_client()
        .get(server.url("/api/health"))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 16, "{id}");
    let r = plain_client()
        .get(server.url("/api/health"))
        .header("x-request-id", "lb-42.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "lb-42.a_b");
    let r = plain_client()
        .get(server.url("/api/health"))
        .header("x-request-id", "no spaces <here>")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "no spaces <here>");
    let _: Value = r.json().await.unwrap();

    // Made-up methods and paths mint no series: they are counted as `other` and `unmatched`.
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        let r = plain_client()
            .request(method, server.url(&format!("/api/nothing-{i}")))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let m = scrape().await;
    let series: Vec<_> = m
        .keys()
        .filter(|(name, _)| name == "callqueue_http_requests_total")
        .collect();
    assert!(
        series
            .iter()
            .all(|(_, l)| !l["method"].starts_with("FOO") && !l["route"].contains("nothing")),
        "{series:?}"
    );
    assert!(value(&m, "callqueue_http_requests_total", &[("method", "other")]) >= 20.0);
    server.stop().await;
}
