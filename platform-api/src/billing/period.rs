//! The period a bill covers: a calendar month, or `--from`/`--to`, half-open, cut in a time
//! zone (UTC unless asked), with the days it spans.

use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Why a period was refused: what, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodError {
    pub code: &'static str,
    pub message: String,
    pub hint: &'static str,
}

fn refused(code: &'static str, message: String, hint: &'static str) -> PeriodError {
    PeriodError {
        code,
        message,
        hint,
    }
}

#[derive(Debug, Clone)]
pub struct Period {
    pub from_us: i64,
    pub to_us: i64,
    pub tz: TimeZone,
    pub tz_name: String,
}

/// What the caller asked for.
#[derive(Debug, Default, Clone)]
pub struct Asked<'a> {
    pub month: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub tz: Option<&'a str>,
}

fn zone(name: Option<&str>) -> Result<(TimeZone, String), PeriodError> {
    match name {
        None | Some("UTC") | Some("utc") => Ok((TimeZone::UTC, "UTC".into())),
        Some(n) => TimeZone::get(n).map(|tz| (tz, n.to_owned())).map_err(|_| {
            refused(
                "invalid-tz",
                format!("`{n}` is not a time zone this platform knows"),
                "give an IANA name such as `Europe/Paris` or `America/New_York`, or `UTC`",
            )
        }),
    }
}

fn midnight(d: Date, tz: &TimeZone) -> Result<i64, PeriodError> {
    d.at(0, 0, 0, 0)
        .to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp().as_microsecond())
        .map_err(|e| refused("invalid-period", format!("{d}: {e}"), "give a later date"))
}

fn month(text: &str) -> Result<Date, PeriodError> {
    let bad = || {
        refused(
            "invalid-month",
            format!("`{text}` is not a month"),
            "write it as YYYY-MM, e.g. `2026-11`",
        )
    };
    let (y, m) = text.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Date::new(y, m, 1).map_err(|_| bad())
}

/// A day (`YYYY-MM-DD`, midnight in the zone) or an instant (RFC 3339).
fn instant(text: &str, what: &str, tz: &TimeZone) -> Result<i64, PeriodError> {
    if text.len() == 10 {
        let d: Date = text.parse().map_err(|_| {
            refused(
                "invalid-time",
                format!("`{what}` is `{text}`, which is not a date"),
                "write a day as YYYY-MM-DD or an instant as 2026-11-01T00:00:00Z",
            )
        })?;
        return midnight(d, tz);
    }
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_microsecond())
        .map_err(|_| {
            refused(
                "invalid-time",
                format!("`{what}` is `{text}`, which is neither a date nor an RFC 3339 instant"),
                "write a day as YYYY-MM-DD or an instant as 2026-11-01T00:00:00Z",
            )
        })
}

impl Period {
    /// The period asked for; the current month (in the zone) when nothing is.
    pub fn resolve(asked: &Asked<'_>, now_us: i64) -> Result<Period, PeriodError> {
        let (tz, tz_name) = zone(asked.tz)?;
        let (from_us, to_us) = match (asked.month, asked.from, asked.to) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(refused(
                    "invalid-period",
                    "a month and `from`/`to` were both given".into(),
                    "give either a month or `from` and `to`",
                ));
            }
            (Some(m), None, None) => {
                let first = month(m)?;
                let next = first
                    .checked_add(jiff::Span::new().months(1))
                    .map_err(|_| {
                        refused(
                            "invalid-month",
                            format!("`{m}` is too late"),
                            "give an earlier month",
                        )
                    })?;
                (midnight(first, &tz)?, midnight(next, &tz)?)
            }
            (None, Some(f), Some(t)) => (instant(f, "from", &tz)?, instant(t, "to", &tz)?),
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(refused(
                    "invalid-period",
                    "`from` and `to` go together".into(),
                    "give both, e.g. `from=2026-11-01&to=2026-11-15` (half-open: `to` is not included)",
                ));
            }
            (None, None, None) => {
                let today = jiff::Timestamp::from_microsecond(now_us)
                    .map_err(|e| refused("invalid-period", e.to_string(), "check the clock"))?
                    .to_zoned_datetime(tz.clone())
                    .date();
                let first = today.first_of_month();
                let next = first
                    .checked_add(jiff::Span::new().months(1))
                    .map_err(|e| refused("invalid-period", e.to_string(), "check the clock"))?;
                (midnight(first, &tz)?, midnight(next, &tz)?)
            }
        };
        if to_us <= from_us {
            return Err(refused(
                "invalid-period",
                "the period ends before it starts (or is empty)".into(),
                "`to` must be after `from`; the period is half-open, `to` is not included",
            ));
        }
        Ok(Period {
            from_us,
            to_us,
            tz,
            tz_name,
        })
    }

    pub fn is_utc(&self) -> bool {
        self.tz_name == "UTC"
    }

    /// The instant in the period's zone, RFC 3339 with its offset.
    pub fn show(&self, us: i64) -> String {
        match jiff::Timestamp::from_microsecond(us) {
            Ok(t) if self.is_utc() => t.to_string(),
            Ok(t) => {
                let z = t.to_zoned_datetime(self.tz.clone());
                z.timestamp().display_with_offset(z.offset()).to_string()
            }
            Err(_) => us.to_string(),
        }
    }

    /// The days the period spans in its zone: (YYYY-MM-DD, from, to), clipped to the period.
    pub fn days(&self) -> Vec<(String, i64, i64)> {
        let mut out = Vec::new();
        let Ok(start) = jiff::Timestamp::from_microsecond(self.from_us) else {
            return out;
        };
        let mut day = start.to_zoned_datetime(self.tz.clone()).date();
        while let Ok(a) = midnight(day, &self.tz) {
            let Ok(next) = day.tomorrow() else { break };
            let Ok(b) = midnight(next, &self.tz) else {
                break;
            };
            if a >= self.to_us {
                break;
            }
            out.push((day.to_string(), a.max(self.from_us), b.min(self.to_us)));
            day = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_191_800_000_000; // 2026-12-02T06:10:00Z

    fn asked<'a>(month: Option<&'a str>, tz: Option<&'a str>) -> Asked<'a> {
        Asked {
            month,
            tz,
            ..Default::default()
        }
    }

    #[test]
    fn a_month_is_half_open_in_its_zone() {
        let p = Period::resolve(&asked(Some("2026-11"), None), NOW).unwrap();
        assert_eq!(p.show(p.from_us), "2026-11-01T00:00:00Z");
        assert_eq!(p.show(p.to_us), "2026-12-01T00:00:00Z");
        assert_eq!(p.days().len(), 30);
        let paris = Period::resolve(&asked(Some("2026-11"), Some("Europe/Paris")), NOW).unwrap();
        assert_eq!(
            p.from_us - paris.from_us,
            3_600_000_000,
            "an hour ahead of UTC in November"
        );
        assert_eq!(paris.show(paris.from_us), "2026-11-01T00:00:00+01:00");
        let now = Period::resolve(&Asked::default(), NOW).unwrap();
        assert_eq!(now.show(now.from_us), "2026-12-01T00:00:00Z");
    }

    #[test]
    fn bad_periods_say_what_to_write() {
        for (a, code) in [
            (asked(Some("2026-13"), None), "invalid-month"),
            (asked(Some("November"), None), "invalid-month"),
            (asked(Some("2026-11"), Some("Mars/Olympus")), "invalid-tz"),
            (
                Asked {
                    from: Some("2026-11-05"),
                    ..Default::default()
                },
                "invalid-period",
            ),
            (
                Asked {
                    from: Some("2026-11-05"),
                    to: Some("2026-11-01"),
                    ..Default::default()
                },
                "invalid-period",
            ),
            (
                Asked {
                    from: Some("yesterday"),
                    to: Some("2026-11-01"),
                    ..Default::default()
                },
                "invalid-time",
            ),
        ] {
            assert_eq!(Period::resolve(&a, NOW).unwrap_err().code, code, "{a:?}");
        }
    }
}
