//! Task chains on a real daemon with real workers (the python-action template's helper) over
//! the test RabbitMQ, over HTTP and in-process: outputs pass step to step; a daemon killed
//! mid-chain resumes and every effect happens once; a worker killed mid-step is replaced;
//! approvals wait, pass their input on, or time out; an action that stops beating turns
//! unavailable and its task fails at the step's timeout; bad definitions are refused with
//! their place before anything is launched; tenants see only their own actions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Daemon;
use common::workers::{Worker, amqp_url, run_task, unique, wait_action, wait_task, wait_until};
use serde_json::{Value, json};

fn daemon() -> Daemon {
    let amqp = amqp_url();
    Daemon::start_with(&[("FAAS_PLATFORM_TASKS_AMQP_URL", amqp.as_str())])
}

fn chain(p: &str) -> String {
    format!(
        r#"
name = "arith"

[[steps]]
name = "add"
action = "{p}add"
input = {{ a = "$input.a", b = "$input.b" }}
timeout = "20s"

[[steps]]
name = "double"
action = "{p}double"
input = {{ n = "$steps.add.sum" }}
timeout = "20s"

[[steps]]
name = "record"
action = "{p}record"
input = {{ value = "$steps.double.n" }}
timeout = "20s"
"#
    )
}

fn chain_passes_outputs(transport: &str) {
    let d = daemon();
    let p = unique("c");
    let effects = d.dir.join("effects");
    let _w = Worker::start(
        &d,
        "w1",
        transport,
        "add,double,record",
        &[
            ("FAAS_TEST_NAME_PREFIX", p.as_str()),
            ("FAAS_EFFECTS", effects.to_str().unwrap()),
        ],
    );
    for a in ["add", "double", "record"] {
        let action = wait_action(&d, &format!("{p}{a}"), "available", Duration::from_secs(20));
        assert_eq!(action["transport"], transport);
    }
    let (status, run) = run_task(&d, &chain(&p), json!({"a": 2, "b": 5}));
    assert_eq!(status, 201, "{run}");
    assert!(
        run["parent"].as_str().is_some(),
        "launched by a launcher task: {run}"
    );
    let run = wait_task(&d, run["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps[0]["output"], json!({"sum": 7}));
    assert_eq!(steps[1]["input"], json!({"n": 7}));
    assert_eq!(steps[1]["output"], json!({"n": 14}));
    assert_eq!(run["output"], json!({"value": 14, "worker": "w1"}));
    let key = format!("{}.record", run["id"].as_str().unwrap());
    assert_eq!(steps[2]["key"], key.as_str());
    assert_eq!(
        std::fs::read_to_string(&effects).unwrap(),
        format!("{key} w1\n")
    );
}

#[test]
fn a_chain_over_rabbitmq_passes_outputs_step_to_step() {
    chain_passes_outputs("rabbitmq");
}

#[test]
fn a_chain_over_http_passes_outputs_step_to_step() {
    chain_passes_outputs("http");
}

#[test]
fn a_chain_over_http_whose_worker_answers_with_the_result() {
    let d = daemon();
    let p = unique("a");
    let effects = d.dir.join("effects");
    let _w = Worker::start(
        &d,
        "w1",
        "http",
        "add,double,record",
        &[
            ("FAAS_TEST_NAME_PREFIX", p.as_str()),
            ("FAAS_EFFECTS", effects.to_str().unwrap()),
            ("FAAS_ACTION_REPLY", "answer"),
        ],
    );
    wait_action(
        &d,
        &format!("{p}record"),
        "available",
        Duration::from_secs(20),
    );
    let (status, run) = run_task(&d, &chain(&p), json!({"a": 1, "b": 1}));
    assert_eq!(status, 201, "{run}");
    let run = wait_task(&d, run["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["output"], json!({"value": 4, "worker": "w1"}));
}

#[test]
fn an_in_process_chain_passes_outputs_and_its_launch_is_a_task_too() {
    let d = daemon();
    let def = format!(
        r#"
name = "inproc"

[[steps]]
name = "one"
action = "faas.echo"
input = {{ x = "$input.x", list = [1, "$input.x"] }}

[[steps]]
name = "two"
action = "faas.echo"
input = {{ got = "$steps.one.list", literal = "$$x" }}

[[steps]]
name = "info"
http = {{ url = "{}", method = "GET" }}

[[steps]]
name = "three"
action = "faas.echo"
input = {{ got = "$steps.two.got", status = "$steps.info.status", service = "$steps.info.body.status" }}
"#,
        d.api("/_info")
    );
    let (status, run) = run_task(&d, &def, json!({"x": "hi"}));
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let run = wait_task(&d, &id, Duration::from_secs(30));
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(
        run["steps"][1]["output"],
        json!({"got": [1, "hi"], "literal": "$x"})
    );
    assert_eq!(
        run["output"],
        json!({"got": [1, "hi"], "status": 200, "service": "ok"})
    );

    // The launch was a task of two built-in steps, recorded like any other.
    let parent = run["parent"].as_str().unwrap();
    let (_, launcher) = d.get(&format!("/v1/tasks/{parent}"));
    assert_eq!(launcher["task"], "faas-launch");
    assert_eq!(launcher["state"], "succeeded");
    assert_eq!(launcher["child"], id.as_str());
    let names: Vec<&str> = launcher["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["faas.task.launch", "faas.task.start"]);
    let (_, listed) = d.get("/v1/tasks");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["task"] != "faas-launch"),
        "{listed}"
    );
    let (_, all) = d.get("/v1/tasks?launchers=true");
    assert!(
        all.as_array().unwrap().iter().any(|r| r["id"] == parent),
        "{all}"
    );

    // An http step whose answer is not a success is retried, then fails the task.
    let failing = format!(
        "name = \"nope\"\n[[steps]]\nname = \"get\"\nhttp = {{ url = \"{}\", method = \"GET\" }}\nretry = {{ attempts = 2, backoff = \"100ms\" }}\n",
        d.api("/no/such/path")
    );
    let (_, run) = run_task(&d, &failing, json!({}));
    let run = wait_task(&d, run["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(run["state"], "failed", "{run:#}");
    assert_eq!(run["steps"][0]["attempt"], 2);
    assert!(
        run["error"].as_str().unwrap().contains("answered 404"),
        "{run:#}"
    );
}

#[test]
fn the_daemon_killed_mid_chain_resumes_and_every_effect_happens_once() {
    let mut d = daemon();
    let p = unique("k");
    let effects = d.dir.join("effects");
    let _w = Worker::start(
        &d,
        "w1",
        "rabbitmq",
        "record",
        &[
            ("FAAS_TEST_NAME_PREFIX", p.as_str()),
            ("FAAS_EFFECTS", effects.to_str().unwrap()),
            ("FAAS_SLOW_MS", "400"),
        ],
    );
    wait_action(
        &d,
        &format!("{p}record"),
        "available",
        Duration::from_secs(20),
    );
    let mut def = String::from("name = \"five\"\n");
    for i in 0..5 {
        let input = if i == 0 {
            "{ value = \"$input.v\" }".to_owned()
        } else {
            format!("{{ value = \"$steps.s{}.value\" }}", i - 1)
        };
        def.push_str(&format!("[[steps]]\nname = \"s{i}\"\naction = \"{p}record\"\ninput = {input}\ntimeout = \"30s\"\n"));
    }
    let (status, run) = run_task(&d, &def, json!({"v": "x"}));
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    // Killed while the third step runs on the worker (its result arrives while the daemon is down).
    wait_until(&d, &id, Duration::from_secs(30), |r| {
        r["steps"][2]["state"] == "running"
    });
    d.kill();
    std::thread::sleep(Duration::from_millis(600));
    let amqp = amqp_url();
    d.restart(&[("FAAS_PLATFORM_TASKS_AMQP_URL", amqp.as_str())]);
    let run = wait_task(&d, &id, Duration::from_secs(60));
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let text = std::fs::read_to_string(&effects).unwrap();
    let mut keys: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(keys.len(), 5, "one effect per step: {text}");
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 5, "{text}");
}

#[test]
fn a_worker_killed_mid_step_is_replaced_after_its_missed_beats() {
    let d = daemon();
    let p = unique("w");
    let effects = d.dir.join("effects");
    let env = [
        ("FAAS_TEST_NAME_PREFIX", p.as_str()),
        ("FAAS_EFFECTS", effects.to_str().unwrap()),
        ("FAAS_SLOW_MS", "1500"),
    ];
    let mut w1 = Worker::start(&d, "w1", "rabbitmq", "record", &env);
    wait_action(
        &d,
        &format!("{p}record"),
        "available",
        Duration::from_secs(20),
    );
    let def = format!(
        "name = \"slow\"\n[[steps]]\nname = \"work\"\naction = \"{p}record\"\ninput = {{ value = 1 }}\ntimeout = \"60s\"\nretry = {{ attempts = 3, backoff = \"100ms\" }}\n"
    );
    let (_, run) = run_task(&d, &def, json!({}));
    let id = run["id"].as_str().unwrap().to_owned();
    let running = wait_until(&d, &id, Duration::from_secs(20), |r| {
        r["steps"][0]["state"] == "running"
    });
    assert_eq!(running["steps"][0]["worker"], "w1");
    let _w2 = Worker::start(&d, "w2", "rabbitmq", "record", &env);
    w1.kill();
    let run = wait_task(&d, &id, Duration::from_secs(60));
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let step = &run["steps"][0];
    assert_eq!(step["worker"], "w2", "{run:#}");
    assert_eq!(step["attempt"], 2, "{run:#}");
    assert_eq!(run["output"]["worker"], "w2");
    let (_, actions) = d.get("/v1/actions");
    let record = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == format!("{p}record"))
        .unwrap()
        .clone();
    assert_eq!(record["workers"], 1, "w1 is gone: {record}");
}

#[test]
fn an_approval_waits_and_passes_its_input_on_and_another_times_out() {
    let d = daemon();
    let def = r#"
name = "ship"

[[steps]]
name = "ask"
approval = { message = "Ship it?" }
timeout = "1m"

[[steps]]
name = "ship"
action = "faas.echo"
input = { approved_by = "$steps.ask.by", order = "$input.order" }
"#;
    let (_, run) = run_task(&d, def, json!({"order": 42}));
    let id = run["id"].as_str().unwrap().to_owned();
    let waiting = wait_until(&d, &id, Duration::from_secs(10), |r| {
        r["steps"][0]["state"] == "approval"
    });
    assert_eq!(waiting["state"], "running");
    assert_eq!(waiting["steps"][1]["state"], "waiting");
    let (status, nope) = d.post(&format!("/v1/tasks/{id}/steps/ship/approve"), json!({}));
    assert_eq!(status, 409, "{nope}");
    let (status, approved) = d.post(
        &format!("/v1/tasks/{id}/steps/ask/approve"),
        json!({"input": {"by": "ann"}}),
    );
    assert_eq!(status, 200, "{approved}");
    let run = wait_task(&d, &id, Duration::from_secs(10));
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["output"], json!({"approved_by": "ann", "order": 42}));

    // A cancelled run ends at once, and its waiting step with it.
    let (_, run) = run_task(&d, def, json!({"order": 7}));
    let id = run["id"].as_str().unwrap().to_owned();
    wait_until(&d, &id, Duration::from_secs(10), |r| {
        r["steps"][0]["state"] == "approval"
    });
    let (status, cancelled) = d.post(&format!("/v1/tasks/{id}/cancel"), json!({}));
    assert_eq!(status, 202, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled", "{cancelled:#}");
    assert_eq!(cancelled["steps"][0]["state"], "cancelled");
    let (status, _) = d.post(&format!("/v1/tasks/{id}/steps/ask/approve"), json!({}));
    assert_eq!(status, 409);
    let (status, _) = d.post(&format!("/v1/tasks/{id}/cancel"), json!({}));
    assert_eq!(status, 409, "over already");

    let late = "name = \"late\"\n[[steps]]\nname = \"ask\"\napproval = {}\ntimeout = \"1s\"\n[[steps]]\nname = \"after\"\naction = \"faas.echo\"\n";
    let (_, run) = run_task(&d, late, json!({}));
    let run = wait_task(&d, run["id"].as_str().unwrap(), Duration::from_secs(20));
    assert_eq!(run["state"], "failed", "{run:#}");
    assert!(
        run["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not approved within 1s"),
        "{run:#}"
    );
    assert_eq!(run["steps"][1]["state"], "waiting", "never launched");
}

#[test]
fn an_action_that_stops_beating_turns_unavailable_and_its_task_fails_at_the_timeout() {
    let d = daemon();
    let p = unique("u");
    let mut w = Worker::start(
        &d,
        "w1",
        "http",
        "noop",
        &[("FAAS_TEST_NAME_PREFIX", p.as_str())],
    );
    let name = format!("{p}noop");
    wait_action(&d, &name, "available", Duration::from_secs(20));
    w.kill();
    let gone = wait_action(&d, &name, "unavailable", Duration::from_secs(10));
    assert_eq!(gone["workers"], 0);
    let def = format!(
        "name = \"waits\"\n[[steps]]\nname = \"n\"\naction = \"{name}\"\ntimeout = \"2s\"\n"
    );
    let (status, run) = run_task(&d, &def, json!({}));
    assert_eq!(status, 201, "an unavailable action is waited for: {run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let waiting = wait_until(&d, &id, Duration::from_secs(5), |r| {
        r["steps"][0]["state"] == "ready"
    });
    assert_eq!(waiting["state"], "running");
    let run = wait_task(&d, &id, Duration::from_secs(20));
    assert_eq!(run["state"], "failed", "{run:#}");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("stayed unavailable"),
        "{run:#}"
    );
    assert_eq!(run["steps"][0]["attempt"], 0, "never launched");

    // A worker that comes back makes it available again, and the next task runs.
    let _w = Worker::start(
        &d,
        "w2",
        "http",
        "noop",
        &[("FAAS_TEST_NAME_PREFIX", p.as_str())],
    );
    wait_action(&d, &name, "available", Duration::from_secs(20));
    let (_, run) = run_task(&d, &def, json!({}));
    let run = wait_task(&d, run["id"].as_str().unwrap(), Duration::from_secs(20));
    assert_eq!(run["state"], "succeeded", "{run:#}");
}

fn problems(body: &Value) -> Vec<(String, u64, u64)> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {body}"))
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap().to_owned(),
                e["line"].as_u64().unwrap(),
                e["column"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn bad_definitions_are_refused_with_their_place_and_nothing_is_launched() {
    let d = daemon();
    let p = unique("b");
    let _w = Worker::start(
        &d,
        "w1",
        "http",
        "add,double",
        &[("FAAS_TEST_NAME_PREFIX", p.as_str())],
    );
    wait_action(&d, &format!("{p}add"), "available", Duration::from_secs(20));
    wait_action(
        &d,
        &format!("{p}double"),
        "available",
        Duration::from_secs(20),
    );

    let unknown = format!("name = \"bad\"\n[[steps]]\nname = \"a\"\naction = \"{p}ad\"\n");
    let (status, body) = run_task(&d, &unknown, json!({}));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid-definition");
    assert_eq!(problems(&body), [("unknown-action".to_owned(), 4, 10)]);
    assert!(
        body["errors"][0]["help"]
            .as_str()
            .unwrap()
            .contains(&format!("did you mean `{p}add`?")),
        "{body}"
    );

    let missing_output = format!(
        "name = \"bad\"\n[[steps]]\nname = \"a\"\naction = \"{p}add\"\ninput = {{ a = 1, b = 2 }}\n[[steps]]\nname = \"b\"\naction = \"{p}double\"\ninput = {{ n = \"$steps.a.total\" }}\n"
    );
    let (status, body) = run_task(&d, &missing_output, json!({}));
    assert_eq!(status, 422, "{body}");
    assert_eq!(problems(&body), [("unknown-output".to_owned(), 9, 15)]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("has no `total`"),
        "{body}"
    );
    assert!(
        body["errors"][0]["help"]
            .as_str()
            .unwrap()
            .contains("`sum`"),
        "{body}"
    );

    let def = format!(
        "name = \"ok\"\n[[steps]]\nname = \"a\"\naction = \"{p}add\"\ninput = {{ a = \"$input.a\", b = \"$input.b\" }}\n"
    );
    let (status, body) = run_task(&d, &def, json!({"a": "two", "b": 2}));
    assert_eq!(status, 422, "{body}");
    assert_eq!(problems(&body), [("input-schema".to_owned(), 5, 9)]);
    assert!(
        body["errors"][0]["label"].as_str().unwrap().contains("/a"),
        "{body}"
    );
    let (status, body) = run_task(&d, &def, json!({"a": 1}));
    assert_eq!(status, 422, "{body}");
    assert_eq!(problems(&body)[0].0, "missing-input");

    let syntax = "name = \"x\n";
    let (status, body) = run_task(&d, syntax, json!({}));
    assert_eq!(status, 422, "{body}");
    assert_eq!(problems(&body)[0].0, "toml-syntax");

    let (_, runs) = d.get("/v1/tasks?launchers=true");
    assert_eq!(runs, json!([]), "nothing was launched");

    // Another tenant neither sees these actions nor can launch them.
    let (status, t) = d.post(
        "/v1/tokens",
        json!({ "tenant": "eve@example.com", "role": "member" }),
    );
    assert_eq!(status, 201, "{t}");
    let eve = t["token"].as_str().unwrap();
    let (_, theirs) = d.get_as(eve, "/v1/actions");
    assert!(
        theirs
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["tenant"] == "*"),
        "{theirs}"
    );
    let (status, body) = d.post_as(
        eve,
        "/v1/tasks",
        json!({"definition": def, "input": {"a": 1, "b": 2}}),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(problems(&body)[0].0, "unknown-action");
    let (status, _) = d.post_as(
        eve,
        "/v1/actions/heartbeat",
        json!({
            "name": format!("{p}mine"), "version": "1", "worker": "e1", "transport": "rabbitmq",
            "address": format!("faas.action.{p}add")
        }),
    );
    assert_eq!(status, 200, "eve's own action on her own queue");
    let (status, body) = d.post_as(
        eve,
        "/v1/actions/heartbeat",
        json!({
            "name": format!("{p}mine2"), "version": "1", "worker": "e1", "transport": "rabbitmq",
            "address": format!("faas.action.{p}add")
        }),
    );
    assert_eq!(status, 409, "{body}");
}
