//! The admin API: only accounts with the role `admin` may use it (401 signed out, 403 signed in
//! without it); specialists added, disabled (signed out at once), enabled, given a new secret;
//! groups with their settings and opening hours, which decide whether customers may join; and
//! the audit log of all of it. Runs on SQLite and, with `CALLQUEUE_TEST_POSTGRES`, PostgreSQL.

mod common;

use callqueue_protocol::Role;
use common::*;
use serde_json::{Value, json};

/// An admin account, signed in.
async fn admin(server: &TestServer) -> reqwest::Client {
    let pool = callqueue_server::db::open(&server.config.database)
        .await
        .unwrap();
    callqueue_server::store::Store::add_account(
        &pool,
        "boss",
        "admin",
        &["default".to_string()],
        "admin secret 123",
        Some("The Boss"),
    )
    .await
    .unwrap();
    sign_in(server, "boss", "admin secret 123").await.1
}

async fn sign_in(server: &TestServer, user: &str, secret: &str) -> (u16, reqwest::Client) {
    let c = client();
    let (status, _) = post_json(
        &c,
        &server.url("/api/agent/session"),
        json!({"user_id": user, "secret": secret}),
    )
    .await;
    (status, c)
}

const ROUTES: [(&str, &str); 9] = [
    ("GET", "/api/admin/specialists"),
    ("POST", "/api/admin/specialists"),
    ("POST", "/api/admin/specialists/dr-a/disable"),
    ("POST", "/api/admin/specialists/dr-a/enable"),
    ("POST", "/api/admin/specialists/dr-a/reset-secret"),
    ("GET", "/api/admin/groups"),
    ("POST", "/api/admin/groups"),
    ("PUT", "/api/admin/groups/default"),
    ("GET", "/api/admin/audit"),
];

async fn call(c: &reqwest::Client, server: &TestServer, method: &str, path: &str) -> u16 {
    let r = match method {
        "GET" => c.get(server.url(path)),
        "PUT" => c.put(server.url(path)).json(&json!({})),
        _ => c.post(server.url(path)).json(&json!({})),
    };
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn only_admins_may_use_the_admin_api() {
    let server = TestServer::start().await;
    let nobody = client();
    let customer = client();
    join_queue(&server, &customer).await;
    let doc = specialist(&server, "dr-a").await;
    let boss = admin(&server).await;
    for (method, path) in ROUTES {
        assert_eq!(
            call(&nobody, &server, method, path).await,
            401,
            "{method} {path} signed out"
        );
        assert_eq!(
            call(&customer, &server, method, path).await,
            401,
            "{method} {path} as a customer"
        );
        assert_eq!(
            call(&doc, &server, method, path).await,
            403,
            "{method} {path} as a specialist"
        );
    }
    let (status, list) = get_json(&boss, &server.url("/api/admin/specialists")).await;
    assert_eq!(status, 200);
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user_id"] == "boss")
        .unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["signed_in"], true);
    let dr = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user_id"] == "dr-a")
        .unwrap();
    assert_eq!(
        (dr["role"].as_str(), dr["available"].as_bool()),
        (Some("specialist"), Some(true))
    );
    // The admin's session says so; a specialist's does not.
    let (_, session) = get_json(&boss, &server.url("/api/agent/session")).await;
    assert_eq!(session["admin"], true);
    let (_, session) = get_json(&doc, &server.url("/api/agent/session")).await;
    assert_eq!(session["admin"], false);
    // JSON only, like the rest of the API.
    let r = boss
        .post(server.url("/api/admin/specialists"))
        .header("content-type", "text/plain")
        .body("user_id=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Every admin route is in the OpenAPI document.
    let (_, doc_json) = get_json(&client(), &server.url("/api/openapi.json")).await;
    for (method, path) in ROUTES {
        let templated = path
            .replace("/dr-a/", "/{user_id}/")
            .replace("/groups/default", "/groups/{group}");
        let op = &doc_json["paths"][&templated][method.to_lowercase()];
        assert!(op.is_object(), "{method} {templated} documented");
        assert!(
            op["responses"]["403"].is_object(),
            "{method} {templated} says 403"
        );
    }
}

#[tokio::test]
async fn admins_manage_specialists_and_every_action_is_audited() {
    let server = TestServer::start().await;
    let boss = admin(&server).await;
    let url = server.url("/api/admin/specialists");
    let (status, issued) = post_json(
        &boss,
        &url,
        json!({"user_id": "dr-new", "display_name": "Dr. Nora Lind", "groups": ["default"], "role": "specialist"}),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let secret = issued["secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 16, "a real secret: {secret}");
    let (status, _) = post_json(
        &boss,
        &url,
        json!({"user_id": "dr-new", "groups": ["default"], "role": "specialist"}),
    )
    .await;
    assert_eq!(status, 409, "the sign-in id is taken");
    let (status, _) = post_json(
        &boss,
        &url,
        json!({"user_id": "x y", "groups": ["default"], "role": "specialist"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post_json(
        &boss,
        &url,
        json!({"user_id": "dr-x", "groups": ["nowhere"], "role": "specialist"}),
    )
    .await;
    assert_eq!(status, 400, "an unknown group");

    // The new specialist signs in with the secret shown, and is greeted by name.
    let (status, dr) = sign_in(&server, "dr-new", &secret).await;
    assert_eq!(status, 200);
    let (_, me) = get_json(&dr, &server.url("/api/agent/session")).await;
    assert_eq!(me["display_name"], "Dr. Nora Lind");

    // Disabled: signed out at once, and cannot sign in again.
    let (status, _) = post_json(&boss, &format!("{url}/dr-new/disable"), json!({})).await;
    assert_eq!(status, 204);
    let (_, me) = get_json(&dr, &server.url("/api/agent/session")).await;
    assert!(me.is_null(), "the session ended: {me}");
    let r = dr
        .put(server.url("/api/agent/availability"))
        .json(&json!({"available": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, _) = sign_in(&server, "dr-new", &secret).await;
    assert_eq!(status, 403, "a disabled account cannot sign in");
    let (status, _) = post_json(&boss, &format!("{url}/boss/disable"), json!({})).await;
    assert_eq!(status, 409, "not oneself");
    let (status, _) = post_json(&boss, &format!("{url}/nobody/disable"), json!({})).await;
    assert_eq!(status, 404);

    // Enabled again; a reset secret replaces the old one.
    let (status, _) = post_json(&boss, &format!("{url}/dr-new/enable"), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(sign_in(&server, "dr-new", &secret).await.0, 200);
    let (status, reset) = post_json(&boss, &format!("{url}/dr-new/reset-secret"), json!({})).await;
    assert_eq!(status, 200);
    let new_secret = reset["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(
        sign_in(&server, "dr-new", &secret).await.0,
        401,
        "the old secret"
    );
    assert_eq!(
        sign_in(&server, "dr-new", new_secret).await.0,
        200,
        "the new one"
    );

    // The audit log: who did what to whom, newest first.
    let (status, log) = get_json(&boss, &server.url("/api/admin/audit")).await;
    assert_eq!(status, 200);
    let actions: Vec<(&str, &str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("boss", "specialist.reset_secret", "dr-new"),
            ("boss", "specialist.enable", "dr-new"),
            ("boss", "specialist.disable", "dr-new"),
            ("boss", "specialist.add", "dr-new"),
        ]
    );
    assert!(
        log[3]["detail"].as_str().unwrap().contains("Dr. Nora Lind"),
        "{log}"
    );
    // Nothing secret in it.
    assert!(!log.to_string().contains(new_secret));
}

/// The group's settings as the admin page sends them.
fn hours(closed_today: bool) -> Value {
    let today = chrono::Utc::now().date_naive().to_string();
    json!({
        "display_name": "Billing",
        "call_seconds": 900,
        "join_window_secs": 60,
        "require_name": true,
        "time_zone": "UTC",
        // Every day, all day: open unless today is a closed date.
        "hours": (0..7).map(|d| json!({"weekday": d, "opens": "00:00", "closes": "24:00"})).collect::<Vec<_>>(),
        "closed_dates": if closed_today { vec![today] } else { vec![] },
        "at_closing": "serve",
    })
}

#[tokio::test]
async fn groups_and_opening_hours_decide_who_may_join() {
    let server = TestServer::start().await;
    let boss = admin(&server).await;
    let (status, group) = post_json(
        &boss,
        &server.url("/api/admin/groups"),
        json!({"name": "billing", "settings": hours(true)}),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    assert_eq!(group["open"], false, "closed today");
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(1)).to_string();
    assert_eq!(
        group["opens_at"],
        format!("{tomorrow}T00:00:00Z"),
        "{group}"
    );
    let (status, _) = post_json(
        &boss,
        &server.url("/api/admin/groups"),
        json!({"name": "billing"}),
    )
    .await;
    assert_eq!(status, 409, "exists");

    // The customer's view: closed, and when it opens; joining is refused with `closed`.
    let customer = client();
    let (status, seen) = get_json(&customer, &server.url("/api/groups/billing/status")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (seen["open"].as_bool(), seen["name_required"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(seen["opens_at"], group["opens_at"]);
    let (status, body) = post_json(
        &customer,
        &server.url("/api/groups/billing/reservations"),
        json!({"name": "Ada"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("closed")),
        "{body}"
    );

    // Open again: the customer joins (with the name this group requires).
    let (status, _) = put_json(
        &boss,
        &server.url("/api/admin/groups/billing"),
        hours(false),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post_json(
        &customer,
        &server.url("/api/groups/billing/reservations"),
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "a name is required here");
    let (status, joined) = post_json(
        &customer,
        &server.url("/api/groups/billing/reservations"),
        json!({"name": "Ada"}),
    )
    .await;
    assert_eq!(status, 201, "{joined}");

    // Closed with her inside (serve those waiting): she keeps her place, nobody new joins.
    put_json(&boss, &server.url("/api/admin/groups/billing"), hours(true)).await;
    let (status, again) = post_json(
        &customer,
        &server.url("/api/groups/billing/reservations"),
        json!({"name": "Ada"}),
    )
    .await;
    assert_eq!(status, 200, "her own reservation: {again}");
    let other = client();
    let (status, _) = post_json(
        &other,
        &server.url("/api/groups/billing/reservations"),
        json!({"name": "Bo"}),
    )
    .await;
    assert_eq!(status, 409);

    // A specialist of the group serves her a 15-minute call with a 60 s join window.
    let pool = callqueue_server::db::open(&server.config.database)
        .await
        .unwrap();
    callqueue_server::store::Store::add_agent_named(
        &pool,
        "dr-b",
        Role::Specialist,
        &["billing".into()],
        "secret-1",
        None,
    )
    .await
    .unwrap();
    let (_, dr) = sign_in(&server, "dr-b", "secret-1").await;
    dr.put(server.url("/api/agent/availability"))
        .json(&json!({"available": true}))
        .send()
        .await
        .unwrap();
    let (status, accepted) =
        post_json(&dr, &server.url("/api/groups/billing/accept"), json!({})).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(
        accepted["call"]["call"]["settings"]["limits"]["max_duration_seconds"], 900,
        "{accepted}"
    );
    let (_, r) = get_json(
        &customer,
        &server.url(&format!(
            "/api/groups/billing/reservations/{}",
            sid(&joined)
        )),
    )
    .await;
    let deadline: chrono::DateTime<chrono::Utc> =
        r["join_deadline"].as_str().unwrap().parse().unwrap();
    let window = deadline - chrono::Utc::now();
    assert!(
        window <= chrono::Duration::seconds(60) && window > chrono::Duration::seconds(50),
        "{r}"
    );

    // Bad settings are named.
    let mut bad = hours(false);
    bad["time_zone"] = json!("Mars/Olympus");
    let (status, body) = put_json(&boss, &server.url("/api/admin/groups/billing"), bad).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("time zone")
    );

    let (_, log) = get_json(&boss, &server.url("/api/admin/audit")).await;
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["group.update", "group.update", "group.add"]);
    assert!(
        log[2]["detail"].as_str().unwrap().contains("closed on"),
        "{log}"
    );
}

#[tokio::test]
async fn a_queue_that_closes_at_closing_time_sends_those_waiting_away() {
    let server = TestServer::start().await;
    let boss = admin(&server).await;
    let url = server.url("/api/admin/groups/default");
    let (status, _) = put_json(&boss, &url, hours(false)).await;
    assert_eq!(status, 200);
    let ada = client();
    let (status, joined) = post_json(
        &ada,
        &server.url("/api/groups/default/reservations"),
        json!({"name": "Ada"}),
    )
    .await;
    assert_eq!(status, 201);
    let mine = server.url(&format!(
        "/api/groups/default/reservations/{}",
        sid(&joined)
    ));

    // Closed, serving those who wait: she stays (a few sweeps later).
    put_json(&boss, &url, hours(true)).await;
    tokio::time::sleep(server.config.sweep_interval * 5).await;
    let (_, r) = get_json(&ada, &mine).await;
    assert_eq!(r["reservation_status"], "GROUP_RESERVATION_STATUS_QUEUED");

    // Closing the queue instead: her place ends at the next sweep.
    let mut close = hours(true);
    close["at_closing"] = json!("close");
    put_json(&boss, &url, close).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, r) = get_json(&ada, &mine).await;
        if r["reservation_status"] == "GROUP_RESERVATION_STATUS_EXPIRED" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {r}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, status) = get_json(&ada, &server.url("/api/groups/default/status")).await;
    assert_eq!(status["queue_length"], 0);
}

async fn put_json(c: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let r = c.put(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
