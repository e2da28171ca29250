//! The definition parser and mappings, on good and bad definitions.

use serde_json::json;

use super::*;

const GOOD: &str = r#"
name = "order"
timeout = "1h"

[[steps]]
name = "reserve"
action = "reserve-stock"
input = { sku = "$input.sku", count = 2, note = "$$5 off" }
retry = { attempts = 5, backoff = "100ms", factor = 3, max_backoff = "1s" }
idempotency = "$input.order"

[[steps]]
name = "ship"
approval = { message = "Ship it?" }

[[steps]]
name = "tell"
http = { url = "http://127.0.0.1:9/hook", success = ["2xx", 404] }
input = { reserved = "$steps.reserve.id", by = "$steps.ship" }
"#;

#[test]
fn a_good_definition_reads_with_its_references() {
    let d = TaskDefinition::parse("t.toml", GOOD).unwrap();
    assert_eq!(d.name, "order");
    assert_eq!(d.steps.len(), 3);
    let reserve = &d.steps[0];
    assert_eq!(reserve.retry.attempts, 5);
    assert_eq!(
        reserve.retry.backoff_after(1),
        std::time::Duration::from_millis(100)
    );
    assert_eq!(
        reserve.retry.backoff_after(2),
        std::time::Duration::from_millis(300)
    );
    assert_eq!(
        reserve.retry.backoff_after(4),
        std::time::Duration::from_secs(1),
        "capped"
    );
    assert_eq!(reserve.references[0].source, Source::Input);
    assert_eq!(reserve.references[0].at, ["sku"]);
    assert_eq!(&GOOD[reserve.references[0].span.clone()], "\"$input.sku\"");
    assert_eq!(d.steps[1].timeout, DEFAULT_APPROVAL_TIMEOUT);
    let StepKind::Http(call) = &d.steps[2].kind else {
        panic!()
    };
    assert_eq!(call.method, "POST");
    assert!(call.success.iter().any(|m| m.matches(404)));
    assert!(!call.success.iter().any(|m| m.matches(500)));
    let outputs = |s: &str| match s {
        "reserve" => Some(json!({"id": "r-1"})),
        "ship" => Some(json!({"by": "ann"})),
        _ => None,
    };
    let input = json!({"sku": "A", "order": 7});
    assert_eq!(
        resolve(&reserve.input, &input, &outputs).unwrap(),
        json!({"sku": "A", "count": 2, "note": "$5 off"})
    );
    assert_eq!(
        resolve(&d.steps[2].input, &input, &outputs).unwrap(),
        json!({"reserved": "r-1", "by": {"by": "ann"}})
    );
    let err = resolve(&json!("$input.nope"), &input, &outputs).unwrap_err();
    assert!(err.0.contains("no `nope`"), "{err}");
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let text = r#"
name = "Bad Name"
timeot = "1h"

[[steps]]
name = "a"
action = "x"
http = { url = "http://h" }

[[steps]]
name = "b"
action = "y"
input = { v = "$steps.c.out", w = "$nothing" }
retry = { attempts = 0 }

[[steps]]
name = "c"
action = "z"
timeout = "soon"
"#;
    let report = TaskDefinition::parse("t.toml", text).unwrap_err();
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"invalid-name"), "{codes:?}");
    assert!(codes.contains(&"unknown-key"), "{codes:?}");
    assert!(codes.contains(&"step-kind"), "{codes:?}");
    assert!(codes.contains(&"invalid-reference"), "{codes:?}");
    assert!(codes.contains(&"invalid-retry"), "{codes:?}");
    assert!(codes.contains(&"invalid-duration"), "{codes:?}");
    let rendered = report.render(false);
    assert!(rendered.contains("t.toml:3:1"), "{rendered}");
    assert!(rendered.contains("did you mean `timeout`?"), "{rendered}");
}

#[test]
fn a_step_maps_only_from_earlier_steps() {
    let text = "name = \"tt\"\n[[steps]]\nname = \"a\"\naction = \"x\"\ninput = { v = \"$steps.b.out\" }\n[[steps]]\nname = \"b\"\naction = \"y\"\ninput = \"$steps.zed\"\n";
    let report = TaskDefinition::parse("t.toml", text).unwrap_err();
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["later-step", "unknown-step"]);
    let located = report.located();
    assert_eq!((located[0].line, located[0].column), (5, 15));
}
