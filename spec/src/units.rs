//! The units app.toml speaks: durations (`500ms`, `1m30s`), memory sizes (`256Mi`, `1Gi`) and
//! vCPU counts. Each parses from the string a user writes and displays in canonical form.

use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a unit did not parse: the message says what was wrong, `expected` what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UnitError {
    pub message: String,
    pub expected: &'static str,
}

impl UnitError {
    fn new(message: impl Into<String>, expected: &'static str) -> Self {
        Self {
            message: message.into(),
            expected,
        }
    }
}

const DURATION_EXPECTED: &str =
    "a duration such as `500ms`, `30s`, `10m`, `1h` or `1m30s` (units: ms, s, m, h, d)";

/// A span of time written as `500ms`, `30s`, `10m`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }
    pub fn as_millis(self) -> u128 {
        self.0.as_millis()
    }
}

impl FromStr for Duration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(UnitError::new("empty duration", DURATION_EXPECTED));
        }
        let mut total_ms: u128 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(UnitError::new(
                    format!("`{text}` is not a duration: expected a number at `{rest}`"),
                    DURATION_EXPECTED,
                ));
            }
            let (number, after) = rest.split_at(digits);
            let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
            let (unit, after) = after.split_at(unit_len);
            let factor: u128 = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => {
                    return Err(UnitError::new(
                        format!(
                            "`{text}` has no unit: write `{number}s` for seconds or `{number}ms` for milliseconds"
                        ),
                        DURATION_EXPECTED,
                    ));
                }
                other => {
                    return Err(UnitError::new(
                        format!("`{other}` is not a unit of time in `{text}`"),
                        DURATION_EXPECTED,
                    ));
                }
            };
            let value: u128 = number.parse().map_err(|_| {
                UnitError::new(
                    format!("`{number}` is too large in `{text}`"),
                    DURATION_EXPECTED,
                )
            })?;
            total_ms = value
                .checked_mul(factor)
                .and_then(|v| total_ms.checked_add(v))
                .filter(|v| *v <= u128::from(u64::MAX))
                .ok_or_else(|| {
                    UnitError::new(format!("`{text}` is too long"), DURATION_EXPECTED)
                })?;
            rest = after;
        }
        let ms = u64::try_from(total_ms)
            .map_err(|_| UnitError::new(format!("`{text}` is too long"), DURATION_EXPECTED))?;
        Ok(Self::from_millis(ms))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

const MEMORY_EXPECTED: &str =
    "a size such as `256Mi`, `1Gi` or `512M` (binary Ki/Mi/Gi/Ti or decimal K/M/G/T), at least 6Mi";

/// The smallest memory limit the Docker Engine accepts.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;

/// An amount of memory in bytes, written as `256Mi`, `1Gi`, `512M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Memory(u64);

impl Memory {
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }
    pub const fn mebibytes(mi: u64) -> Self {
        Self(mi * 1024 * 1024)
    }
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Memory {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let digits = text
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if digits == 0 {
            return Err(UnitError::new(
                format!("`{text}` is not a size"),
                MEMORY_EXPECTED,
            ));
        }
        let (number, unit) = text.split_at(digits);
        let factor: f64 = match unit {
            "Ki" => 1024.0,
            "Mi" => 1024.0 * 1024.0,
            "Gi" => 1024.0 * 1024.0 * 1024.0,
            "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            "K" | "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "" => {
                return Err(UnitError::new(
                    format!("`{text}` has no unit: write `{number}Mi` for mebibytes"),
                    MEMORY_EXPECTED,
                ));
            }
            "MB" | "GB" | "KB" | "mb" | "gb" | "kb" | "Mb" | "Gb" | "MiB" | "GiB" | "KiB" => {
                let fixed = match unit.to_ascii_lowercase().chars().next() {
                    Some('k') => "Ki",
                    Some('g') => "Gi",
                    _ => "Mi",
                };
                return Err(UnitError::new(
                    format!("`{unit}` is not a unit here: write `{number}{fixed}`"),
                    MEMORY_EXPECTED,
                ));
            }
            other => {
                return Err(UnitError::new(
                    format!("`{other}` is not a unit of memory in `{text}`"),
                    MEMORY_EXPECTED,
                ));
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| UnitError::new(format!("`{number}` is not a number"), MEMORY_EXPECTED))?;
        let bytes = (value * factor).round();
        if !(bytes.is_finite() && bytes < u64::MAX as f64) {
            return Err(UnitError::new(
                format!("`{text}` is too large"),
                MEMORY_EXPECTED,
            ));
        }
        let bytes = bytes as u64;
        if bytes < MIN_MEMORY_BYTES {
            return Err(UnitError::new(
                format!("`{text}` is below the 6Mi the Docker Engine accepts as a limit"),
                MEMORY_EXPECTED,
            ));
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 8] = [
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
            ("T", 1_000_000_000_000),
            ("G", 1_000_000_000),
            ("M", 1_000_000),
            ("K", 1_000),
        ];
        // The exact unit that gives the smallest number: 2G stays 2G, 256Mi stays 256Mi.
        let best = UNITS
            .iter()
            .filter(|(_, size)| self.0 >= *size && self.0.is_multiple_of(*size))
            .min_by_key(|(_, size)| self.0 / size);
        match best {
            Some((unit, size)) => write!(f, "{}{unit}", self.0 / size),
            None => write!(f, "{}Ki", self.0.div_ceil(1024)),
        }
    }
}

/// Implements serde (as the written string) and a JSON Schema `string` with a `format` for a unit.
macro_rules! string_unit {
    ($ty:ty, $format:literal, $pattern:literal, $description:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
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
                json_schema!({
                    "type": "string",
                    "format": $format,
                    "pattern": $pattern,
                    "description": $description,
                })
            }
        }
    };
}

string_unit!(
    Duration,
    "duration",
    r"^([0-9]+(ms|s|m|h|d))+$",
    "A duration: a number and a unit (ms, s, m, h, d), e.g. `500ms`, `30s`, `1m30s`."
);
string_unit!(
    Memory,
    "memory",
    r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|k|M|G|T)$",
    "A memory size: binary (Ki, Mi, Gi, Ti) or decimal (K, M, G, T) units, e.g. `256Mi`, `1Gi`."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_canonically() {
        for (input, ms, shown) in [
            ("500ms", 500, "500ms"),
            ("1s", 1_000, "1s"),
            ("10m", 600_000, "10m"),
            ("1m30s", 90_000, "1m30s"),
            ("90s", 90_000, "1m30s"),
            ("2h", 7_200_000, "2h"),
            ("1d", 86_400_000, "1d"),
            ("0s", 0, "0s"),
        ] {
            let d: Duration = input.parse().unwrap();
            assert_eq!(d.as_millis(), ms, "{input}");
            assert_eq!(d.to_string(), shown, "{input}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        assert!(
            "30".parse::<Duration>()
                .unwrap_err()
                .message
                .contains("write `30s`")
        );
        assert!("5 minutes".parse::<Duration>().is_err());
        assert!(
            "3w".parse::<Duration>()
                .unwrap_err()
                .message
                .contains("`w` is not a unit")
        );
        assert!("".parse::<Duration>().is_err());
        assert!("s".parse::<Duration>().is_err());
        assert!("99999999999999999999999d".parse::<Duration>().is_err());
    }

    #[test]
    fn memory_parses_binary_and_decimal_units() {
        assert_eq!("256Mi".parse::<Memory>().unwrap().bytes(), 256 << 20);
        assert_eq!("1Gi".parse::<Memory>().unwrap().bytes(), 1 << 30);
        assert_eq!("512M".parse::<Memory>().unwrap().bytes(), 512_000_000);
        assert_eq!("1.5Gi".parse::<Memory>().unwrap().bytes(), 3 << 29);
        assert_eq!(Memory::mebibytes(256).to_string(), "256Mi");
        assert_eq!("1536Mi".parse::<Memory>().unwrap().to_string(), "1536Mi");
        assert_eq!("2G".parse::<Memory>().unwrap().to_string(), "2G");
    }

    #[test]
    fn bad_memory_says_what_to_write() {
        assert!(
            "256MB"
                .parse::<Memory>()
                .unwrap_err()
                .message
                .contains("write `256Mi`")
        );
        assert!(
            "256"
                .parse::<Memory>()
                .unwrap_err()
                .message
                .contains("no unit")
        );
        assert!("1Ki".parse::<Memory>().unwrap_err().message.contains("6Mi"));
        assert!("lots".parse::<Memory>().is_err());
    }
}
