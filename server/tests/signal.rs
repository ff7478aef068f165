//! The call's signalling socket over real sockets: who may open it, what it relays to whom,
//! presence, takeover by a second tab, the end of the call, and its limits.

mod common;

use std::time::Duration;

use common::{signalling::*, *};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

#[tokio::test]
async fn only_the_calls_two_members_may_signal() {
    let server = TestServer::start().await;
    let alice = customer(&server).await;
    let bob = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-a").await;
    let call = accept(&server, &doc).await;

    assert_eq!(open(&server, &call, None).await.err(), Some(404));
    assert_eq!(
        open(&server, &call, Some(&bob)).await.err(),
        Some(404),
        "another customer"
    );
    assert_eq!(
        open(&server, &call, Some("cq_customer=nobody")).await.err(),
        Some(404)
    );
    assert_eq!(open(&server, "nosuch", Some(&alice)).await.err(), Some(404));
    // A member of another call: bob's call with another specialist.
    let doc2 = specialist_cookie(&server, "dr-b").await;
    let other = accept(&server, &doc2).await;
    assert_eq!(open(&server, &other, Some(&alice)).await.err(), Some(404));
    assert_eq!(open(&server, &other, Some(&doc)).await.err(), Some(404));
    assert!(open(&server, &call, Some(&alice)).await.is_ok());
    assert!(open(&server, &other, Some(&bob)).await.is_ok());

    // A page of another site cannot open it with the member's cookie; our own page can.
    let with_origin = |origin: String| {
        let mut request = signal_url(&server, &call).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("cookie", alice.parse().unwrap());
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        request
    };
    let ours = server.base.clone();
    for (origin, ok) in [
        ("https://evil.example".to_string(), false),
        (ours.replace("127.0.0.1", "localhost"), false),
        ("null".to_string(), false),
        (ours, true),
    ] {
        match tokio_tungstenite::connect_async(with_origin(origin.clone())).await {
            Ok(_) => assert!(ok, "{origin} was let in"),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert!(!ok, "{origin} was refused");
                assert_eq!(r.status(), 403, "{origin}");
            }
            Err(e) => panic!("{e}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn members_meet_and_what_one_says_reaches_only_the_other() {
    let server = TestServer::start().await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-relay").await;
    let call = accept(&server, &doc).await;

    let mut d = open(&server, &call, Some(&doc)).await.unwrap();
    let w = hello(&mut d, "doc-1").await;
    assert_eq!(w["role"], "specialist");
    assert_eq!(w["polite"], false);
    assert_eq!(w["peer"], Value::Null, "nobody else yet");
    assert_eq!(w["ice_servers"], json!([]), "none needed on loopback");

    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    let w = hello(&mut a, "alice-1").await;
    assert_eq!(w["role"], "patient");
    assert_eq!(w["polite"], true);
    assert_eq!(w["peer"]["session"], "doc-1");
    let joined = recv(&mut d).await.unwrap();
    assert_eq!(joined["type"], "peer_joined");
    assert_eq!(joined["peer"]["session"], "alice-1");

    let offer = json!({"type": "offer", "sdp": "v=0\r\n"});
    send(&mut d, json!({"type": "description", "description": offer})).await;
    let got = recv(&mut a).await.unwrap();
    assert_eq!(got["type"], "description");
    assert_eq!(got["from"], "doc-1");
    assert_eq!(got["description"], offer);
    let candidate = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    send(&mut a, json!({"type": "candidate", "candidate": candidate})).await;
    let got = recv(&mut d).await.unwrap();
    assert_eq!(got["from"], "alice-1");
    assert_eq!(got["candidate"], candidate);
    send(
        &mut a,
        json!({"type": "media", "media": {"audio": false, "video": true}}),
    )
    .await;
    let got = recv(&mut d).await.unwrap();
    assert_eq!(got["type"], "media");
    assert_eq!(got["media"]["audio"], false);

    // Garbage is answered, not relayed and not fatal.
    a.send(Message::Text("{nope".into())).await.unwrap();
    assert_eq!(recv(&mut a).await.unwrap()["type"], "error");

    // The customer closes the page: the specialist hears they left.
    a.close(None).await.unwrap();
    let left = recv(&mut d).await.unwrap();
    assert_eq!(left["type"], "peer_left");
    assert_eq!(left["session"], "alice-1");
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_continues_its_session_with_nothing_lost() {
    let server = TestServer::start_with(|c| c.peer_grace = Duration::from_secs(120)).await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-blip").await;
    let call = accept(&server, &doc).await;
    let mut d = open(&server, &call, Some(&doc)).await.unwrap();
    hello(&mut d, "doc-1").await;
    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    hello(&mut a, "alice-1").await;
    assert_eq!(recv(&mut d).await.unwrap()["type"], "peer_joined");

    // The customer's connection drops with no close frame (a proxy cut, a network change),
    // and the specialist sends a candidate while it is down (or just before it is seen down).
    drop(a);
    let candidate = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    send(
        &mut d,
        json!({"type": "candidate", "candidate": candidate, "to": "alice-1"}),
    )
    .await;
    // For a session that is not the customer's: never delivered.
    send(
        &mut d,
        json!({"type": "candidate", "candidate": candidate, "to": "alice-0"}),
    )
    .await;

    // The same page comes back, having received nothing so far: it continues its session and
    // gets the candidate, once.
    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    send(
        &mut a,
        json!({"type": "hello", "session": "alice-1", "media": {"audio": true, "video": true}, "received": 0}),
    )
    .await;
    let w = recv(&mut a).await.unwrap();
    assert_eq!(w["type"], "welcome");
    assert_eq!(w["peer"]["session"], "doc-1");
    let got = recv(&mut a).await.unwrap();
    assert_eq!(got["type"], "candidate", "{got}");
    assert_eq!(got["from"], "doc-1");
    assert_eq!(got["candidate"], candidate);

    // The specialist heard neither a leave nor a join: the next thing it hears is the customer.
    send(
        &mut a,
        json!({"type": "media", "media": {"audio": false, "video": true}}),
    )
    .await;
    let next = recv(&mut d).await.unwrap();
    assert_eq!(next["type"], "media", "{next}");
    // Nor did the customer get the stale candidate.
    send(&mut d, json!({"type": "restart_ice", "to": "alice-1"})).await;
    let next = recv(&mut a).await.unwrap();
    assert_eq!(next["type"], "restart_ice", "{next}");
    assert_eq!(next["from"], "doc-1");

    // Saying goodbye is leaving at once.
    send(&mut a, json!({"type": "bye"})).await;
    let left = recv(&mut d).await.unwrap();
    assert_eq!(left["type"], "peer_left");
    assert_eq!(left["session"], "alice-1");
    server.stop().await;
}

#[tokio::test]
async fn a_quiet_signal_socket_hears_heartbeats_the_page_can_see() {
    use futures_util::StreamExt;
    let server = TestServer::start_with(|c| c.heartbeat = Duration::from_millis(200)).await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-beat").await;
    let call = accept(&server, &doc).await;
    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    hello(&mut a, "alice-1").await;
    // Nothing else happens: within a few heartbeat intervals, heartbeat text frames (a page's
    // code never sees pings).
    let mut beats = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while beats < 2 && std::time::Instant::now() < deadline {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_secs(1), a.next()).await
        {
            assert_eq!(t.as_str(), callqueue_protocol::HEARTBEAT_FRAME);
            beats += 1;
        }
    }
    assert_eq!(beats, 2);
    server.stop().await;
}

#[tokio::test]
async fn a_connection_gone_past_the_grace_period_has_left() {
    let server = TestServer::start_with(|c| c.peer_grace = Duration::from_secs(1)).await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-gone").await;
    let call = accept(&server, &doc).await;
    let mut d = open(&server, &call, Some(&doc)).await.unwrap();
    hello(&mut d, "doc-1").await;
    let a = {
        let mut a = open(&server, &call, Some(&alice)).await.unwrap();
        hello(&mut a, "alice-1").await;
        a
    };
    assert_eq!(recv(&mut d).await.unwrap()["type"], "peer_joined");
    drop(a);
    let started = std::time::Instant::now();
    let left = recv(&mut d).await.unwrap();
    assert_eq!(left["type"], "peer_left");
    assert_eq!(left["session"], "alice-1");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the grace period"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_second_tab_takes_over_and_the_end_of_the_call_closes_both() {
    let server = TestServer::start().await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-tabs").await;
    let call = accept(&server, &doc).await;
    let mut d = open(&server, &call, Some(&doc)).await.unwrap();
    hello(&mut d, "doc-1").await;
    let mut a1 = open(&server, &call, Some(&alice)).await.unwrap();
    hello(&mut a1, "alice-1").await;
    recv(&mut d).await.unwrap();

    let mut a2 = open(&server, &call, Some(&alice)).await.unwrap();
    let w = hello(&mut a2, "alice-2").await;
    assert_eq!(w["peer"]["session"], "doc-1");
    assert_eq!(
        recv(&mut a1).await,
        Err(Some(4009)),
        "the first tab is told"
    );
    let joined = recv(&mut d).await.unwrap();
    assert_eq!(joined["peer"]["session"], "alice-2");

    // The specialist ends the call: both sockets close with 4010.
    let r = plain_client()
        .post(server.url(&format!("/api/calls/appointment/{call}/join")))
        .header("cookie", &doc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    plain_client()
        .post(server.url(&format!("/api/calls/appointment/{call}/leave")))
        .header("cookie", &doc)
        .send()
        .await
        .unwrap();
    for ws in [&mut d, &mut a2] {
        let code = loop {
            match recv(ws).await {
                Ok(_) => continue,
                Err(code) => break code,
            }
        };
        assert_eq!(code, Some(4010));
    }
    assert_eq!(open(&server, &call, Some(&alice)).await.err(), Some(409));
    server.stop().await;
}

#[tokio::test]
async fn oversized_silent_and_flooding_sockets_are_closed() {
    let server = TestServer::start_with(|c| {
        c.rate_limits = true;
        c.messages_per_second = 5;
    })
    .await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-big").await;
    let call = accept(&server, &doc).await;

    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    hello(&mut a, "alice-1").await;
    let huge = "x".repeat(100 * 1024);
    let _ = a
        .send(Message::Text(
            json!({"type": "description", "description": {"type": "offer", "sdp": huge}})
                .to_string()
                .into(),
        ))
        .await;
    let code = loop {
        match recv(&mut a).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert_eq!(code, Some(1009), "message too big");

    // Anything before hello: 4001.
    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    send(
        &mut a,
        json!({"type": "media", "media": {"audio": true, "video": true}}),
    )
    .await;
    assert_eq!(recv(&mut a).await, Err(Some(4001)));

    // A burst of candidates (a gathering, or what a page kept while its socket was down) is
    // not a flood, even at this rate.
    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    hello(&mut a, "alice-2").await;
    let candidate = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    for _ in 0..60 {
        send(&mut a, json!({"type": "candidate", "candidate": candidate})).await;
    }
    send(&mut a, json!({"type": "nonsense"})).await;
    assert_eq!(
        recv(&mut a).await.unwrap()["type"],
        "error",
        "still open after 60 candidates"
    );
    // A flood: 4029.
    for _ in 0..40 {
        if a.send(Message::Text(
            json!({"type": "media", "media": {"audio": true, "video": true}})
                .to_string()
                .into(),
        ))
        .await
        .is_err()
        {
            break;
        }
    }
    let code = loop {
        match recv(&mut a).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert_eq!(code, Some(4029));
    server.stop().await;
}

#[tokio::test]
async fn ice_servers_come_from_configuration_with_turn_credentials() {
    let server = TestServer::start_with(|c| {
        c.ice_servers = vec![
            "stun:127.0.0.1:3478".into(),
            "turn:127.0.0.1:3478?transport=udp".into(),
        ];
        c.turn_secret = Some("north".into());
    })
    .await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-ice").await;
    let call = accept(&server, &doc).await;
    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    let w = hello(&mut a, "alice-1").await;
    let servers = w["ice_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["urls"], json!(["stun:127.0.0.1:3478"]));
    assert!(servers[0].get("username").is_none());
    let username = servers[1]["username"].as_str().unwrap();
    let (expiry, _user) = username.split_once(':').unwrap();
    let expiry: i64 = expiry.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(expiry > now + 3600, "lasts longer than any call");
    assert!(servers[1]["credential"].as_str().unwrap().len() == 28);
    server.stop().await;
}

#[tokio::test]
async fn the_specialists_console_hears_the_customer_come_and_go() {
    let server = TestServer::start().await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-presence").await;
    let call = accept(&server, &doc).await;

    // Connecting during the call: where the customer stands now comes first.
    let mut channel = user_channel(&server, &doc).await;
    let now = user_event(&mut channel).await;
    assert_eq!(
        now,
        json!({"event_type": "customer_presence", "call_id": call, "connected": false})
    );

    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    hello(&mut a, "alice-1").await;
    let came = user_event(&mut channel).await;
    assert_eq!(came["event_type"], "customer_presence");
    assert_eq!(came["connected"], true);

    // A second tab takes over: the customer never left.
    let mut a2 = open(&server, &call, Some(&alice)).await.unwrap();
    hello(&mut a2, "alice-2").await;
    assert_eq!(user_event(&mut channel).await["connected"], true);
    assert!(recv(&mut a).await.is_err(), "the first tab was closed");

    // The customer closes the page.
    a2.close(None).await.unwrap();
    let gone = user_event(&mut channel).await;
    assert_eq!(gone["call_id"], call);
    assert_eq!(gone["connected"], false);

    // The specialist's own page says nothing about presence.
    let mut d = open(&server, &call, Some(&doc)).await.unwrap();
    hello(&mut d, "doc-1").await;
    d.close(None).await.unwrap();
    send(&mut channel, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut channel).await.unwrap()["type"], "pong");
    server.stop().await;
}

/// A socket that never says hello is closed at the hello deadline (10 s), not kept forever.
#[tokio::test]
async fn a_silent_socket_is_closed_at_the_hello_deadline() {
    let server = TestServer::start().await;
    let alice = customer(&server).await;
    let doc = specialist_cookie(&server, "dr-silent").await;
    let call = accept(&server, &doc).await;
    let opened = std::time::Instant::now();
    let mut a = open(&server, &call, Some(&alice)).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match futures_util::StreamExt::next(&mut a).await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed within 15 s");
    assert_eq!(closed, Some(callqueue_protocol::signal::close::NO_HELLO));
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(14),
        "after {took:?}"
    );
    server.stop().await;
}
