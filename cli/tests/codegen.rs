//! `faas codegen client` as a developer uses it: a client generated from a deployed
//! python-function service's own description; its timeout, its retries that stop on a 4xx, its
//! circuit breaker opening while the service is down and closing once it is back (against the
//! runtime served locally); and the client used by another service that declares the first as
//! a dependency, its calls joining the caller's trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::platform::DevBox;
use common::{code, stderr, stdout, succeeded};

const BEHAVIOUR: &str = r#"
import sys, threading, asyncio, io, time, urllib.request
project, gen = sys.argv[1], sys.argv[2]
sys.path[:0] = [project, gen]
from faas_runtime.server import serve, JsonLog
from calc_client import CalcClient, CallError, CircuitOpen

class Server:
    def __init__(self, port):
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        def run():
            asyncio.set_event_loop(self.loop)
            self.stop_event = asyncio.Event()
            def on_ready(p):
                self.port = p
                ready.set()
            self.loop.run_until_complete(serve("app.functions", "127.0.0.1", port, ready=on_ready,
                                               stop=self.stop_event, log=JsonLog(stream=io.StringIO())))
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10), "the runtime did not start"
    def stop(self):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)

s = Server(0)
port = s.port
c = CalcClient(base_url=f"http://127.0.0.1:{port}", timeout=0.5, retries=2, backoff=0.01, failures_to_open=3, cooldown=0.5)
assert c.add(a=1, b=2) == 3
try:
    c.slow(seconds=2)
    raise SystemExit("slow: no timeout")
except CallError as e:
    assert e.status == 0 and "no answer within 0.5 s" in str(e), e
try:
    c.refuse()
    raise SystemExit("refuse: no error")
except CallError as e:
    assert e.status == 400, e
    assert e.problem["error"]["message"] == "no, thank you", e.problem
metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/_metrics").read().decode()
assert 'faas_function_calls_total{function="refuse",status="400"} 1' in metrics, "a 4xx is not tried again: " + metrics
s.stop()
for _ in range(3):
    try:
        c.add(a=1, b=1)
        raise SystemExit("answered while down")
    except CircuitOpen:
        raise SystemExit("open before 3 failures")
    except CallError as e:
        assert e.status == 0 and "cannot reach" in str(e), e
assert c.breaker.state == "open", c.breaker.state
try:
    c.add(a=1, b=1)
    raise SystemExit("not refused while open")
except CircuitOpen:
    pass
s = Server(port)
deadline = time.time() + 10
while True:
    try:
        assert c.add(a=2, b=2) == 4
        break
    except CircuitOpen:
        assert time.time() < deadline, "the circuit never let a call through"
        time.sleep(0.05)
assert c.breaker.state == "closed", c.breaker.state
s.stop()
print("behaviour ok")
"#;

const EXTRA: &str = r#"

def slow(seconds: float) -> str:
    """Answers after `seconds`."""
    import time
    time.sleep(seconds)
    return "done"


def refuse() -> None:
    """Always refuses."""
    raise BadRequest("no, thank you")
"#;

fn launch(d: &DevBox, name: &str) -> std::path::PathBuf {
    succeeded(&d.run(&[
        "launch",
        name,
        "--template",
        "python-function",
        "--no-input",
        "--owner",
        "ada@example.com",
    ]));
    d.work().join(name)
}

#[test]
fn a_generated_client_times_out_retries_safely_breaks_and_carries_the_trace() {
    let d = DevBox::new();
    let calc = launch(&d, "calc");
    let functions = calc.join("app").join("functions.py");
    let mut text = std::fs::read_to_string(&functions).unwrap();
    text.push_str(EXTRA);
    std::fs::write(&functions, text).unwrap();
    succeeded(&d.deploy_prod(&calc, &[]));

    let generated = d.work().join("gen");
    let out = d.run(&[
        "codegen",
        "client",
        "calc",
        "--out",
        generated.to_str().unwrap(),
    ]);
    succeeded(&out);
    assert!(stderr(&out).contains("CalcClient"), "{}", stderr(&out));
    let client = std::fs::read_to_string(generated.join("calc_client.py")).unwrap();
    assert!(
        client.contains("def add(self, a: float, b: float, *, call_timeout=None):"),
        "{client}"
    );
    assert!(client.contains("def slow(self, seconds: float"), "{client}");

    let out = std::process::Command::new("python3")
        .args([
            "-c",
            BEHAVIOUR,
            calc.to_str().unwrap(),
            generated.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && stdout(&out).contains("behaviour ok"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );

    // Another service uses it for its dependency; its call joins the caller's trace.
    let front = launch(&d, "front");
    succeeded(&d.run_in(&front, &["service", "dependency", "add", "calc"]));
    std::fs::copy(
        generated.join("calc_client.py"),
        front.join("app").join("calc_client.py"),
    )
    .unwrap();
    let functions = front.join("app").join("functions.py");
    let mut text = std::fs::read_to_string(&functions).unwrap();
    text.push_str("\n\ndef total(a: float, b: float) -> float:\n    \"\"\"Adds, through calc.\"\"\"\n    from .calc_client import CalcClient\n    return CalcClient(timeout=5).add(a=a, b=b)\n");
    std::fs::write(&functions, text).unwrap();
    succeeded(&d.deploy_prod(&front, &[]));
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let answer = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/functions/total",
            d.router_port
        ))
        .header("host", "front.localhost")
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .body(r#"{"a": 1.5, "b": 2}"#)
        .timeout(Duration::from_secs(20))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().unwrap().trim(), "3.5");
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let out = d.run(&["trace", "show", trace]);
        let text = stdout(&out);
        if code(&out) == 0 && text.contains("2 hops") {
            break text;
        }
        assert!(Instant::now() < deadline, "{text}{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[1].starts_with("front (prod)"), "{shown}");
    assert!(
        lines[2].starts_with("  calc (prod)") && lines[2].contains("from front/prod"),
        "{shown}"
    );

    let out = d.run(&["codegen", "client", "calc", "--lang", "cobol"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}
