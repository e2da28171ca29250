//! Whole numbers as JSON Schema counts them: `integer` includes `3.0`, which serde's integer
//! types refuse. Fields the API documents as integers deserialize through here, so that every
//! value the document allows is accepted (and a fraction, a negative count or an overflow is
//! still refused). Query strings arrive as text, so the `*_in_query` forms parse text the same
//! way; in a JSON body a string is not a number.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{Error, Visitor};

/// `TEXT`: whether a string holding a number counts (query strings) or not (JSON).
struct Whole<T, const TEXT: bool>(PhantomData<T>);

impl<T: TryFrom<u64>, const TEXT: bool> Whole<T, TEXT> {
    fn from_u64<E: Error>(v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
    }

    fn from_f64<E: Error>(v: f64) -> Result<T, E> {
        if !v.is_finite() || v.fract() != 0.0 {
            return Err(E::custom(format!("{v} is not a whole number")));
        }
        if v < 0.0 {
            return Err(E::custom(format!("{v} is negative")));
        }
        if v >= u64::MAX as f64 {
            return Err(E::custom(format!("{v} is too large")));
        }
        Self::from_u64(v as u64)
    }
}

impl<T: TryFrom<u64>, const TEXT: bool> Visitor<'_> for Whole<T, TEXT> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number, at least 0")
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
        Self::from_u64(v)
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("{v} is negative")))
            .and_then(Self::from_u64)
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<T, E> {
        Self::from_f64(v)
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<T, E> {
        if !TEXT {
            return Err(E::invalid_type(serde::de::Unexpected::Str(v), &self));
        }
        if let Ok(n) = v.parse::<u64>() {
            return Self::from_u64(n);
        }
        match v.parse::<f64>() {
            Ok(f) => Self::from_f64(f),
            Err(_) => Err(E::custom(format!("`{v}` is not a whole number"))),
        }
    }
}

/// A whole number (`3` or `3.0`).
pub fn number<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(Whole::<T, false>(PhantomData))
}

/// An optional whole number.
pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_option(Optional::<T, false>(PhantomData))
}

/// An optional whole number in a query string (`?tail=3`, `?tail=3.0`).
pub fn optional_in_query<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    d.deserialize_option(Optional::<T, true>(PhantomData))
}

struct Optional<T, const TEXT: bool>(PhantomData<T>);

impl<'de, T: TryFrom<u64>, const TEXT: bool> Visitor<'de> for Optional<T, TEXT> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number, at least 0, or nothing")
    }
    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
        d.deserialize_any(Whole::<T, TEXT>(PhantomData)).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::number")]
        n: u32,
        #[serde(default, deserialize_with = "super::optional")]
        m: Option<u64>,
    }

    fn parse(text: &str) -> Result<Body, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_floats_are_whole_numbers() {
        let b = parse(r#"{"n": 38.0, "m": 4373.0}"#).unwrap();
        assert_eq!((b.n, b.m), (38, Some(4373)));
        let b = parse(r#"{"n": 7}"#).unwrap();
        assert_eq!((b.n, b.m), (7, None));
        assert_eq!(parse(r#"{"n": 1, "m": null}"#).unwrap().m, None);
    }

    #[test]
    fn query_strings_hold_numbers_as_text() {
        #[derive(Debug, Deserialize)]
        struct Query {
            #[serde(default, deserialize_with = "super::optional_in_query")]
            tail: Option<usize>,
        }
        let q = |v: serde_json::Value| serde_json::from_value::<Query>(v).map(|q| q.tail);
        assert_eq!(q(serde_json::json!({"tail": "3"})).unwrap(), Some(3));
        assert_eq!(q(serde_json::json!({"tail": "3.0"})).unwrap(), Some(3));
        assert_eq!(q(serde_json::json!({})).unwrap(), None);
        assert!(q(serde_json::json!({"tail": "-1"})).is_err());
        assert!(q(serde_json::json!({"tail": "x"})).is_err());
    }

    #[test]
    fn fractions_negatives_and_overflows_are_refused() {
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -0.5}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "3"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }
}

/// A whole signed number that fits 64 bits (`-3`, `3` or `3.0`): money in minor units. A number
/// written with a fraction part is taken only up to 2^53, where a double still holds every
/// whole number exactly: past it, `…0.0` could stand for a neighbour, and money is never rounded.
pub fn signed<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(Signed)
}

struct Signed;

impl Visitor<'_> for Signed {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number (minor units)")
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<i64, E> {
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        if !v.is_finite() || v.fract() != 0.0 {
            return Err(E::custom(format!("{v} is not a whole number")));
        }
        if v.abs() > EXACT {
            return Err(E::custom(format!(
                "{v} is past 2^53 written with a fraction part: write it as a whole number"
            )));
        }
        Ok(v as i64)
    }
}

#[cfg(test)]
mod signed_tests {
    #[derive(serde::Deserialize)]
    struct Money {
        #[serde(deserialize_with = "super::signed")]
        amount: i64,
    }

    fn parse(text: &str) -> Result<i64, String> {
        serde_json::from_str::<Money>(&format!("{{\"amount\": {text}}}"))
            .map(|m| m.amount)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_signed_numbers_and_nothing_else() {
        assert_eq!(parse("-3"), Ok(-3));
        assert_eq!(parse("3.0"), Ok(3));
        assert_eq!(parse("9223372036854775807"), Ok(i64::MAX));
        assert!(parse("1.5").unwrap_err().contains("not a whole number"));
        assert!(
            parse("9223372036854775808")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse("1e300").is_err());
        assert!(parse("\"3\"").is_err());
    }
}
