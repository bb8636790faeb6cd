//! Go-style durations as used in shipyards (`triggeredAfter: "10m"`, `timeout: 1h30m`).

use std::time::Duration;

/// Parses a Go duration string (`300ms`, `1.5h`, `2h45m`, `10s`). A bare `0` is zero.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration; use e.g. \"10m\" or \"1h30m\"".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {input:?}: expected a number before the unit"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {input:?}: bad number {:?}", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("invalid duration {input:?}: missing unit (ns, us, ms, s, m, h)")),
            other => {
                return Err(format!("invalid duration {input:?}: unknown unit {other:?} (use ns, us, ms, s, m or h)"));
            }
        };
        total += value * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    // Go's time.Duration (what keptn parsed with) holds at most i64::MAX ns, about 292 years.
    // Larger values would overflow timestamps downstream, and from_secs_f64 panics past u64 seconds.
    if !total.is_finite() || total > i64::MAX as f64 / 1e9 {
        return Err(format!("invalid duration {input:?}: longer than the maximum of 2562047h (about 292 years)"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_durations_with_a_reason() {
        assert!(parse("10").unwrap_err().contains("missing unit"));
        assert!(parse("5d").unwrap_err().contains("unknown unit"));
        assert!(parse("").is_err());
        assert!(parse("m").is_err());
        assert!(parse("2562047h").is_ok());
        assert!(parse("2562048h").unwrap_err().contains("maximum"));
        assert!(parse("99999999999999999999h").is_err());
        assert!(parse(&format!("{}h", "9".repeat(400))).unwrap_err().contains("maximum"));
    }
}
