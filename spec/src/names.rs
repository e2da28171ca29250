//! Names a user writes in app.toml, each with its rule: service names and environment names (they
//! become DNS labels in URLs), database names (they become environment variables), owners
//! (e-mail addresses) and cron schedules.

use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a name broke its rule; `rule` is the rule in words, for the hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NameError {
    pub message: String,
    pub rule: &'static str,
}

pub const SERVICE_NAME_RULE: &str = "a DNS label: 2 to 40 characters, lowercase letters, digits and `-`, starting with a letter and not ending with `-`";
pub const ENV_NAME_RULE: &str = "a DNS label: 1 to 20 characters, lowercase letters, digits and `-`, starting with a letter and not ending with `-`";
pub const DB_NAME_RULE: &str = "1 to 30 characters, lowercase letters, digits and `_`, starting with a letter (it becomes an environment variable such as `MAIN_URL`)";
pub const EMAIL_RULE: &str =
    "an e-mail address such as `team@example.com`: the tenant billed for this service";
/// The rules above as JSON Schema (ECMA-262) patterns, for the API's document; a test holds each
/// to its check.
pub const SERVICE_NAME_PATTERN: &str = "^[a-z][a-z0-9-]{0,38}[a-z0-9]$";
pub const ENV_NAME_PATTERN: &str = "^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$";
/// Printable ASCII only, one `@`, a dotted domain that neither starts nor ends with a dot.
pub const EMAIL_PATTERN: &str = "^[!-?A-~]+@[!-,/-?A-~-][!-?A-~]*[.][!-?A-~]*[!-,/-?A-~-]$";
/// A secret becomes an environment variable.
pub const SECRET_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";
/// The longest secret value, in characters.
pub const MAX_SECRET_CHARS: usize = 64 * 1024;
pub const CRON_RULE: &str = "five fields: minute hour day-of-month month day-of-week, e.g. `0 3 * * *` (03:00 every day) or `*/15 * * * *`";

fn check_label(
    text: &str,
    min: usize,
    max: usize,
    rule: &'static str,
    what: &str,
) -> Result<(), NameError> {
    let err = |why: String| {
        Err(NameError {
            message: format!("`{text}` is not a valid {what}: {why}"),
            rule,
        })
    };
    let len = text.chars().count();
    if len < min {
        return err(if len == 0 {
            "it is empty".into()
        } else {
            format!("it is shorter than {min} characters")
        });
    }
    if len > max {
        return err(format!("it is {len} characters long, the limit is {max}"));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return err(if bad.is_ascii_uppercase() {
            format!("`{bad}` is uppercase; try `{}`", to_dns_label(text, max))
        } else {
            format!("`{bad}` is not allowed")
        });
    }
    if !text.starts_with(|c: char| c.is_ascii_lowercase()) {
        return err("it must start with a letter".into());
    }
    if text.ends_with('-') {
        return err("it must not end with `-`".into());
    }
    Ok(())
}

pub fn check_service_name(text: &str) -> Result<(), NameError> {
    check_label(text, 2, 40, SERVICE_NAME_RULE, "service name")
}

pub fn check_env_name(text: &str) -> Result<(), NameError> {
    check_label(text, 1, 20, ENV_NAME_RULE, "environment name")
}

pub fn check_db_name(text: &str) -> Result<(), NameError> {
    let err = |why: &str| {
        Err(NameError {
            message: format!("`{text}` is not a valid database name: {why}"),
            rule: DB_NAME_RULE,
        })
    };
    if text.is_empty() || text.len() > 30 {
        return err("it must have 1 to 30 characters");
    }
    if !text.starts_with(|c: char| c.is_ascii_lowercase()) {
        return err("it must start with a lowercase letter");
    }
    if text
        .chars()
        .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
    {
        return err("only lowercase letters, digits and `_` are allowed");
    }
    Ok(())
}

pub fn check_email(text: &str) -> Result<(), NameError> {
    let ok = match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && text.chars().all(|c| c.is_ascii_graphic())
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(NameError {
            message: format!("`{text}` is not an e-mail address"),
            rule: EMAIL_RULE,
        })
    }
}

pub fn check_cron(text: &str) -> Result<(), NameError> {
    let fields = text.split_whitespace().count();
    if fields != 5 && fields != 6 {
        return Err(NameError {
            message: format!(
                "`{text}` has {fields} fields, a cron schedule has 5 (or 6, seconds first)"
            ),
            rule: CRON_RULE,
        });
    }
    parse_cron(text).map(|_| ()).map_err(|e| NameError {
        message: format!("`{text}` is not a cron schedule: {e}"),
        rule: CRON_RULE,
    })
}

/// A schedule of five fields, or six with seconds first.
pub fn parse_cron(text: &str) -> Result<croner::Cron, croner::errors::CronError> {
    use croner::parser::{CronParser, Seconds};
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(text)
}

const TIMEZONE_RULE: &str = "an IANA time zone such as `UTC`, `Europe/Paris` or `America/New_York`";

pub fn check_timezone(text: &str) -> Result<(), NameError> {
    text.parse::<chrono_tz::Tz>()
        .map(|_| ())
        .map_err(|_| NameError {
            message: format!("`{text}` is not a time zone"),
            rule: TIMEZONE_RULE,
        })
}

/// A string newtype checked by `$check` on parse, serialized as the string, with a JSON Schema
/// `format` that the validator maps back to `$check`.
macro_rules! checked_name {
    ($(#[$doc:meta])* $ty:ident, $check:path, $format:literal, $description:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $check(s)?;
                Ok(Self(s.to_owned()))
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
        impl JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "format": $format, "description": $description })
            }
        }
    };
}

checked_name!(
    /// A service's name, used in its URL: `[a-z][a-z0-9-]{0,38}[a-z0-9]`.
    ServiceName, check_service_name, "dns-label",
    "A DNS label: 2 to 40 characters of lowercase letters, digits and `-`, starting with a letter."
);
checked_name!(
    /// An environment's name (`prod`, `staging`, a branch name made a label).
    EnvName, check_env_name, "env-name",
    "A DNS label of 1 to 20 characters: lowercase letters, digits and `-`, starting with a letter."
);
checked_name!(
    /// A database's name within a service; it names the injected `<NAME>_URL` variable.
    DbName, check_db_name, "db-name",
    "1 to 30 characters of lowercase letters, digits and `_`, starting with a letter."
);
checked_name!(
    /// The tenant billed for a service: an e-mail address.
    Email, check_email, "email",
    "An e-mail address: the tenant billed for this service."
);
checked_name!(
    /// A five-field cron schedule.
    CronSchedule, check_cron, "cron",
    "A cron schedule: minute hour day-of-month month day-of-week, e.g. `0 3 * * *`, or six fields with seconds first."
);

checked_name!(
    /// An IANA time zone.
    TimeZoneName, check_timezone, "timezone",
    "An IANA time zone, e.g. `UTC` or `Europe/Paris`."
);

impl TimeZoneName {
    pub fn utc() -> Self {
        Self("UTC".into())
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.0.parse().unwrap_or(chrono_tz::Tz::UTC)
    }
}

/// Turns any text (a git branch, a directory name) into a valid environment or service label:
/// lowercase, runs of other characters become `-`, trimmed to `max` characters.
pub fn to_dns_label(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        out.remove(0);
    }
    out.truncate(max);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_the_dns_label_rule() {
        for good in ["pricing", "ab", "a1", "order-service", "x2-y"] {
            assert!(check_service_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "Pricing",
            "1abc",
            "abc-",
            "a_b",
            "a.b",
            &"a".repeat(41),
        ] {
            assert!(check_service_name(bad).is_err(), "{bad}");
        }
        assert!(
            check_service_name("Pricing")
                .unwrap_err()
                .message
                .contains("try `pricing`")
        );
        assert!(
            check_service_name("Bad_Name")
                .unwrap_err()
                .message
                .contains("try `bad-name`")
        );
    }

    #[test]
    fn cron_schedules_need_five_valid_fields() {
        assert!(check_cron("0 3 * * *").is_ok());
        assert!(check_cron("*/15 * * * 1-5").is_ok());
        assert!(
            check_cron("0 3 * *")
                .unwrap_err()
                .message
                .contains("4 fields")
        );
        assert!(check_cron("61 3 * * *").is_err());
        assert!(check_cron("every day").is_err());
    }

    #[test]
    fn emails_and_database_names() {
        assert!(check_email("team@example.com").is_ok());
        assert!(check_email("team").is_err());
        assert!(check_email("a@b").is_err());
        assert!(check_db_name("main").is_ok());
        assert!(check_db_name("cache_2").is_ok());
        assert!(check_db_name("Main").is_err());
        assert!(check_db_name("my-db").is_err());
    }

    #[test]
    fn anything_becomes_a_label() {
        assert_eq!(to_dns_label("feature/Add_Login", 20), "feature-add-login");
        assert_eq!(to_dns_label("123-fix", 20), "fix");
        assert_eq!(
            to_dns_label("a-very-long-branch-name-indeed", 20),
            "a-very-long-branch-n"
        );
    }
}
