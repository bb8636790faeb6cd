//! Go's float text conventions, because keptn's criteria and messages are defined by them:
//! `strconv.ParseFloat` decides which criteria are valid, and `%v` shapes every score in a message.

/// Parses like Go's `strconv.ParseFloat(s, 64)`: `None` where Go returns an error.
///
/// Differences from Rust's `f64::from_str` that matter: a value that overflows to ±∞ is an error
/// (Go's `ErrRange`), `nan` takes no sign, hexadecimal floats (`0x1p-2`) are accepted.
/// Not reproduced: Go's `_` digit separators after a base prefix (nobody writes them in an SLO).
pub fn parse(s: &str) -> Option<f64> {
    let (negative, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let magnitude = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" if body.len() == s.len() => f64::NAN,
        _ if lower.starts_with("0x") => finite(parse_hex(&lower[2..])?)?,
        _ if is_decimal(body) => finite(body.parse().ok()?)?,
        _ => return None,
    };
    Some(if negative { -magnitude } else { magnitude })
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// `digits [. digits] [e [+-] digits]` with at least one mantissa digit: Go's decimal syntax.
fn is_decimal(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let mut dots = 0;
    let mut digits = 0;
    for c in mantissa.chars() {
        match c {
            '0'..='9' => digits += 1,
            '.' => dots += 1,
            _ => return false,
        }
    }
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    digits > 0 && dots <= 1 && exponent_ok
}

/// Hex mantissa with a mandatory binary exponent (`1.8p3`), as Go requires.
fn parse_hex(s: &str) -> Option<f64> {
    let (mantissa, exponent) = s.split_once('p')?;
    let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
    if exponent.is_empty() || exponent.trim_start_matches('-').is_empty() {
        return None;
    }
    let mut exponent: i32 = exponent.parse().ok()?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in whole.chars().chain(fraction.chars()) {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    exponent -= 4 * i32::try_from(fraction.len()).ok()?;
    Some(value * 2f64.powi(exponent))
}

/// Formats like Go's `%v` for a float64: shortest digits, exponent form below 1e-4 or from 1e21 on.
pub fn format(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..21).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_go_parses() {
        assert_eq!(parse("10"), Some(10.0));
        assert_eq!(parse("10.5"), Some(10.5));
        assert_eq!(parse(".5"), Some(0.5));
        assert_eq!(parse("5."), Some(5.0));
        assert_eq!(parse("-5"), Some(-5.0));
        assert_eq!(parse("+5"), Some(5.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("1E-2"), Some(0.01));
        assert_eq!(parse("Inf"), Some(f64::INFINITY));
        assert_eq!(parse("-infinity"), Some(f64::NEG_INFINITY));
        assert!(parse("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse("0x1p-2"), Some(0.25));
        assert_eq!(parse("0x1.8p1"), Some(3.0));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for s in ["", ".", "+", "--5", "+-5", "1e", "1e+", "abc", "1.2.3", "5%", "+nan", "1e400", "0x10", "1_000", " 5"]
        {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn formats_like_go_percent_v() {
        assert_eq!(format(75.3), "75.3");
        assert_eq!(format(75.0), "75");
        assert_eq!(format(100.0), "100");
        assert_eq!(format(0.0), "0");
        assert_eq!(format(100.0 * (85.0 / 92.0)), "92.3913043478261");
        assert_eq!(format(0.0001), "0.0001");
        assert_eq!(format(0.00001), "1e-05");
        assert_eq!(format(1e20), "100000000000000000000");
        assert_eq!(format(1e21), "1e+21");
        assert_eq!(format(-2.5e-7), "-2.5e-07");
        assert_eq!(format(f64::NAN), "NaN");
        assert_eq!(format(f64::NEG_INFINITY), "-Inf");
    }
}
