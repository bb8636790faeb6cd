//! keptn's evaluation timeframe (reference §1.2): from `evaluation.{start,end,timeframe}`, else a
//! preceding test's `test.{start,end}`. Pure; `now_ms` is passed in.

use keptn_engine::format_time;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeframe {
    pub start: String,
    pub end: String,
}

/// keptn's accepted forms: `…T…000Z`, RFC 3339, or `YYYY-MM-DDTHH:MM:SS` (UTC).
fn parse(name: &str, s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .map(|t| t.and_utc().timestamp_millis())
        .map_err(|_| format!("could not parse {name} {s:?}; use e.g. 2023-12-01T10:00:00.000Z"))
}

fn text<'a>(data: &'a Value, pointer: &str) -> &'a str {
    data.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The evaluation window of an `evaluation.triggered`'s data, or keptn's error message.
pub fn resolve(data: &Value, now_ms: i64) -> Result<Timeframe, String> {
    let (start, end, timeframe) =
        (text(data, "/evaluation/start"), text(data, "/evaluation/end"), text(data, "/evaluation/timeframe"));
    if (!start.is_empty() && !end.is_empty()) || !timeframe.is_empty() {
        return from_evaluation(start, end, timeframe, now_ms);
    }
    let (test_start, test_end) = (text(data, "/test/start"), text(data, "/test/end"));
    if !test_start.is_empty() && !test_end.is_empty() {
        // keptn takes a test's window verbatim.
        return Ok(Timeframe { start: test_start.into(), end: test_end.into() });
    }
    Err("evaluation.triggered event does not contain evaluation timeframe".into())
}

fn from_evaluation(start: &str, end: &str, timeframe: &str, now_ms: i64) -> Result<Timeframe, String> {
    if !end.is_empty() && !timeframe.is_empty() {
        return Err("end date and timeframe are mutually exclusive".into());
    }
    if start.is_empty() && !end.is_empty() {
        return Err("end date must not be set without a start date".into());
    }
    let span = match timeframe {
        "" => 5 * 60_000,
        t => {
            keptn_formats::duration::parse(t).map_err(|e| format!("could not parse timeframe {t:?}: {e}"))?.as_millis()
                as i64
        }
    };
    let (start_ms, end_ms) = match (start, end) {
        ("", _) => (now_ms - span, now_ms),
        (s, "") => {
            let s = parse("start", s)?;
            (s, s + span)
        }
        (s, e) => (parse("start", s)?, parse("end", e)?),
    };
    if end_ms - start_ms < 60_000 {
        return Err("end date must be at least 1 minute after start date".into());
    }
    Ok(Timeframe { start: format_time(start_ms), end: format_time(end_ms) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20.000Z

    #[test]
    fn timeframe_ends_now() {
        let t = resolve(&json!({ "evaluation": { "timeframe": "10m" } }), NOW).unwrap();
        assert_eq!(t, Timeframe { start: "2023-11-14T22:03:20.000Z".into(), end: "2023-11-14T22:13:20.000Z".into() });
    }

    #[test]
    fn start_plus_timeframe_and_start_end() {
        let t = resolve(&json!({ "evaluation": { "start": "2023-11-14T10:00:00", "timeframe": "1h" } }), NOW).unwrap();
        assert_eq!(t.end, "2023-11-14T11:00:00.000Z");
        let t = resolve(
            &json!({ "evaluation": { "start": "2023-11-14T10:00:00.000Z", "end": "2023-11-14T10:05:00+00:00" } }),
            NOW,
        )
        .unwrap();
        assert_eq!((t.start.as_str(), t.end.as_str()), ("2023-11-14T10:00:00.000Z", "2023-11-14T10:05:00.000Z"));
    }

    #[test]
    fn keptn_errors() {
        let e = |d: Value| resolve(&d, NOW).unwrap_err();
        assert!(e(json!({ "evaluation": { "end": "2023-11-14T10:00:00", "timeframe": "5m" } })).contains("mutually"));
        assert!(e(json!({})).contains("does not contain evaluation timeframe"));
        assert!(e(json!({ "evaluation": { "timeframe": "30s" } })).contains("at least 1 minute"));
        assert!(e(json!({ "evaluation": { "timeframe": "soon" } })).contains("timeframe"));
        assert!(e(json!({ "evaluation": { "start": "yesterday", "timeframe": "5m" } })).contains("start"));
    }

    #[test]
    fn a_tests_window_is_taken_verbatim_but_evaluation_wins() {
        let data = json!({ "test": { "start": "a", "end": "b" } });
        assert_eq!(resolve(&data, NOW).unwrap(), Timeframe { start: "a".into(), end: "b".into() });
        let data = json!({ "test": { "start": "a", "end": "b" }, "evaluation": { "timeframe": "5m" } });
        assert_eq!(resolve(&data, NOW).unwrap().end, "2023-11-14T22:13:20.000Z");
    }
}
