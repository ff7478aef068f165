//! The customer's journey as the server sees it: the check-in (for specialists' eyes only, and
//! checked field by field), and "I need a moment" on the time to join.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const MATCHED: &str = "GROUP_RESERVATION_STATUS_MATCHED";
const EXPIRED: &str = "GROUP_RESERVATION_STATUS_EXPIRED";

async fn create(server: &TestServer, c: &reqwest::Client, body: &str) -> (u16, Value) {
    let r = c
        .post(server.url("/api/groups/default/reservations"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_check_in_reaches_specialists_and_nobody_else() {
    let server = TestServer::start().await;
    let doc = specialist(&server, "dr-who").await;
    let mut queue = SseReader::open(&doc, &server.url("/api/groups/default/events"), None).await;
    assert_eq!(
        queue.next().await.unwrap().event.as_deref(),
        Some("queue.snapshot")
    );

    let anna = client();
    let (status, mine) = create(
        &server,
        &anna,
        r#"{"name":"  Anna Berg ","reason":"My router blinks red\nsince Monday"}"#,
    )
    .await;
    assert_eq!(status, 201, "{mine}");
    let sid = sid(&mine);
    // The customer's own copies never carry it.
    assert!(mine.get("customer_name").is_none() && mine.get("reason").is_none());
    let own = server.url(&format!("/api/groups/default/reservations/{sid}"));
    let (_, read) = get_json(&anna, &own).await;
    assert!(read.get("customer_name").is_none(), "{read}");
    let mut stream = SseReader::open(
        &anna,
        &server.url(&format!("/api/events/g/default/r/{sid}")),
        None,
    )
    .await;
    let first = stream.next().await.unwrap().json();
    assert!(first.get("customer_name").is_none(), "{first}");

    // The specialist: in the queue stream, the queue, the reservation, the accept and the call.
    let added = queue.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(added.event.as_deref(), Some("reservation.added"));
    assert_eq!(added.json()["reservation"]["customer_name"], "Anna Berg");
    assert_eq!(
        added.json()["reservation"]["reason"],
        "My router blinks red\nsince Monday"
    );
    let (_, q) = get_json(&doc, &server.url("/api/groups/default/queue")).await;
    assert_eq!(q["reservations"][0]["customer_name"], "Anna Berg");
    let (_, theirs) = get_json(&doc, &own).await;
    assert_eq!(theirs["customer_name"], "Anna Berg");
    let accepted = accept_next(&server, &doc).await;
    assert_eq!(accepted["reservation"]["customer_name"], "Anna Berg");
    assert_eq!(accepted["call"]["customer_name"], "Anna Berg");
    let call = accepted["call"]["call"]["id"].as_str().unwrap();
    let call_url = server.url(&format!("/api/calls/appointment/{call}"));
    let (_, for_doc) = get_json(&doc, &call_url).await;
    assert_eq!(for_doc["reason"], "My router blinks red\nsince Monday");
    let (_, for_anna) = get_json(&anna, &call_url).await;
    assert!(for_anna.get("customer_name").is_none() && for_anna.get("reason").is_none());
    // The matched reservation reaches the customer without it too.
    let matched = stream
        .next_within(Duration::from_secs(5))
        .await
        .unwrap()
        .json();
    assert_eq!(matched["reservation_status"], MATCHED);
    assert!(matched.get("customer_name").is_none(), "{matched}");

    // No body, an empty object, or blank fields: a check-in without them.
    for body in ["", "{}", r#"{"name":"   ","reason":""}"#] {
        let (status, r) = create(&server, &client(), body).await;
        assert_eq!(status, 201, "{body:?}: {r}");
    }
    let (_, q) = get_json(&doc, &server.url("/api/groups/default/queue")).await;
    let last = q["reservations"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(last.get("customer_name").is_none(), "{last}");
    server.stop().await;
}

#[tokio::test]
async fn bad_check_ins_get_400_naming_the_field() {
    let server = TestServer::start().await;
    let long_name = format!(r#"{{"name":"{}"}}"#, "n".repeat(81));
    let long_reason = format!(r#"{{"reason":"{}"}}"#, "r".repeat(501));
    for (body, field) in [
        (long_name.as_str(), "name"),
        (long_reason.as_str(), "reason"),
        (r#"{"name":"An\u0007na"}"#, "name"),
        (r#"{"reason":"tab\there"}"#, "reason"),
        (r#"{"name":5}"#, "name"),
        (r#"{"reason":["a"]}"#, "reason"),
        (r#"{"nickname":"Anna"}"#, "nickname"),
        (r#"{"name":"Anna""#, "JSON"),
        (r#"["Anna"]"#, "object"),
    ] {
        let (status, r) = create(&server, &client(), body).await;
        assert_eq!(status, 400, "{body}: {r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    // Exactly at the limits is fine.
    let body = json!({"name": "é".repeat(80), "reason": "r".repeat(500)}).to_string();
    assert_eq!(create(&server, &client(), &body).await.0, 201);
    let (_, status) = get_json(&client(), &server.url("/api/groups/default/status")).await;
    assert_eq!(status["name_required"], false);
    server.stop().await;

    let server = TestServer::start_with(|c| c.require_name = true).await;
    let (_, status) = get_json(&client(), &server.url("/api/groups/default/status")).await;
    assert_eq!(status["name_required"], true);
    for body in ["", "{}", r#"{"name":"  ","reason":"help"}"#] {
        let (status, r) = create(&server, &client(), body).await;
        assert_eq!(status, 400, "{body:?}");
        assert_eq!(r["error"]["message"], "name: required");
    }
    assert_eq!(
        create(&server, &client(), r#"{"name":"Anna"}"#).await.0,
        201
    );
    server.stop().await;
}

#[tokio::test]
async fn a_matched_customer_may_ask_once_for_more_time_to_join() {
    let server = TestServer::start_with(|c| {
        c.join_window = Duration::from_millis(1500);
        c.join_extension = Duration::from_secs(2);
    })
    .await;
    let anna = client();
    let r = join_queue(&server, &anna).await;
    let url = server.url(&format!(
        "/api/groups/default/reservations/{}/join-extension",
        sid(&r)
    ));
    // Not matched yet: nothing to extend.
    assert_eq!(anna.post(&url).send().await.unwrap().status(), 409);
    let doc = specialist(&server, "dr-who").await;
    let accepted = accept_next(&server, &doc).await;
    let deadline = |r: &Value| {
        chrono::DateTime::parse_from_rfc3339(r["join_deadline"].as_str().unwrap()).unwrap()
    };
    let first = deadline(&accepted["reservation"]);
    assert_eq!(accepted["reservation"]["join_extended"], false);
    // The specialist may not ask for the customer.
    assert_eq!(doc.post(&url).send().await.unwrap().status(), 404);
    let r = anna.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let extended: Value = r.json().await.unwrap();
    assert_eq!(extended["join_extended"], true);
    assert_eq!(
        (deadline(&extended) - first).num_milliseconds(),
        2000,
        "{extended}"
    );
    // Once only.
    let again = anna.post(&url).send().await.unwrap();
    assert_eq!(again.status(), 409);
    let message: Value = again.json().await.unwrap();
    assert!(
        message["error"]["message"]
            .as_str()
            .unwrap()
            .contains("once")
    );

    // Past the first window it is still matched; past the extended one it expires.
    let own = server.url(&format!(
        "/api/groups/default/reservations/{}",
        sid(&extended)
    ));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(get_json(&anna, &own).await.1["reservation_status"], MATCHED);
    let mut status = Value::Null;
    for _ in 0..40 {
        status = get_json(&anna, &own).await.1["reservation_status"].clone();
        if status == EXPIRED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, EXPIRED);
    // Too late now.
    assert_eq!(anna.post(&url).send().await.unwrap().status(), 409);
    server.stop().await;
}

#[tokio::test]
async fn the_console_gets_the_days_figures() {
    let server = TestServer::start().await;
    let doc = specialist(&server, "dr-day").await;
    let anna = client();
    let a = join_queue(&server, &anna).await;
    join_queue(&server, &client()).await;
    accept_next(&server, &doc).await;
    // Anna leaves after being matched: the specialist is free for the next one.
    let r = anna
        .delete(server.url(&format!("/api/groups/default/reservations/{}", sid(&a))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    accept_next(&server, &doc).await;
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let url = |since: &str| {
        let mut u = url::Url::parse(&server.url("/api/groups/default/today")).unwrap();
        u.query_pairs_mut().append_pair("since", since);
        u.to_string()
    };
    let (status, day) = get_json(&doc, &url(&since)).await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["served"], 2);
    assert!(day["median_wait_seconds"].as_f64().unwrap() >= 0.0);
    // Since a moment after both: nobody yet.
    let later = (chrono::Utc::now() - chrono::Duration::milliseconds(1)).to_rfc3339();
    let (_, none) = get_json(&doc, &url(&later)).await;
    assert_eq!(
        (none["served"].clone(), none["median_wait_seconds"].clone()),
        (json!(0), Value::Null)
    );
    for bad in [
        "yesterday",
        &(chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
        &(chrono::Utc::now() - chrono::Duration::days(8)).to_rfc3339(),
    ] {
        let (status, body) = get_json(&doc, &url(bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("since:")
        );
    }
    let (status, _) = get_json(&doc, &server.url("/api/groups/default/today")).await;
    assert_eq!(status, 400);
    // Not for customers.
    let (status, _) = get_json(&client(), &url(&since)).await;
    assert!(status == 401 || status == 403, "{status}");
    server.stop().await;
}
