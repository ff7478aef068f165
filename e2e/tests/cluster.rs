//! Several real server processes on one PostgreSQL behind HAProxy (Debian's packages, started
//! here on loopback): joins through the balancer get dense positions read the same from every
//! node; `kill -9` of a node and its streams' clients carry on through the other with the right
//! state; a call still ends at zero after the node that started it died; a listening connection
//! terminated by PostgreSQL heals.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use callqueue_e2e::{
    Result, ServerOptions,
    cluster::{Cluster, Sse},
};
use futures_util::future::try_join_all;
use serde_json::{Value, json};

const MATCHED: &str = "GROUP_RESERVATION_STATUS_MATCHED";

fn customer() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A signed-in, available specialist, through `base`.
async fn specialist(cluster: &Cluster, base: &str, name: &str) -> Result<reqwest::Client> {
    cluster.nodes[0]
        .add_specialist(name, "cluster-secret-1")
        .await?;
    let c = customer();
    let r = c
        .post(format!("{base}/api/agent/session"))
        .json(&json!({"user_id": name, "secret": "cluster-secret-1"}))
        .send()
        .await?;
    assert_eq!(r.status(), 200, "sign in");
    let r = c
        .put(format!("{base}/api/agent/availability"))
        .json(&json!({"available": true}))
        .send()
        .await?;
    assert_eq!(r.status(), 200, "availability");
    Ok(c)
}

async fn post(c: &reqwest::Client, url: &str) -> Result<Value> {
    let r = c
        .post(url)
        .header("content-type", "application/json")
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        return Err(format!("{url}: {status} {body}").into());
    }
    Ok(body)
}

/// The next event satisfying `want`, reconnecting (as a browser does) when the stream's node
/// goes; reconnections are counted.
async fn until(
    c: &reqwest::Client,
    url: &str,
    stream: &mut Sse,
    reconnects: &mut usize,
    want: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        match stream
            .next(deadline - Instant::now())
            .await
            .map_err(|e| format!("{e}; last event: {last}"))?
        {
            Some(v) if want(&v) => return Ok(v),
            Some(v) => last = v,
            None => {
                *reconnects += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(s) = Sse::open(c, url).await {
                    *stream = s;
                }
            }
        }
    }
    Err(format!("{url}: not within 15 s").into())
}

#[tokio::test]
async fn through_haproxy_positions_are_dense_and_a_killed_node_loses_nothing() -> Result<()> {
    let mut cluster = Cluster::start(
        2,
        ServerOptions {
            // 200 customers from one machine: per-address limits would refuse most of them.
            rate_limits: false,
            ..Default::default()
        },
    )
    .await?;
    let proxy = cluster.proxy.base.clone();

    // 200 customers join at once through the balancer, so on both nodes.
    const N: usize = 200;
    let customers: Vec<reqwest::Client> = (0..N).map(|_| customer()).collect();
    let url = format!("{proxy}/api/groups/default/reservations");
    let made = try_join_all(customers.iter().map(|c| post(c, &url))).await?;
    let positions: BTreeSet<u64> = made
        .iter()
        .map(|r| r["queue_position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=N as u64).collect(), "dense and distinct");
    // In queue order from here on.
    let mut order: Vec<(u64, usize)> = made
        .iter()
        .enumerate()
        .map(|(i, r)| (r["queue_position"].as_u64().unwrap(), i))
        .collect();
    order.sort();
    let customers: Vec<reqwest::Client> =
        order.iter().map(|&(_, i)| customers[i].clone()).collect();
    let sids: Vec<String> = order
        .iter()
        .map(|&(_, i)| made[i]["reservation_sid"].as_str().unwrap().to_string())
        .collect();

    // Each node, asked directly, tells every customer the same position.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut views = Vec::new();
        for node in &cluster.nodes {
            let mut seen = Vec::new();
            for (c, sid) in customers.iter().zip(&sids) {
                let url = node.url(&format!("/api/groups/default/reservations/{sid}"));
                let v: Value = c.get(&url).send().await?.json().await?;
                seen.push(v["queue_position"].as_u64());
            }
            views.push(seen);
        }
        let dense: BTreeSet<u64> = views[0].iter().flatten().copied().collect();
        if views[0] == views[1] && dense == (1..=N as u64).collect() {
            break;
        }
        assert!(Instant::now() < deadline, "the nodes disagree");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The first 20 in the queue watch their place through the balancer: round robin puts about
    // half of the streams on each node.
    const WATCHING: usize = 20;
    let stream_url = |sid: &str| format!("{proxy}/api/events/g/default/r/{sid}");
    let mut streams = Vec::new();
    for (c, sid) in customers.iter().zip(&sids).take(WATCHING) {
        let mut s = Sse::open(c, &stream_url(sid)).await?;
        let first = s.next(Duration::from_secs(5)).await?.expect("a snapshot");
        assert_eq!(first["reservation_sid"], sid.as_str());
        streams.push(s);
    }

    // kill -9 one node.
    cluster.nodes[0].kill().await;
    // A specialist, through the balancer (now the survivor), takes the first customer.
    let doc = specialist(&cluster, &proxy, "dr-one").await?;
    let accepted = post(&doc, &format!("{proxy}/api/groups/default/accept")).await?;
    assert_eq!(accepted["reservation"]["reservation_sid"], sids[0].as_str());

    // Every watcher ends up with the right state: the first matched, the others one place up,
    // whichever node their stream was on.
    let mut reconnects = 0;
    for (i, stream) in streams.iter_mut().enumerate() {
        let url = stream_url(&sids[i]);
        let v = until(&customers[i], &url, stream, &mut reconnects, |v| {
            if i == 0 {
                v["reservation_status"] == MATCHED
            } else {
                v["queue_position"] == i as u64
            }
        })
        .await?;
        if i == 0 {
            assert_eq!(v["call_id"], accepted["call"]["call"]["id"]);
        }
    }
    assert!(reconnects > 0, "some streams were on the killed node");
    eprintln!("{reconnects} of {WATCHING} streams reconnected to the surviving node");

    // And the queue as the survivor has it: 199, dense.
    let queue: Value = doc
        .get(format!("{proxy}/api/groups/default/queue"))
        .send()
        .await?
        .json()
        .await?;
    let positions: Vec<u64> = queue["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["queue_position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..N as u64).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test]
async fn a_call_ends_at_zero_after_the_node_that_started_it_was_killed() -> Result<()> {
    let mut cluster = Cluster::start(
        2,
        ServerOptions {
            call_seconds: 3,
            ..Default::default()
        },
    )
    .await?;
    let a = cluster.nodes[0].base.clone();
    let b = cluster.nodes[1].base.clone();
    let alice = customer();
    post(&alice, &format!("{a}/api/groups/default/reservations")).await?;
    let doc = specialist(&cluster, &a, "dr-a").await?;
    let accepted = post(&doc, &format!("{a}/api/groups/default/accept")).await?;
    let call = format!(
        "/api/calls/appointment/{}",
        accepted["call"]["call"]["id"].as_str().unwrap()
    );
    post(&alice, &format!("{a}{call}/join")).await?;
    let url = format!("{b}{call}/events");
    let mut on_b = Sse::open(&alice, &url).await?;
    cluster.nodes[0].kill().await;
    let mut reconnects = 0;
    let ended = until(&alice, &url, &mut on_b, &mut reconnects, |v| {
        v["call"]["session"]["ended_at"].is_string()
    })
    .await?;
    assert_eq!(ended["call"]["session"]["ended_reason"], "time_up");
    assert_eq!(reconnects, 0, "the stream was on the surviving node");
    Ok(())
}

#[tokio::test]
async fn events_still_arrive_after_postgres_terminates_the_listening_connections() -> Result<()> {
    let cluster = Cluster::start(2, ServerOptions::default()).await?;
    let a = cluster.nodes[0].base.clone();
    let b = cluster.nodes[1].base.clone();
    let killed = cluster
        .postgres
        .sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'callqueue-listener'",
        )
        .await?;
    assert_eq!(killed, "2", "one listening connection per node");
    let alice = customer();
    let made = post(&alice, &format!("{a}/api/groups/default/reservations")).await?;
    let sid = made["reservation_sid"].as_str().unwrap();
    let url = format!("{a}/api/events/g/default/r/{sid}");
    let mut on_a = Sse::open(&alice, &url).await?;
    on_a.next(Duration::from_secs(5)).await?;
    let doc = specialist(&cluster, &b, "dr-b").await?;
    post(&doc, &format!("{b}/api/groups/default/accept")).await?;
    let mut reconnects = 0;
    until(&alice, &url, &mut on_a, &mut reconnects, |v| {
        v["reservation_status"] == MATCHED
    })
    .await?;
    Ok(())
}

/// A real call in two browsers across the cluster: the customer through HAProxy, the specialist
/// on node 1. Both see each other; then node 0 is killed with the call on: the customer's page
/// reconnects through HAProxy and the call carries on (video still playing, a mute still
/// reaching the other side), whichever node the customer's sockets had been on.
#[tokio::test]
async fn a_call_across_nodes_survives_a_node_being_killed() -> Result<()> {
    use callqueue_e2e::{Driver, sign_in_specialist_at, start_chat_at};
    let mut cluster = Cluster::start(
        2,
        ServerOptions {
            rate_limits: false,
            ..Default::default()
        },
    )
    .await?;
    let proxy = cluster.proxy.base.clone();
    let node1 = cluster.nodes[1].base.clone();
    let driver = Driver::start().await?;
    let alice = driver.browser(390, 844).await?;
    let doc = driver.browser(1280, 900).await?;
    start_chat_at(&alice, &proxy).await?;
    sign_in_specialist_at(&doc, &cluster.nodes[1], &node1, "dr-cluster").await?;
    doc.wait_text("h2", |t| t == "Waiting now: 1").await?;
    doc.click("button.accept-next").await?;
    callqueue_e2e::join_when_called(&alice).await?;
    doc.wait_url(|u| u.contains("/join/r/")).await?;
    for (b, who) in [(&alice, "alice"), (&doc, "doc")] {
        let took = b
            .wait_video_playing("video.remote", Duration::from_secs(20))
            .await
            .map_err(|e| format!("{who}: {e}"))?;
        eprintln!("{who}: remote video playing after {took:?}");
    }

    cluster.nodes[0].kill().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (b, who) in [(&alice, "alice"), (&doc, "doc")] {
        b.wait_video_playing("video.remote", Duration::from_secs(15))
            .await
            .map_err(|e| format!("{who} after the kill: {e}"))?;
    }
    alice.click("button.toggle.mic").await?;
    doc.wait_text(".badge.peer-muted", |t| t == "The customer is muted")
        .await?;
    assert!(
        alice.exists("video.remote").await?,
        "still on the call page"
    );
    for b in [alice, doc] {
        b.close().await?;
    }
    Ok(())
}

/// Talking across nodes: a notice posted on the console of one node reaches a hold page served
/// by the other, and so does a line to one customer; then a customer on one node and the
/// specialist on the other chat both ways, and a reload on either side shows the whole
/// conversation (stored in PostgreSQL, not in a node's memory).
#[tokio::test]
async fn chat_and_the_queues_notice_cross_nodes() -> Result<()> {
    use callqueue_e2e::{Driver, join_when_called, sign_in_specialist_at, start_chat_at};
    let cluster = Cluster::start(
        2,
        ServerOptions {
            rate_limits: false,
            ..Default::default()
        },
    )
    .await?;
    let (node0, node1) = (cluster.nodes[0].base.clone(), cluster.nodes[1].base.clone());
    let driver = Driver::start().await?;
    let alice = driver.browser(390, 844).await?;
    let ben = driver.browser(390, 844).await?;
    let doc = driver.browser(1280, 900).await?;
    start_chat_at(&alice, &node0).await?;
    let ben_sid = start_chat_at(&ben, &node0).await?;
    sign_in_specialist_at(&doc, &cluster.nodes[1], &node1, "dr-talk").await?;
    doc.wait_text("h2", |t| t == "Waiting now: 2").await?;

    let word = "Running about ten minutes late, sorry.";
    doc.find("input[name=notice]")
        .await?
        .send_keys(word)
        .await?;
    doc.click("button.post-notice").await?;
    for b in [&alice, &ben] {
        b.wait_text_for("#queue-words", Duration::from_secs(10), |t| t == word)
            .await?;
    }
    doc.click(&format!(
        "li.queue-row[data-sid='{ben_sid}'] button.message-one"
    ))
    .await?;
    doc.find("#line-text")
        .await?
        .send_keys("Ben: you're next.")
        .await?;
    doc.click("button.send-line").await?;
    ben.wait_text_for("#queue-words", Duration::from_secs(10), |t| {
        t.contains("Ben: you're next.")
    })
    .await?;
    assert_eq!(alice.find("#queue-words").await?.text().await?, word);

    // Alice (node 0) and the specialist (node 1) in a call, chatting.
    doc.click("button.accept-next").await?;
    join_when_called(&alice).await?;
    doc.wait_url(|u| u.contains("/join/r/")).await?;
    doc.find(".chat:not(.hidden) #chat-text")
        .await?
        .send_keys("Hello from node 1\u{E007}")
        .await?;
    wait_conversation(&alice, &["Hello from node 1"]).await?;
    alice.click(".chat-toggle").await?;
    alice
        .find("#chat-text")
        .await?
        .send_keys("Hello from node 0\u{E007}")
        .await?;
    let both = ["Hello from node 1", "Hello from node 0"];
    wait_conversation(&doc, &both).await?;
    wait_conversation(&alice, &both).await?;
    for b in [&alice, &doc] {
        b.client.refresh().await?;
        b.find(".chat:not(.hidden)").await?;
        wait_conversation(b, &both).await?;
    }
    for b in [alice, ben, doc] {
        b.close().await?;
    }
    Ok(())
}

/// Waits (15 s at most) until a call page's conversation is exactly `want`.
async fn wait_conversation(b: &callqueue_e2e::Browser, want: &[&str]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = b
            .eval("return [...document.querySelectorAll('#chat-log li .text')].map(e => e.textContent);")
            .await?;
        if got == json!(want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("conversation still {got}, not {want:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
