//! Reads `event:`/`data:` frames from a Server-Sent Events response.

use crate::{ClientError, ClientResult, root_cause};
use serde_json::Value;

pub struct EventStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl EventStream {
    pub(crate) fn new(resp: reqwest::Response) -> Self {
        EventStream { resp, buf: Vec::new() }
    }

    /// The next frame as (event name, parsed data); None when the server closed the stream.
    pub async fn next(&mut self) -> ClientResult<Option<(String, Value)>> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                if let Some(frame) = parse_frame(&String::from_utf8_lossy(&block)) {
                    return Ok(Some(frame));
                }
                continue; // a keep-alive comment
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                Ok(None) => return Ok(None),
                Err(e) => return Err(ClientError::Lost(root_cause(&e))),
            }
        }
    }
}

fn parse_frame(block: &str) -> Option<(String, Value)> {
    let mut name = String::from("message");
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if data.is_empty() {
        return None;
    }
    Some((name, serde_json::from_str(&data).unwrap_or(Value::String(data))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sse_frames() {
        let (name, v) = super::parse_frame("event: state\ndata: {\"a\":1}\n\n").unwrap();
        assert_eq!((name.as_str(), v["a"].as_i64()), ("state", Some(1)));
        assert!(super::parse_frame(":\n\n").is_none(), "keep-alive comments are skipped");
    }
}
