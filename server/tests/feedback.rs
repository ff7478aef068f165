//! Feedback after the call: the customer rates an ended call once (1–5, an optional comment);
//! it is stored with the call, moves `callqueue_call_rating`, and the specialist's "Today" shows
//! the mean, the count and their own comments. Runs on SQLite and PostgreSQL.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn a_customer_rates_an_ended_call_once() {
    let server =
        TestServer::start_with(|c| c.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let doc = specialist(&server, "dr-rated").await;
    let ada = client();
    join_queue(&server, &ada).await;
    let accepted = accept_next(&server, &doc).await;
    let id = accepted["call"]["call"]["id"].as_str().unwrap().to_string();
    let call = |path: &str| server.url(&format!("/api/calls/appointment/{id}{path}"));
    let rate = |c: &reqwest::Client, body: serde_json::Value| {
        let (c, url) = (c.clone(), call("/feedback"));
        async move { post_json(&c, &url, body).await }
    };

    // Before the end: not yet.
    for who in [&ada, &doc] {
        let (status, _) = post_json(who, &call("/join"), json!({})).await;
        assert_eq!(status, 200);
    }
    let (status, body) = rate(&ada, json!({"rating": 5})).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = post_json(&doc, &call("/leave"), json!({})).await;
    assert_eq!(status, 200);

    // Bad ratings and comments are named; strangers and the specialist cannot rate.
    for (bad, says) in [
        (json!({"rating": 0}), "rating"),
        (json!({"rating": 6}), "rating"),
        (json!({"rating": 4, "comment": "x".repeat(501)}), "comment"),
        (json!({"rating": 4, "extra": 1}), "extra"),
    ] {
        let (status, body) = rate(&ada, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    let stranger = client();
    join_queue(&server, &stranger).await;
    assert_eq!(rate(&stranger, json!({"rating": 1})).await.0, 404);
    assert_eq!(rate(&doc, json!({"rating": 1})).await.0, 404);

    // Once.
    let (status, _) = rate(
        &ada,
        json!({"rating": 4, "comment": "  Kind and quick.\nThanks!  "}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = rate(&ada, json!({"rating": 1})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );

    // The specialist's day: the mean, the count, their comment.
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (status, day) = get_json(
        &doc,
        &format!(
            "{}?since={}",
            server.url("/api/groups/default/today"),
            urlencode(&since)
        ),
    )
    .await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(
        (day["ratings"].as_u64(), day["rating_average"].as_f64()),
        (Some(1), Some(4.0)),
        "{day}"
    );
    assert_eq!(day["feedback"][0]["comment"], "Kind and quick.\nThanks!");
    assert_eq!(day["feedback"][0]["rating"], 4);

    // The metric moved.
    let metrics = reqwest::get(format!("{}/metrics", server.metrics.as_ref().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("callqueue_call_rating_count{group=\"default\"} 1")),
        "{metrics}"
    );
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
