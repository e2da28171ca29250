//! Money as the platform keeps it: integers in nano-units of a currency (10^-9 of its major
//! unit), never floating point. Prices are written as decimal strings (`"0.000012"`) and
//! parsed exactly; amounts are shown from nano-units, rounded once, at the total, to the
//! currency's minor unit.

use std::fmt;

/// Nano-units in one major unit of a currency.
pub const NANOS: i64 = 1_000_000_000;
/// Decimal places a price may have: one nano-unit is the smallest.
pub const MAX_DECIMALS: usize = 9;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyError {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A non-negative decimal price (`"12"`, `"0.5"`, `"0.000000001"`) as nano-units.
pub fn parse_price(text: &str) -> Result<i64, MoneyError> {
    let err = |why: &str| {
        MoneyError {
        message: format!("`{text}` is not a price: {why}"),
        hint: "write a decimal number of the currency's major unit, such as \"0.000012\" (at most 9 decimal places, no sign, no exponent)".into(),
    }
    };
    if text.starts_with('-') {
        return Err(err("prices are not negative"));
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.chars().all(|c| c.is_ascii_digit()) {
        return Err(err("it is not a decimal number"));
    }
    if text.contains('.') && fraction.is_empty() {
        return Err(err("digits must follow the decimal point"));
    }
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return Err(err("it is not a decimal number"));
    }
    if fraction.len() > MAX_DECIMALS {
        return Err(err(
            "it has more than 9 decimal places (a nano-unit is the smallest)",
        ));
    }
    let whole: i64 = whole
        .parse()
        .ok()
        .filter(|w| *w <= i64::MAX / NANOS)
        .ok_or_else(|| err("it is too large"))?;
    let frac: i64 = format!("{fraction:0<9}").parse().unwrap_or(0);
    Ok(whole * NANOS + frac)
}

/// Nano-units as an exact decimal of the major unit (`12000000` → `"0.012"`), no rounding.
pub fn format_nanos(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let whole = n / NANOS as u64;
    let frac = n % NANOS as u64;
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{frac:09}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// Nano-units rounded to the currency's minor unit, half away from zero, still in nano-units:
/// `round_nanos(1_235_000_000, "EUR")` is `1_240_000_000`.
pub fn round_nanos(nanos: i64, currency: &str) -> i64 {
    let step = 10i128.pow(MAX_DECIMALS as u32 - minor_digits(currency));
    let n = i128::from(nanos);
    let r = (n.abs() + step / 2) / step * step * n.signum();
    i64::try_from(r).unwrap_or(if r < 0 { i64::MIN } else { i64::MAX })
}

/// Nano-units rounded to the currency's minor unit (half away from zero), as its text:
/// `format_amount(1_234_567_890, "EUR")` is `"1.23"`.
pub fn format_amount(nanos: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    let step = 10i128.pow(MAX_DECIMALS as u32 - digits);
    let rounded = i128::from(round_nanos(nanos, currency)) / step;
    let unit = 10i128.pow(digits);
    let sign = if rounded < 0 { "-" } else { "" };
    let r = rounded.abs();
    if digits == 0 {
        format!("{sign}{r}")
    } else {
        format!(
            "{sign}{}.{:0width$}",
            r / unit,
            r % unit,
            width = digits as usize
        )
    }
}

/// ISO 4217 codes of the currencies in use, with their minor-unit digits.
#[rustfmt::skip]
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2),
    ("AUD", 2), ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2),
    ("BHD", 3), ("BIF", 0), ("BMD", 2), ("BND", 2), ("BOB", 2), ("BRL", 2), ("BSD", 2),
    ("BTN", 2), ("BWP", 2), ("BYN", 2), ("BZD", 2), ("CAD", 2), ("CDF", 2), ("CHF", 2),
    ("CLP", 0), ("CNY", 2), ("COP", 2), ("CRC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2),
    ("DJF", 0), ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2), ("ETB", 2),
    ("EUR", 2), ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2), ("GIP", 2),
    ("GMD", 2), ("GNF", 0), ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HTG", 2),
    ("HUF", 2), ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0),
    ("JMD", 2), ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2), ("KMF", 0),
    ("KPW", 2), ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2), ("LBP", 2),
    ("LKR", 2), ("LRD", 2), ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2),
    ("MKD", 2), ("MMK", 2), ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2),
    ("MWK", 2), ("MXN", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2), ("NIO", 2),
    ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2), ("PGK", 2),
    ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2), ("RSD", 2),
    ("RUB", 2), ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2),
    ("SGD", 2), ("SHP", 2), ("SLE", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2), ("STN", 2),
    ("SVC", 2), ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2), ("TND", 3),
    ("TOP", 2), ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2), ("UGX", 0),
    ("USD", 2), ("UYU", 2), ("UZS", 2), ("VES", 2), ("VND", 0), ("VUV", 0), ("WST", 2),
    ("XAF", 0), ("XCD", 2), ("XOF", 0), ("XPF", 0), ("YER", 2), ("ZAR", 2), ("ZMW", 2),
    ("ZWL", 2),
];

/// Whether `code` is an ISO 4217 currency in use (upper case, e.g. `EUR`).
pub fn is_currency(code: &str) -> bool {
    CURRENCIES.iter().any(|(c, _)| *c == code)
}

/// The currency's minor-unit digits (2 for EUR, 0 for JPY, 3 for KWD); 2 when unknown.
pub fn minor_digits(code: &str) -> u32 {
    CURRENCIES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(2, |(_, d)| *d)
}

/// Checks a currency code, with the nearest one as a hint.
pub fn check_currency(code: &str) -> Result<(), MoneyError> {
    if is_currency(code) {
        return Ok(());
    }
    let upper = code.to_ascii_uppercase();
    let hint = if is_currency(&upper) {
        format!("currency codes are upper case: `{upper}`")
    } else {
        "give an ISO 4217 code such as EUR, USD or JPY".to_owned()
    };
    Err(MoneyError {
        message: format!("`{code}` is not an ISO 4217 currency"),
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_exactly_into_nano_units() {
        assert_eq!(parse_price("12"), Ok(12 * NANOS));
        assert_eq!(parse_price("0.5"), Ok(500_000_000));
        assert_eq!(parse_price("0.000000001"), Ok(1));
        assert_eq!(parse_price("0.000012"), Ok(12_000));
        assert_eq!(parse_price("0"), Ok(0));
        for bad in [
            "-1",
            "1e3",
            "0.0000000001",
            "",
            ".5",
            "5.",
            "1,5",
            "abc",
            " 1",
            "99999999999",
        ] {
            assert!(parse_price(bad).is_err(), "{bad}");
        }
        assert!(
            parse_price("-1")
                .unwrap_err()
                .message
                .contains("not negative")
        );
    }

    #[test]
    fn amounts_show_exactly_or_rounded_once_to_the_minor_unit() {
        assert_eq!(format_nanos(12_000), "0.000012");
        assert_eq!(format_nanos(3 * NANOS), "3");
        assert_eq!(format_nanos(-1_500_000_000), "-1.5");
        assert_eq!(format_amount(1_234_567_890, "EUR"), "1.23");
        assert_eq!(
            format_amount(1_235_000_000, "EUR"),
            "1.24",
            "half away from zero"
        );
        assert_eq!(format_amount(-1_235_000_000, "EUR"), "-1.24");
        assert_eq!(format_amount(4_999_999, "EUR"), "0.00");
        assert_eq!(format_amount(5_000_000, "EUR"), "0.01");
        assert_eq!(format_amount(1_500_000_000, "JPY"), "2");
        assert_eq!(format_amount(1_234_500_000, "KWD"), "1.235");
    }

    #[test]
    fn currencies_are_iso_4217() {
        assert!(check_currency("EUR").is_ok());
        assert!(check_currency("eur").unwrap_err().hint.contains("`EUR`"));
        assert!(check_currency("EUX").is_err());
        assert_eq!(minor_digits("JPY"), 0);
    }
}
