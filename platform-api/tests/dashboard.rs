//! The dashboard over HTTP: sign-in (wrong, empty, cross-site, and an open redirect refused),
//! the session cookie's attributes, a session that expires, actions without or with a wrong
//! cross-site token, pages of services that do not exist or belong to another tenant, an admin
//! seeing every tenant, and what a container logs rendered escaped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Daemon, OWNER, wait_until};
use reqwest::blocking::{Client, Response};
use reqwest::redirect::Policy;
use serde_json::json;

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Signs in; returns the session cookie (`faas_session=…`).
fn sign_in(d: &Daemon, token: &str) -> String {
    let r = client()
        .post(d.api("/dashboard/login"))
        .form(&[("token", token), ("next", "/dashboard")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

fn page(d: &Daemon, cookie: &str, path: &str) -> (u16, String, String) {
    let r = client()
        .get(d.api(path))
        .header("cookie", cookie)
        .header("accept", "text/html")
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let to = location(&r);
    (status, to, r.text().unwrap())
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf token")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

fn post(d: &Daemon, cookie: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = client()
        .post(d.api(path))
        .header("cookie", cookie)
        .form(form)
        .send()
        .unwrap();
    (r.status().as_u16(), location(&r))
}

#[test]
fn sign_in_sessions_and_refusals() {
    let d = Daemon::start_with(&[("FAAS_PLATFORM_SESSION_TTL", "3s")]);
    let c = client();

    // Not signed in: pages go to the sign-in page, streams and actions answer 401.
    let r = c
        .get(d.api("/dashboard/releases"))
        .header("accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/dashboard/login?next=/dashboard/releases");
    let r = c.get(d.api("/dashboard/live")).send().unwrap();
    assert_eq!(r.status(), 401);

    // Wrong, empty and cross-site sign-ins are refused with a reason.
    let r = c
        .post(d.api("/dashboard/login"))
        .form(&[("token", "faas_nope")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().unwrap().contains("not known to this platform"));
    let r = c
        .post(d.api("/dashboard/login"))
        .form(&[("token", "")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(d.api("/dashboard/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", d.token.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);

    // A good token: an HttpOnly, SameSite=Strict cookie for /dashboard, and no open redirect.
    let r = c
        .post(d.api("/dashboard/login"))
        .form(&[
            ("token", d.token.as_str()),
            ("next", "https://evil.example/"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/dashboard");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(set.contains(part), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let (status, _, html) = page(&d, &cookie, "/dashboard");
    assert_eq!(status, 200);
    assert!(html.contains("admin@faas.local"));

    // Pages that are not there.
    let (status, _, html) = page(&d, &cookie, "/dashboard/services/nope");
    assert_eq!(status, 404);
    assert!(html.contains("There is no service `nope` you can see."));
    let (status, _, _) = page(&d, &cookie, "/dashboard/no/such/page");
    assert_eq!(status, 404);

    // The session expires: back to the sign-in page, which says so.
    wait_until("the session expires", Duration::from_secs(20), || {
        page(&d, &cookie, "/dashboard").0 == 303
    });
    let (_, to, _) = page(&d, &cookie, "/dashboard");
    assert!(to.ends_with("&expired=1"), "{to}");
    let (status, _, html) = page(&d, "", &to);
    assert_eq!(status, 200);
    assert!(html.contains("Your session has expired"));
}

#[test]
fn members_see_their_own_actions_need_the_token_and_logs_are_escaped() {
    let d = Daemon::start();
    let member = |tenant: &str| {
        let (status, t) = d.post("/v1/tokens", json!({ "tenant": tenant, "role": "member" }));
        assert_eq!(status, 201, "{t}");
        t["token"].as_str().unwrap().to_owned()
    };
    let (team, other) = (member(OWNER), member("other@example.com"));
    d.create_service("loud");
    let (status, body) = d.post(
        "/v1/services",
        json!({ "name": "theirs", "owner": "other@example.com" }),
    );
    assert_eq!(status, 201, "{body}");
    // Its output carries markup; it dies at once after its first start.
    let manifest = format!(
        r#"name = "loud"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "if [ -e /tmp/booted ]; then echo '<img src=x onerror=alert(1)> gone'; exit 3; fi; touch /tmp/booted; mkdir -p /tmp/www && echo ok > /tmp/www/_info && httpd -p 8080 -h /tmp/www; sleep 4; exit 1"]
[health]
path = "/_info"
interval = "500ms"
grace = "20s"
[size]
cpu = 0.05
"#
    );
    assert_eq!(
        d.deploy_and_wait("loud", "prod", &manifest)["state"],
        "succeeded"
    );

    let mine = sign_in(&d, &team);
    let theirs = sign_in(&d, &other);
    let (_, _, html) = page(&d, &mine, "/dashboard");
    assert!(html.contains("data-service=\"loud\"") && !html.contains("data-service=\"theirs\""));
    let (_, _, html) = page(&d, &sign_in(&d, &d.token), "/dashboard");
    assert!(
        html.contains("data-service=\"loud\"") && html.contains("data-service=\"theirs\""),
        "an admin sees every tenant"
    );

    // Another tenant's member: no page, no action, even with its own valid cross-site token.
    let (status, _, _) = page(&d, &theirs, "/dashboard/services/loud");
    assert_eq!(status, 404);
    let their_csrf = csrf_of(&page(&d, &theirs, "/dashboard").2);
    let (status, _) = post(
        &d,
        &theirs,
        "/dashboard/services/loud/scale",
        &[("csrf", &their_csrf), ("env", "prod"), ("replicas", "3")],
    );
    assert_eq!(status, 404);

    // The owner's page, and its actions: refused without the token, with a wrong one, or from
    // another site; done with it.
    let (status, _, html) = page(&d, &mine, "/dashboard/services/loud");
    assert_eq!(status, 200);
    let csrf = csrf_of(&html);
    let scale = |cookie: &str, form: &[(&str, &str)]| {
        post(&d, cookie, "/dashboard/services/loud/scale", form)
    };
    assert_eq!(scale(&mine, &[("env", "prod"), ("replicas", "2")]).0, 403);
    assert_eq!(
        scale(
            &mine,
            &[("csrf", "faas_guess"), ("env", "prod"), ("replicas", "2")]
        )
        .0,
        403
    );
    let r = client()
        .post(d.api("/dashboard/services/loud/scale"))
        .header("cookie", &mine)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str()), ("env", "prod"), ("replicas", "2")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        scale(
            &mine,
            &[("csrf", &csrf), ("env", "prod"), ("replicas", "lots")]
        )
        .0,
        400
    );
    let (status, to) = scale(
        &mine,
        &[("csrf", &csrf), ("env", "prod"), ("replicas", "1")],
    );
    assert_eq!(status, 303, "{to}");
    assert!(to.contains("done=scaling%20to%201"), "{to}");

    // The crash loop's last lines are shown as text, never as markup.
    wait_until("a crash loop of loud", Duration::from_secs(60), || {
        page(&d, &mine, "/dashboard/services/loud")
            .2
            .contains("data-kind=\"crash-loop\"")
    });
    let (_, _, html) = page(&d, &mine, "/dashboard/services/loud");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt; gone"),
        "escaped"
    );
    assert!(!html.contains("<img src=x"), "never raw");
}

#[test]
fn a_canary_shows_its_step_and_is_aborted_from_the_page() {
    let d = Daemon::start();
    d.create_service("bird");
    let v1 = common::manifest_with(
        "bird",
        "v1",
        2,
        &common::canary_table("[25, 100]", "1s", 1, false),
    );
    assert_eq!(d.deploy_and_wait("bird", "prod", &v1)["state"], "succeeded");
    let v2 = common::manifest_with(
        "bird",
        "v2",
        2,
        &common::canary_table("[25, 100]", "1s", 1, false),
    );
    let id = d.deploy("bird", "prod", &v2);
    let cookie = sign_in(&d, &d.token);
    // The canary holds at its first step: the page shows both sets' weights.
    wait_until(
        "the canary's first step on the page",
        Duration::from_secs(60),
        || {
            page(&d, &cookie, "/dashboard/services/bird")
                .2
                .contains("id=\"canary\"")
        },
    );
    let (_, _, html) = page(&d, &cookie, "/dashboard/services/bird");
    assert!(
        html.contains("canary v2</td><td class=\"num\">25 %"),
        "{html}"
    );
    assert!(
        html.contains("baseline v1</td><td class=\"num\">75 %"),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let (status, to) = post(
        &d,
        &cookie,
        "/dashboard/services/bird/canary/abort",
        &[("csrf", &csrf), ("env", "prod")],
    );
    assert_eq!(status, 303, "{to}");
    assert!(to.contains("done=canary%20aborted"), "{to}");
    let end = d.wait_deployment("bird", &id, Duration::from_secs(60));
    assert_eq!(end["state"], "rolled_back", "{end:#}");
    let (status, _) = post(
        &d,
        &cookie,
        "/dashboard/services/bird/canary/promote",
        &[("csrf", &csrf), ("env", "prod")],
    );
    assert_eq!(status, 409, "no canary left to promote");
    let (_, _, html) = page(&d, &cookie, "/dashboard/services/bird");
    assert!(
        html.contains("data-state=\"rolled_back\""),
        "the timeline keeps it"
    );
    assert!(
        html.contains("class=\"canary-step\""),
        "with its canary step's figures"
    );
}
