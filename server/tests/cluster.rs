//! Two nodes on one PostgreSQL database, in one process: any node serves anyone, changes made
//! on one reach streams on the other, positions stay dense under joins on both, a lost
//! listening connection heals, and a call still ends at zero when its node has gone. (The
//! end-to-end suite does the same with real processes behind HAProxy and `kill -9`.) Without
//! `CALLQUEUE_TEST_POSTGRES` these say so and pass: SQLite is one process by design.

mod common;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use common::*;
use serde_json::{Value, json};

const MATCHED: &str = "GROUP_RESERVATION_STATUS_MATCHED";

/// Two nodes on one fresh database; `None` (and a line saying so) when not on PostgreSQL.
async fn two_nodes(
    tweak: impl FnOnce(&mut callqueue_server::config::Config),
) -> Option<(TestServer, TestServer)> {
    if !on_postgres() {
        eprintln!("SQLite run: one process by design (CALLQUEUE_TEST_POSTGRES is not set)");
        return None;
    }
    let a = TestServer::start_with(tweak).await;
    let mut config = a.config.clone();
    config.addr = "127.0.0.1:0".parse().unwrap();
    let b = TestServer::start_in(tempfile::tempdir().unwrap(), config).await;
    Some((a, b))
}

/// A customer's stream of their reservation, from `node`.
async fn reservation_stream(node: &TestServer, c: &reqwest::Client, sid: &str) -> SseReader {
    SseReader::open(
        c,
        &node.url(&format!("/api/events/g/default/r/{sid}")),
        None,
    )
    .await
}

/// The next event of `stream` whose JSON satisfies `want`, within `within`.
async fn until(stream: &mut SseReader, within: Duration, want: impl Fn(&Value) -> bool) -> Value {
    until_event(stream, within, want).await.json()
}

/// [`until`], answering the whole event (its id too).
async fn until_event(
    stream: &mut SseReader,
    within: Duration,
    want: impl Fn(&Value) -> bool,
) -> SseEvent {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = stream
            .next_within(left)
            .await
            .unwrap_or_else(|| panic!("no such event within {within:?}"));
        if want(&ev.json()) {
            return ev;
        }
    }
}

#[tokio::test]
async fn an_accept_on_one_node_reaches_the_streams_on_the_other() {
    let Some((a, b)) = two_nodes(|_| {}).await else {
        return;
    };
    let alice = client();
    let r = join_queue(&a, &alice).await;
    let sid = r["reservation_sid"].as_str().unwrap().to_string();
    let mut mine = reservation_stream(&a, &alice, &sid).await;
    let first = until(&mut mine, Duration::from_secs(5), |_| true).await;
    assert_eq!(first["queue_position"], 1);

    // The specialist works on node B and watches the queue there and on A.
    let doc = specialist(&b, "dr-b").await;
    let mut queue_a = SseReader::open(&doc, &a.url("/api/groups/default/events"), None).await;
    let snap = until(&mut queue_a, Duration::from_secs(5), |_| true).await;
    assert_eq!(snap["reservations"].as_array().unwrap().len(), 1, "{snap}");

    let started = Instant::now();
    let accepted = accept_next(&b, &doc).await;
    let matched = until_event(&mut mine, Duration::from_secs(3), |v| {
        v["reservation_status"] == MATCHED
    })
    .await;
    let last = matched.id();
    let matched = matched.json();
    eprintln!("accept on B → frame on A: {:?}", started.elapsed());
    assert_eq!(matched["call_id"], accepted["call"]["call"]["id"]);
    // Ids are the database's versions: reconnecting to the other node resumes at the same one.
    let mut there = reservation_stream(&b, &alice, &sid).await;
    let first_there = there.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first_there.json()["reservation_status"], MATCHED);
    assert_eq!(first_there.id(), last, "the same id from either node");
    // A's queue stream hears the queue empty.
    until(&mut queue_a, Duration::from_secs(3), |v| {
        v["reservations"].as_array().is_some_and(|r| r.is_empty())
            || v["reservation"]["reservation_sid"] == sid.as_str()
    })
    .await;

    // The customer joins the call on A; the specialist sees the session start on B.
    let call_id = accepted["call"]["call"]["id"].as_str().unwrap();
    let call = format!("/api/calls/appointment/{call_id}");
    let mut on_b = SseReader::open(&doc, &b.url(&format!("{call}/events")), None).await;
    until(&mut on_b, Duration::from_secs(5), |_| true).await;
    let r = alice
        .post(a.url(&format!("{call}/join")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started = until(&mut on_b, Duration::from_secs(3), |v| {
        v["call"]["session"]["started_at"].is_string()
    })
    .await;
    assert!(
        started["call"]["session"]["timer_ends_at"].is_string(),
        "{started}"
    );
    // Only the specialist may extend, on any node; the new end reaches the customer on A.
    let mut on_a = SseReader::open(&alice, &a.url(&format!("{call}/events")), None).await;
    let before = until(&mut on_a, Duration::from_secs(5), |_| true).await;
    let r = doc
        .patch(b.url(&call))
        .json(&json!({"settings_override": {"limits": {"max_duration_seconds": 3000}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "extend on B");
    let after = until(&mut on_a, Duration::from_secs(3), |v| {
        v["call"]["session"]["timer_ends_at"] != before["call"]["session"]["timer_ends_at"]
    })
    .await;
    assert!(after["call"]["session"]["timer_ends_at"].is_string());
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn joins_on_both_nodes_get_positions_1_to_n_read_the_same_from_both() {
    let Some((a, b)) = two_nodes(|_| {}).await else {
        return;
    };
    const N: usize = 200;
    let customers: Vec<reqwest::Client> = (0..N).map(|_| client()).collect();
    let joins = customers.iter().enumerate().map(|(i, c)| {
        let node = if i % 2 == 0 { &a } else { &b };
        join_queue(node, c)
    });
    let made = futures_util::future::join_all(joins).await;
    let positions: BTreeSet<u64> = made
        .iter()
        .map(|r| r["queue_position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        positions,
        (1..=N as u64).collect(),
        "dense and distinct as made"
    );

    // Both nodes then tell every customer the same position (within the reconcile time).
    let sids: Vec<String> = made
        .iter()
        .map(|r| r["reservation_sid"].as_str().unwrap().to_string())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut views = Vec::new();
        for node in [&a, &b] {
            let mut seen = Vec::new();
            for (c, sid) in customers.iter().zip(&sids) {
                let url = node.url(&format!("/api/groups/default/reservations/{sid}"));
                let (_, v) = get_json(c, &url).await;
                seen.push(v["queue_position"].as_u64());
            }
            views.push(seen);
        }
        let dense: BTreeSet<u64> = views[0].iter().flatten().copied().collect();
        if views[0] == views[1] && dense == (1..=N as u64).collect() {
            break;
        }
        assert!(Instant::now() < deadline, "the nodes disagree: {views:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Taking customers on both nodes keeps the rest dense.
    let doc_a = specialist(&a, "dr-a").await;
    let doc_b = specialist(&b, "dr-b").await;
    accept_next(&a, &doc_a).await;
    accept_next(&b, &doc_b).await;
    let (_, queue) = get_json(&doc_a, &b.url("/api/groups/default/queue")).await;
    let positions: Vec<u64> = queue["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["queue_position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=N as u64 - 2).collect::<Vec<_>>());
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_terminated_listening_connection_heals_and_events_still_arrive() {
    let Some((a, b)) = two_nodes(|_| {}).await else {
        return;
    };
    let pool = callqueue_server::db::open(&a.config.database)
        .await
        .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(callqueue_server::store::LISTENER_NAME)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(killed, vec![true, true], "one listener per node");

    let alice = client();
    let r = join_queue(&a, &alice).await;
    let sid = r["reservation_sid"].as_str().unwrap().to_string();
    let mut mine = reservation_stream(&a, &alice, &sid).await;
    until(&mut mine, Duration::from_secs(5), |_| true).await;
    let doc = specialist(&b, "dr-b").await;
    accept_next(&b, &doc).await;
    until(&mut mine, Duration::from_secs(5), |v| {
        v["reservation_status"] == MATCHED
    })
    .await;
    // And the listeners are back.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(callqueue_server::store::LISTENER_NAME)
                .fetch_one(&pool)
                .await
                .unwrap();
        if n == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} listeners");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_call_ends_at_zero_after_the_node_that_started_it_has_gone() {
    let Some((a, b)) = two_nodes(|c| c.call_seconds = 2).await else {
        return;
    };
    let alice = client();
    join_queue(&a, &alice).await;
    let doc = specialist(&a, "dr-a").await;
    let accepted = accept_next(&a, &doc).await;
    let call_id = accepted["call"]["call"]["id"].as_str().unwrap().to_string();
    let call = format!("/api/calls/appointment/{call_id}");
    let r = alice
        .post(a.url(&format!("{call}/join")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut on_b = SseReader::open(&alice, &b.url(&format!("{call}/events")), None).await;
    a.stop().await;
    let ended = until(&mut on_b, Duration::from_secs(8), |v| {
        v["call"]["session"]["ended_at"].is_string()
    })
    .await;
    assert_eq!(
        ended["call"]["session"]["ended_reason"], "time_up",
        "{ended}"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_specialists_channel_hears_customers_joining_on_another_node() {
    let Some((a, b)) = two_nodes(|_| {}).await else {
        return;
    };
    let doc = common::signalling::specialist_cookie(&a, "dr-a").await;
    let mut ws = common::signalling::user_channel(&a, &doc).await;

    let r = join_queue(&b, &client()).await;
    let heard = loop {
        let event = common::signalling::user_event(&mut ws).await;
        if event["event_type"] == "customer_waiting" {
            break event;
        }
    };
    assert_eq!(heard["reservation_sid"], r["reservation_sid"]);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_two_members_signal_each_other_through_different_nodes() {
    use common::signalling as sig;
    let Some((a, b)) = two_nodes(|_| {}).await else {
        return;
    };
    let alice = sig::customer(&a).await;
    let doc = sig::specialist_cookie(&b, "dr-b").await;
    let call = sig::accept(&b, &doc).await;

    // The customer's page on A, the specialist's on B.
    let mut customer = sig::open(&a, &call, Some(&alice)).await.unwrap();
    let welcome = sig::hello(&mut customer, "alice-1").await;
    assert_eq!(welcome["peer"], Value::Null);
    let mut specialist = sig::open(&b, &call, Some(&doc)).await.unwrap();
    sig::hello(&mut specialist, "doc-1").await;
    // Each hears of the other, whichever node it is on.
    let joined = recv(&mut customer).await.unwrap();
    assert_eq!(joined["type"], "peer_joined", "{joined}");
    assert_eq!(joined["peer"]["session"], "doc-1");
    let joined = recv(&mut specialist).await.unwrap();
    assert_eq!(joined["type"], "peer_joined", "{joined}");
    assert_eq!(joined["peer"]["session"], "alice-1");

    // A session description longer than one PostgreSQL notification arrives whole.
    let sdp = format!("v=0\r\n{}", "a=candidate:xyz\r\n".repeat(1_200));
    assert!(sdp.len() > 8_000);
    send(
        &mut specialist,
        json!({"type": "description", "description": {"type": "offer", "sdp": sdp}}),
    )
    .await;
    let got = recv(&mut customer).await.unwrap();
    assert_eq!(got["type"], "description", "{got}");
    assert_eq!(got["from"], "doc-1");
    assert_eq!(got["description"]["sdp"], sdp.as_str());
    // And back, small.
    send(
        &mut customer,
        json!({"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
    )
    .await;
    let got = recv(&mut specialist).await.unwrap();
    assert_eq!(got["type"], "candidate", "{got}");
    assert_eq!(got["from"], "alice-1");

    // The customer's page closes: the specialist hears it on B.
    customer.close(None).await.unwrap();
    let left = recv(&mut specialist).await.unwrap();
    assert_eq!(left["type"], "peer_left", "{left}");
    assert_eq!(left["session"], "alice-1");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn deadlines_are_swept_once_whichever_node_gets_there() {
    let Some((a, b)) = two_nodes(|c| {
        c.queue_timeout = Duration::from_secs(1);
        c.sweep_interval = Duration::from_millis(10);
    })
    .await
    else {
        return;
    };
    const N: usize = 20;
    let customers: Vec<reqwest::Client> = (0..N).map(|_| client()).collect();
    let made = futures_util::future::join_all(
        customers
            .iter()
            .enumerate()
            .map(|(i, c)| join_queue(if i % 2 == 0 { &a } else { &b }, c)),
    )
    .await;
    // Both nodes race to expire all of them after a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    for (c, r) in customers.iter().zip(&made) {
        let url = b.url(&format!("/api/groups/default/reservations/{}", sid(r)));
        loop {
            let (_, v) = get_json(c, &url).await;
            if v["reservation_status"] == "GROUP_RESERVATION_STATUS_EXPIRED" {
                break;
            }
            assert!(Instant::now() < deadline, "{v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Every change moves the group's version by one: 20 joins and exactly 20 expiries.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pool = callqueue_server::db::open(&a.config.database)
        .await
        .unwrap();
    let version: i64 = sqlx::query_scalar("SELECT version FROM groups WHERE name = 'default'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, 2 * N as i64, "one transition per reservation");
    a.stop().await;
    b.stop().await;
}
