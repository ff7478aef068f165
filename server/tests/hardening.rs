//! Defects a review found, abuse limits, security headers: each over a real socket against the
//! real server.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The store behind a running test server's database, opened a second time (as `agent add`
/// does) for changes no API makes.
async fn db(server: &TestServer) -> sqlx::AnyPool {
    callqueue_server::db::open(&server.config.database)
        .await
        .unwrap()
}

/// A customer's stream hears about it when a session starts ahead of them: the specialist's
/// expected free time moved, so their estimate did (it used to stay stale).
#[tokio::test]
async fn a_session_starting_updates_the_estimates_of_those_waiting() {
    let server = TestServer::start_with(|c| c.call_seconds = 600).await;
    let doc = specialist(&server, "dr-est").await;
    // One completed call, so estimates exist.
    let first = client();
    join_queue(&server, &first).await;
    let (_, acc) = post_json(&doc, &server.url("/api/groups/default/accept"), json!({})).await;
    let call_url = server.url(&format!(
        "/api/calls/appointment/{}",
        acc["call"]["call"]["id"].as_str().unwrap()
    ));
    post_json(&first, &format!("{call_url}/join"), json!({})).await;
    post_json(&doc, &format!("{call_url}/leave"), json!({})).await;

    let (alice, bob) = (client(), client());
    join_queue(&server, &alice).await;
    let b = join_queue(&server, &bob).await;
    let (_, acc) = post_json(&doc, &server.url("/api/groups/default/accept"), json!({})).await;
    let call_url = server.url(&format!(
        "/api/calls/appointment/{}",
        acc["call"]["call"]["id"].as_str().unwrap()
    ));
    let mut stream = SseReader::open(
        &bob,
        &server.url(&format!("/api/events/g/default/r/{}", sid(&b))),
        None,
    )
    .await;
    let before = stream.next().await.unwrap().json();
    assert!(before["estimated_wait_until"].is_string(), "{before}");
    // The call was created at accept; a second later its session starts.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    post_json(&alice, &format!("{call_url}/join"), json!({})).await;
    let after = stream
        .next_within(Duration::from_secs(5))
        .await
        .expect("the session start reaches the waiting customer's stream")
        .json();
    assert_ne!(
        before["estimated_wait_until"], after["estimated_wait_until"],
        "{after}"
    );
    server.stop().await;
}

/// An account whose stored role is unknown gets nothing: no sign-in, and a session it already
/// had no longer counts.
#[tokio::test]
async fn an_unknown_role_fails_closed() {
    let server = TestServer::start().await;
    let doc = specialist(&server, "dr-odd").await;
    let pool = db(&server).await;
    sqlx::query("UPDATE agents SET role = 'superuser' WHERE user_id = 'dr-odd'")
        .execute(&pool)
        .await
        .unwrap();
    let me: Value = doc
        .get(server.url("/api/agent/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me, Value::Null, "the old session is not a specialist's");
    let r = doc
        .put(server.url("/api/agent/availability"))
        .json(&json!({"available": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, body) = post_json(
        &client(),
        &server.url("/api/agent/session"),
        json!({"user_id": "dr-odd", "secret": "secret-1"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    server.stop().await;
}

/// One reservation whose expiry fails (the database refuses that row) does not keep the others
/// from expiring.
#[tokio::test]
async fn one_failed_expiry_does_not_block_the_others() {
    let server = TestServer::start_with(|c| c.queue_timeout = Duration::from_secs(1)).await;
    let mut customers = Vec::new();
    for _ in 0..8 {
        let c = client();
        let r = join_queue(&server, &c).await;
        customers.push((c, sid(&r)));
    }
    let poisoned = customers[3].1.clone();
    let pool = db(&server).await;
    let refuse = if on_postgres() {
        vec![
            format!(
                "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN \
                 IF old.sid = '{poisoned}' THEN RAISE EXCEPTION 'refused for the test'; END IF; \
                 RETURN new; END $$ LANGUAGE plpgsql"
            ),
            "CREATE TRIGGER refuse_one BEFORE UPDATE ON reservations \
             FOR EACH ROW EXECUTE FUNCTION refuse_one()"
                .to_string(),
        ]
    } else {
        vec![format!(
            "CREATE TRIGGER refuse_one BEFORE UPDATE ON reservations WHEN old.sid = '{poisoned}' \
             BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
        )]
    };
    for statement in refuse {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    for (c, sid) in &customers {
        let r: Value = c
            .get(server.url(&format!("/api/groups/default/reservations/{sid}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let want = if *sid == poisoned {
            "GROUP_RESERVATION_STATUS_QUEUED"
        } else {
            "GROUP_RESERVATION_STATUS_EXPIRED"
        };
        assert_eq!(r["reservation_status"], want, "{sid}");
    }
    // Once the database takes it again, the next sweep expires it too.
    let drop = if on_postgres() {
        "DROP TRIGGER refuse_one ON reservations"
    } else {
        "DROP TRIGGER refuse_one"
    };
    sqlx::query(drop).execute(&pool).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (c, sid) = &customers[3];
    let r: Value = c
        .get(server.url(&format!("/api/groups/default/reservations/{sid}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["reservation_status"], "GROUP_RESERVATION_STATUS_EXPIRED");
    server.stop().await;
}

/// Both members leaving at once, twice over: every answer, the customer's too, is the call as
/// it ended (no 409, no 5xx), and the specialist is told of the end exactly once, with the
/// reason the call has. A customer who reads the call learns no sign-in id.
#[tokio::test]
async fn leaving_is_atomic_and_can_be_repeated() {
    use common::signalling::{specialist_cookie, user_channel};
    let server = TestServer::start().await;
    let cookie = specialist_cookie(&server, "dr-leave").await;
    let mut notices = user_channel(&server, &cookie).await;
    let doc = reqwest::Client::builder()
        .default_headers({
            let mut h = reqwest::header::HeaderMap::new();
            h.insert("cookie", cookie.parse().unwrap());
            h.insert("content-type", "application/json".parse().unwrap());
            h
        })
        .build()
        .unwrap();
    for _ in 0..5 {
        let alice = client();
        join_queue(&server, &alice).await;
        let (_, acc) = post_json(&doc, &server.url("/api/groups/default/accept"), json!({})).await;
        let call_id = acc["call"]["call"]["id"].as_str().unwrap().to_string();
        let call_url = server.url(&format!("/api/calls/appointment/{call_id}"));
        let (_, joined) = post_json(&alice, &format!("{call_url}/join"), json!({})).await;
        let seen_by_customer = joined.to_string();
        assert!(
            !seen_by_customer.contains("dr-leave"),
            "a customer sees no sign-in id: {seen_by_customer}"
        );
        let members = joined["members"].as_array().expect("members");
        assert_eq!(members.len(), 2, "{joined}");
        assert!(
            members
                .iter()
                .all(|m| m["id"].as_str().is_some_and(|id| id.len() == 16))
        );
        post_json(&doc, &format!("{call_url}/join"), json!({})).await;
        let leave = format!("{call_url}/leave");
        let (a, b, c) = tokio::join!(
            post_json(&alice, &leave, json!({})),
            post_json(&doc, &leave, json!({})),
            post_json(&doc, &leave, json!({})),
        );
        for (status, body) in [&a, &b, &c] {
            assert_eq!(*status, 200, "{body}");
        }
        let (_, now) = get_json(&doc, &call_url).await;
        let reason = &now["call"]["session"]["ended_reason"];
        assert!(
            reason == "specialist_left" || reason == "customer_left",
            "{now}"
        );
        for answer in [&b.1, &c.1] {
            assert_eq!(
                answer["call"]["session"]["ended_reason"], *reason,
                "{answer}"
            );
        }
        // The customer's answer: the call as it ended, or, when they left first, the call
        // still open without them (the specialist waits for them to come back).
        let theirs = &a.1;
        assert_eq!(theirs["call"]["id"], call_id.as_str(), "{theirs}");
        if theirs["call"]["session"]["ended_reason"].is_null() {
            assert_eq!(*reason, "specialist_left", "{theirs}");
        } else {
            assert_eq!(
                theirs["call"]["session"]["ended_reason"], *reason,
                "{theirs}"
            );
        }
        // Exactly one end notice for this call (customer presence notices may come between).
        let mut ended = Vec::new();
        while let Ok(Ok(m)) =
            tokio::time::timeout(Duration::from_millis(500), recv(&mut notices)).await
        {
            if m["event"]["event_type"] == "call_ended" {
                ended.push(m["event"].clone());
            }
        }
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert_eq!(ended[0]["call_id"], call_id.as_str());
        assert_eq!(ended[0]["reason"], *reason);
    }
    server.stop().await;
}

/// Leaving before the session starts ends the call, whoever leaves, and the specialist can take
/// the next customer at once (not when the join window runs out).
#[tokio::test]
async fn leaving_before_the_start_frees_the_specialist() {
    let server = TestServer::start().await;
    let doc = specialist(&server, "dr-early").await;
    for (who, reason) in [("specialist", "specialist_left"), ("customer", "canceled")] {
        let alice = client();
        join_queue(&server, &alice).await;
        let acc = accept_next(&server, &doc).await;
        let call_url = server.url(&format!(
            "/api/calls/appointment/{}",
            acc["call"]["call"]["id"].as_str().unwrap()
        ));
        // Nobody has joined: the session (which starts at the first join) has not started.
        let leaver = if who == "specialist" { &doc } else { &alice };
        let (status, left) = post_json(leaver, &format!("{call_url}/leave"), json!({})).await;
        assert_eq!(status, 200, "{left}");
        assert_eq!(
            left["call"]["session"]["ended_reason"], reason,
            "{who}: {left}"
        );
        assert!(left["call"]["session"]["started_at"].is_null());
        // The next customer is served now.
        let bob = client();
        join_queue(&server, &bob).await;
        let next = accept_next(&server, &doc).await;
        let next_url = server.url(&format!(
            "/api/calls/appointment/{}",
            next["call"]["call"]["id"].as_str().unwrap()
        ));
        post_json(&doc, &format!("{next_url}/leave"), json!({})).await;
    }
    server.stop().await;
}

/// A customer in a call sees the specialist by their display name and themselves by their
/// check-in name; nobody's sign-in id.
#[tokio::test]
async fn members_are_named_by_display_names_never_sign_in_ids() {
    let server = TestServer::start().await;
    let pool = db(&server).await;
    callqueue_server::store::Store::add_agent_named(
        &pool,
        "dr-berg-7",
        callqueue_protocol::Role::Specialist,
        &["default".into()],
        "a long secret",
        Some("Dr. Anna Berg"),
    )
    .await
    .unwrap();
    let doc = client();
    let (status, _) = post_json(
        &doc,
        &server.url("/api/agent/session"),
        json!({"user_id": "dr-berg-7", "secret": "a long secret"}),
    )
    .await;
    assert_eq!(status, 200);
    doc.put(server.url("/api/agent/availability"))
        .json(&json!({"available": true}))
        .send()
        .await
        .unwrap();
    let alice = client();
    let (status, joined) = post_json(
        &alice,
        &server.url("/api/groups/default/reservations"),
        json!({"name": "Alice"}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, me) = get_json(&doc, &server.url("/api/agent/session")).await;
    assert_eq!(
        me["display_name"], "Dr. Anna Berg",
        "the console greets by it"
    );
    let acc = accept_next(&server, &doc).await;
    // Her reservation names who is waiting for her ("Dr. Anna Berg is waiting for you"), from
    // memory and, after a restart, from the stored row.
    let reservation_url = server.url(&format!(
        "/api/groups/default/reservations/{}",
        sid(&joined)
    ));
    let (_, r) = get_json(&alice, &reservation_url).await;
    assert_eq!(r["specialist_name"], "Dr. Anna Berg", "{r}");
    assert!(!r.to_string().contains("dr-berg-7"), "{r}");
    let (dir, config) = server.stop().await;
    let server = TestServer::start_in(dir, config).await;
    let (_, r) = get_json(
        &alice,
        &server.url(&format!(
            "/api/groups/default/reservations/{}",
            sid(&joined)
        )),
    )
    .await;
    assert_eq!(
        r["specialist_name"], "Dr. Anna Berg",
        "after a restart: {r}"
    );
    let call_url = server.url(&format!(
        "/api/calls/appointment/{}",
        acc["call"]["call"]["id"].as_str().unwrap()
    ));
    let (_, seen) = get_json(&alice, &call_url).await;
    assert!(!seen.to_string().contains("dr-berg-7"), "{seen}");
    let name_of = |role: &str| {
        seen["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == role)
            .map(|m| m["display_name"].clone())
    };
    assert_eq!(
        name_of("specialist"),
        Some(json!("Dr. Anna Berg")),
        "{seen}"
    );
    assert_eq!(name_of("patient"), Some(json!("Alice")), "{seen}");
    server.stop().await;
}

/// A row we cannot read is our bug: 500 with a generic message, not "database unavailable".
#[tokio::test]
async fn a_row_we_cannot_read_is_a_500_not_a_503() {
    let server = TestServer::start().await;
    let alice = client();
    let r = join_queue(&server, &alice).await;
    // A finished reservation is read from the database; give it a status nobody knows.
    alice
        .delete(server.url(&format!("/api/groups/default/reservations/{}", sid(&r))))
        .send()
        .await
        .unwrap();
    let pool = db(&server).await;
    sqlx::query("UPDATE reservations SET status = 'GROUP_RESERVATION_STATUS_LOST'")
        .execute(&pool)
        .await
        .unwrap();
    let resp = alice
        .get(server.url(&format!("/api/groups/default/reservations/{}", sid(&r))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "internal_error");
    assert!(!body["error"]["message"].as_str().unwrap().contains("LOST"));
    server.stop().await;
}

/// Expired sessions and stream tokens are purged; stream tokens have a table of their own.
#[tokio::test]
async fn expired_sessions_and_tokens_are_purged() {
    let server = TestServer::start_with(|c| c.purge_interval = Duration::from_millis(200)).await;
    let doc = specialist(&server, "dr-purge").await;
    let r = doc
        .post(server.url("/api/agent/stream-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let alice = client();
    let mine = sid(&join_queue(&server, &alice).await);
    let pool = db(&server).await;
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("stream_tokens").await, 1);
    assert_eq!(count("agent_sessions").await, 1, "only the sign-in");
    assert_eq!(count("customers").await, 1);
    let mine_url = server.url(&format!("/api/groups/default/reservations/{mine}"));
    assert_eq!(
        get_json(&alice, &mine_url).await.0,
        200,
        "theirs while current"
    );
    // Everything expires.
    for table in ["agent_sessions", "stream_tokens", "customers"] {
        sqlx::query(&format!(
            "UPDATE {table} SET expires_at = '2000-01-01T00:00:00+00:00'"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    // An expired customer is nobody: the reservation is not theirs any more.
    let (status, _) = get_json(&alice, &mine_url).await;
    assert_eq!(status, 404, "an expired customer's reservation");
    // An expired specialist is signed out.
    let (_, me) = get_json(&doc, &server.url("/api/agent/session")).await;
    assert_eq!(me, Value::Null);
    // The server's own sweep deletes the expired rows (bounded: 50 looks, 100 ms apart).
    let mut left = Vec::new();
    for _ in 0..50 {
        left.clear();
        for table in ["agent_sessions", "stream_tokens", "customers"] {
            let n = count(table).await;
            if n > 0 {
                left.push((table, n));
            }
        }
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "not purged: {left:?}");
    server.stop().await;
}

/// Requests for files that cannot exist are 404s, never the file service's 500.
#[tokio::test]
async fn impossible_file_paths_are_404() {
    let (_dist, path) = dist_with_index();
    let server = TestServer::start_with(|c| c.dist = Some(path)).await;
    let c = client();
    for p in [
        format!("/{}", "a".repeat(3000)),
        "/a%00b".to_string(),
        "/app.js%00.png".to_string(),
        "/%ff".to_string(),
    ] {
        let r = c.get(server.url(&p)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{}", &p[..p.len().min(40)]);
    }
    assert_eq!(
        c.get(server.url("/app.js")).send().await.unwrap().status(),
        200
    );
    server.stop().await;
}

/// A create body that is there must be JSON of the right shape; none at all is fine.
#[tokio::test]
async fn create_bodies_are_checked() {
    let server = TestServer::start().await;
    let url = server.url("/api/groups/default/reservations");
    for bad in ["{", "[]", "\"x\"", "{\"wat\":1}", "nul"] {
        let r = client().post(&url).body(bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("invalid JSON body"),
            "{body}"
        );
    }
    for good in ["", "  ", "{}"] {
        let r = client().post(&url).body(good).send().await.unwrap();
        assert_eq!(r.status(), 201, "{good:?}");
    }
    server.stop().await;
}

/// State changes only with `Content-Type: application/json`: what an HTML form can send is
/// refused with 415.
#[tokio::test]
async fn form_posts_are_refused() {
    let server = TestServer::start().await;
    let raw = reqwest::Client::new();
    let url = server.url("/api/groups/default/reservations");
    for ct in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = raw.post(&url).body("");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 415, "{ct:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media_type");
    }
    let r = raw
        .post(&url)
        .header("content-type", "application/json; charset=utf-8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    server.stop().await;
}

/// The app's pages and the API carry the security headers; cookies are Secure only over TLS,
/// which a trusted proxy may say.
#[tokio::test]
async fn security_headers_and_secure_cookies() {
    let (_dist, path) = dist_with_index();
    let server = TestServer::start_with(|c| {
        c.dist = Some(path);
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let c = client();
    for p in ["/", "/hold/r/abc", "/api/health", "/api/nope"] {
        let r = c.get(server.url(p)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{p}: {csp}");
        assert!(csp.contains("'wasm-unsafe-eval'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(
            h["permissions-policy"]
                .to_str()
                .unwrap()
                .contains("camera=(self)")
        );
    }
    let url = server.url("/api/groups/default/reservations");
    let plain = plain_client().post(&url).send().await.unwrap();
    let cookie = plain.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let tls = plain_client()
        .post(&url)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let cookie = tls.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
    server.stop().await;

    // From a peer that is not a trusted proxy, the header proves nothing.
    let server = TestServer::start().await;
    let r = plain_client()
        .post(server.url("/api/groups/default/reservations"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(
        !r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    server.stop().await;

    // A server on an IPv6 socket sees an IPv4 proxy as ::ffff:127.0.0.1 and still trusts it
    // (named as a range); the client it names gets the limits, not the proxy.
    let server = TestServer::start_with(|c| {
        c.addr = "[::ffff:127.0.0.1]:0".parse().unwrap();
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        c.rate_limits = true;
        c.joins_per_minute = 1;
    })
    .await;
    let url = format!(
        "http://127.0.0.1:{}/api/groups/default/reservations",
        server.base.rsplit(':').next().unwrap()
    );
    for client_ip in ["203.0.113.5", "2001:db8:1:2::7"] {
        let r = plain_client()
            .post(&url)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-for", client_ip)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{client_ip}: its own allowance");
        assert!(
            r.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
    // The same /64 shares one.
    let r = plain_client()
        .post(&url)
        .header("x-forwarded-for", "2001:db8:1:2:ffff::9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    server.stop().await;
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A flood of joins from one address gets 429 with Retry-After; another address (behind a
/// trusted proxy) is not affected.
#[tokio::test]
async fn a_join_flood_is_refused() {
    let server = TestServer::start_with(|c| {
        c.rate_limits = true;
        c.joins_per_minute = 20;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let url = server.url("/api/groups/default/reservations");
    let mut created = 0;
    let mut refused = None;
    for _ in 0..200 {
        // No cookie: each request would be a new customer.
        let r = plain_client()
            .post(&url)
            .header("x-forwarded-for", "203.0.113.7")
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            201 => created += 1,
            429 => {
                refused = Some(r);
                break;
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(created, 20);
    let r = refused.expect("the flood is refused");
    assert!((1..=60).contains(&retry_after(&r)));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");
    let other = plain_client()
        .post(&url)
        .header("x-forwarded-for", "203.0.113.8")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 201);
    let status: Value = client()
        .get(server.url("/api/groups/default/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["queue_length"], 21);
    server.stop().await;
}

/// Guessing a specialist's secret: after a few failures each attempt waits longer (429 with
/// Retry-After), even with the right secret; another user id is not affected.
#[tokio::test]
async fn password_guessing_is_slowed_down() {
    let server = TestServer::start_with(|c| {
        c.rate_limits = true;
        c.sign_ins_per_minute = 1000;
    })
    .await;
    server.add_agent("dr-guess", "right").await;
    server.add_agent("dr-other", "right").await;
    let url = server.url("/api/agent/session");
    let attempt = |user: &'static str, secret: &'static str| {
        let url = url.clone();
        async move {
            plain_client()
                .post(&url)
                .json(&json!({"user_id": user, "secret": secret}))
                .send()
                .await
                .unwrap()
        }
    };
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..6 {
        let r = attempt("dr-guess", "wrong").await;
        statuses.push(r.status().as_u16());
        last = Some(r);
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let r = attempt("dr-guess", "right").await;
    assert_eq!(
        r.status(),
        429,
        "the right secret waits too, from the guesser's address"
    );
    assert!(retry_after(&r) >= 1);
    let _ = last;
    assert_eq!(attempt("dr-other", "right").await.status(), 200);
    // The guesser locked nobody out: the specialist at another address signs in at once.
    let elsewhere = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = elsewhere
        .post(&url)
        .header("content-type", "application/json")
        .body(json!({"user_id": "dr-guess", "secret": "right"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the owner, from their own address");
    server.stop().await;

    // Per address: a quick run of sign-ins for many user ids is cut off too.
    let server = TestServer::start_with(|c| {
        c.rate_limits = true;
        c.sign_ins_per_minute = 5;
    })
    .await;
    let mut codes = Vec::new();
    for i in 0..8 {
        let r = plain_client()
            .post(server.url("/api/agent/session"))
            .json(&json!({"user_id": format!("u{i}"), "secret": "x"}))
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
    }
    assert_eq!(&codes[..5], &[401; 5]);
    assert_eq!(&codes[5..], &[429; 3]);
    server.stop().await;
}

/// One address may hold so many streams; past that a clear 429, and a closed stream gives its
/// place back.
#[tokio::test]
async fn streams_per_address_are_capped() {
    let server = TestServer::start_with(|c| {
        c.rate_limits = true;
        c.streams_per_client = 3;
    })
    .await;
    let (alice, jar) = client_with_jar();
    let r = join_queue(&server, &alice).await;
    let url = server.url(&format!("/api/events/g/default/r/{}", sid(&r)));
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(SseReader::open(&alice, &url, None).await);
    }
    let refused = alice.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    // Through the accept loop's own path (a stream as a new connection's first request), with
    // the customer's own cookie: the accept loop must refuse it itself, since a feed it opened
    // would never reach the router's check.
    let cookie = {
        use reqwest::cookie::CookieStore;
        jar.cookies(&server.url("/").parse().unwrap())
            .expect("the customer's cookie")
    };
    let cookie = cookie.to_str().unwrap();
    let addr = server.base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let path = url.trim_start_matches(&server.base);
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    open.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = SseReader::open(&alice, &url, None).await;
    drop(again);
    server.stop().await;
}

/// Past the connection cap, a new connection is told the server is busy (503) and closed.
#[tokio::test]
async fn connections_over_the_cap_are_refused_clearly() {
    let server = TestServer::start_with(|c| c.max_connections = 4).await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("server_busy"));
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = plain_client()
        .get(server.url("/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

/// 6,000 malformed requests of every kind: none is answered 5xx, the server stays up, and the
/// reservations made before are as they were.
#[tokio::test]
async fn a_burst_of_malformed_requests_gets_no_5xx_and_changes_nothing() {
    let (_dist, path) = dist_with_index();
    let server = TestServer::start_with(|c| c.dist = Some(path)).await;
    let (alice, bob) = (client(), client());
    let a = join_queue(&server, &alice).await;
    let b = join_queue(&server, &bob).await;
    let addr = server.base.trim_start_matches("http://").to_string();

    let requests = malformed_requests(&sid(&a));
    assert!(requests.len() >= 6000, "{}", requests.len());
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    let started = std::time::Instant::now();
    // 8 connections at a time, each request on its own connection (raw bytes must not leave a
    // connection in a state the next request depends on).
    let chunks: Vec<Vec<Vec<u8>>> = requests.chunks(750).map(|c| c.to_vec()).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for raw in chunk {
                seen.push((send_raw(&addr, &raw).await, raw));
            }
            seen
        }));
    }
    for task in tasks {
        for (status, raw) in task.await.unwrap() {
            assert!(
                !status.starts_with('5'),
                "{status} for {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            );
            *by_status.entry(status).or_default() += 1;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(120));
    eprintln!("statuses: {by_status:?}");

    for (c, r) in [(&alice, &a), (&bob, &b)] {
        let now: Value = c
            .get(server.url(&format!("/api/groups/default/reservations/{}", sid(r))))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(now["reservation_status"], r["reservation_status"]);
        assert_eq!(now["queue_position"], r["queue_position"]);
        assert_eq!(now["updated_at"], r["updated_at"]);
    }
    let r = client()
        .get(server.url("/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

/// Sends one raw request on a new connection; the status code ("none" when the server closed
/// without an answer, as it may for bytes that are not HTTP).
async fn send_raw(addr: &str, raw: &[u8]) -> String {
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return "connect failed".into();
    };
    let _ = tcp.write_all(raw).await;
    let _ = tcp.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 || answer.len() > 64 {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let head = String::from_utf8_lossy(&answer);
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .map_or_else(|| "none".to_string(), str::to_string)
}

/// Paths, methods, bodies, headers and raw bytes that are wrong in every way we could think of,
/// against every route, until there are at least 6,000. Deterministic (a fixed LCG).
fn malformed_requests(live_sid: &str) -> Vec<Vec<u8>> {
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let long = "a".repeat(3000);
    let paths = vec![
        "/".to_string(),
        format!("/{long}"),
        "/a%00b".into(),
        "/%ff%fe".into(),
        "/..%2f..%2fetc/passwd".into(),
        "/api".into(),
        "/api/".into(),
        "/api/health".into(),
        "/api/groups//status".into(),
        "/api/groups/%00/status".into(),
        format!("/api/groups/{long}/status"),
        "/api/groups/default/status".into(),
        "/api/groups/default/reservations".into(),
        "/api/groups/nowhere/reservations".into(),
        format!("/api/groups/default/reservations/{live_sid}"),
        "/api/groups/default/reservations/bad$id".into(),
        "/api/groups/default/reservations/%2e%2e".into(),
        format!("/api/events/g/default/r/{live_sid}"),
        "/api/events/g/default/r/".into(),
        "/api/events/g/%zz/r/x".into(),
        "/api/agent/session".into(),
        "/api/agent/availability".into(),
        "/api/agent/stream-token".into(),
        "/api/groups/default/queue".into(),
        "/api/groups/default/events".into(),
        "/api/groups/default/accept".into(),
        "/api/calls/appointment/nosuch".into(),
        "/api/calls/other/nosuch/join".into(),
        "/api/calls/appointment/nosuch/leave".into(),
        "/api/calls/appointment/nosuch/events".into(),
        "/api/calls/appointment/%00/join".into(),
        "/api/webhooks/streem".into(),
        "/api/ws".into(),
        "/hold/r/abc?x=%00".into(),
    ];
    let methods = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "BREW",
        "get", "G\x01T",
    ];
    let bodies: Vec<&[u8]> = vec![
        b"",
        b"{",
        b"[]",
        b"null",
        b"\"x\"",
        b"{\"available\":\"yes\"}",
        b"{\"user_id\":1,\"secret\":[]}",
        b"{\"reservation_sid\":\"../../x\"}",
        b"{\"settings_override\":{\"limits\":{\"max_duration_seconds\":-1}}}",
        b"{\"settings_override\":{\"limits\":{\"max_duration_seconds\":99999999999}}}",
        b"{\"event\":{\"event_type\":\"group_reservation_updated\",\"payload\":7}}",
        b"\xff\xfe\x00\x00",
        b"{\"a\":\"\\ud800\"}",
    ];
    let headers = [
        "Content-Type: application/json\r\n",
        "Content-Type: text/plain\r\n",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: application/json\r\nCookie: cq_customer=%00; cq_agent=\r\n",
        "Cookie: cq_agent=zzz\r\nContent-Type: application/json\r\n",
        "Last-Event-ID: -1\r\n",
        "X-Forwarded-For: not-an-ip, ::::\r\n",
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
        "Accept-Encoding: br;q=nan, gzip;q=2\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Content-Length: 99999999\r\n",
        "Content-Length: -5\r\n",
        "X-Streem-Signature: sha256=zz\r\nContent-Type: application/json\r\n",
    ];
    let raw_bytes: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\x03\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
        vec![b'A'; 70_000],
        b"POST /api/groups/default/reservations HTTP/1.1\r\nContent-Length: 5\r\n\r\n{".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello start
        format!("GET /{} HTTP/1.1\r\n\r\n", "b".repeat(20_000)).into_bytes(),
    ];
    let mut out = Vec::new();
    for raw in &raw_bytes {
        out.push(raw.clone());
    }
    while out.len() < 6000 {
        let path = &paths[next() % paths.len()];
        let method = methods[next() % methods.len()];
        let body = bodies[next() % bodies.len()];
        let header = headers[next() % headers.len()];
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{header}");
        if !header.contains("Content-Length") && !header.contains("Transfer-Encoding") {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("Connection: close\r\n\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        out.push(bytes);
        if next() % 20 == 0 {
            out.push(raw_bytes[next() % raw_bytes.len()].clone());
        }
    }
    out
}

/// Reads what arrives on `tcp` until it closes, or `within` passes (then `None`): whether the
/// server closed it, and what it said.
async fn read_to_close(tcp: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// Reads one whole answer to a `GET /api/health` (its small JSON body) from a kept-alive
/// connection (or its read half).
async fn read_health(tcp: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while !got.ends_with('}') {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    })
    .await;
    got
}

const HEALTH: &[u8] = b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n";

/// One address holds twice the server's connection cap in idle and slow connections: it gets
/// its own share and a 429 past it, another address (127.0.0.2) is still served, and the server
/// closes the idle and slow ones within the idle timeout (on a first request and on a later
/// one, where hyper's own header timer holds).
#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let server = TestServer::start_with(|c| {
        c.rate_limits = true;
        c.max_connections = 8;
        c.connections_per_client = 4;
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    let mut trickles = Vec::new();
    for i in 0..16 {
        let mut tcp = TcpStream::connect(&addr).await.unwrap();
        match i % 3 {
            // Idle after one request.
            0 => {
                tcp.write_all(HEALTH).await.unwrap();
            }
            // A first request head sent a byte at a time, or a second one after a first.
            kind => {
                if kind == 2 {
                    tcp.write_all(HEALTH).await.unwrap();
                }
                let (mut read, mut write) = tcp.into_split();
                trickles.push(tokio::spawn(async move {
                    if kind == 2 {
                        let _ = read_health(&mut read).await;
                    }
                    // At most 40 bytes, 4 a second: ten seconds, far past the idle timeout.
                    for b in b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: 1234567"
                        .iter()
                        .take(40)
                    {
                        if write.write_all(&[*b]).await.is_err() {
                            return true;
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    false
                }));
                continue;
            }
        }
        held.push(tcp);
    }
    // Someone else is served at once.
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = other.get(server.url("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 200, "another address is served");
    // The idle ones: the first four connections took 127.0.0.1's places, the rest were told.
    let mut answers = Vec::new();
    for tcp in &mut held {
        answers.push(read_to_close(tcp, Duration::from_secs(6)).await);
    }
    let refused = answers
        .iter()
        .flatten()
        .filter(|a| a.starts_with("HTTP/1.1 429") && a.contains("too_many_requests"))
        .count();
    let served = answers
        .iter()
        .flatten()
        .filter(|a| a.starts_with("HTTP/1.1 200"))
        .count();
    assert!(
        answers.iter().all(Option::is_some),
        "every idle connection is closed within the idle timeout: {answers:?}"
    );
    assert!(served >= 1 && refused >= 2, "{answers:?}");
    // The slow senders: the server stopped reading and closed them long before they finished.
    for trickle in trickles {
        assert!(
            tokio::time::timeout(Duration::from_secs(15), trickle)
                .await
                .unwrap()
                .unwrap(),
            "a slow sender was closed before it sent its whole head"
        );
    }
    server.stop().await;
}

/// The request head limit holds on every request of a connection, not only the first.
#[tokio::test]
async fn a_later_request_on_a_connection_has_the_same_head_limit() {
    let server = TestServer::start().await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(HEALTH).await.unwrap();
    let first = read_health(&mut tcp).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let big = format!(
        "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let _ = tcp.write_all(big.as_bytes()).await;
    let answer = read_to_close(&mut tcp, Duration::from_secs(5))
        .await
        .unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    server.stop().await;
}

/// Someone who is not a member asking for a call's events, known or not, gets a 404 and costs
/// one read: never a reconcile of every group (on PostgreSQL, where nodes reconcile).
#[tokio::test]
async fn a_strangers_call_events_cost_no_reconcile() {
    let server = TestServer::start().await;
    let doc = specialist(&server, "dr-recon").await;
    let alice = client();
    join_queue(&server, &alice).await;
    let acc = accept_next(&server, &doc).await;
    let real = acc["call"]["call"]["id"].as_str().unwrap().to_string();
    let stranger = client();
    join_queue(&server, &stranger).await;
    let before = server.store.reconciles();
    let started = std::time::Instant::now();
    for i in 0..40 {
        let id = if i % 4 == 0 {
            real.clone()
        } else {
            format!("{i:032x}")
        };
        let r = stranger
            .get(server.url(&format!("/api/calls/appointment/{id}/events")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{id}");
    }
    // The node's own reconcile runs every second and may fall in the loop; the thirty unknown
    // ids asked for would each cause one more.
    let caused = server.store.reconciles() - before;
    let periodic = started.elapsed().as_secs() + 1;
    assert!(
        caused <= periodic && periodic < 30,
        "{caused} reconciles in {periodic} s"
    );
    // A member's stream still opens.
    let mut events = SseReader::open(
        &alice,
        &server.url(&format!("/api/calls/appointment/{real}/events")),
        None,
    )
    .await;
    assert!(events.next().await.is_some());
    server.stop().await;
}
