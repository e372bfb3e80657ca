//! Server-sent events (`text/event-stream`), parsed as the body arrives: the wire format
//! of streamed LLM answers.

/// One event: its `event:` name, when given, and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` lines.
    pub data: String,
}

/// Splits a byte stream into events; feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct Parser {
    pending: Vec<u8>,
}

impl Parser {
    /// Adds `chunk` and returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some((end, skip)) = block_end(&self.pending) {
            let block: Vec<u8> = self.pending.drain(..end + skip).take(end).collect();
            if let Some(event) = parse_block(&String::from_utf8_lossy(&block)) {
                events.push(event);
            }
        }
        events
    }

    /// Whether bytes of an unfinished event are waiting.
    pub fn has_partial(&self) -> bool {
        self.pending.iter().any(|b| !b.is_ascii_whitespace())
    }
}

/// Where the first blank line ends a block: its start and its length.
fn block_end(bytes: &[u8]) -> Option<(usize, usize)> {
    (0..bytes.len()).find_map(|i| {
        let rest = &bytes[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some((i, 4))
        } else if rest.starts_with(b"\n\n") || rest.starts_with(b"\r\r") {
            Some((i, 2))
        } else {
            None
        }
    })
}

fn parse_block(block: &str) -> Option<Event> {
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            // Comments (`: ping`), `id`, `retry` and unknown fields carry no data here.
            _ => {}
        }
    }
    if data.is_empty() && event.is_none() {
        return None;
    }
    Some(Event {
        event,
        data: data.join("\n"),
    })
}

/// How long a `retry-after` / `retry-after-ms` header asks to wait, in milliseconds
/// (`retry-after` in seconds, possibly fractional; an HTTP date is not honoured).
pub fn retry_after_ms(headers: &[(String, Vec<u8>)]) -> Option<u64> {
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    value("retry-after-ms")
        .or_else(|| value("retry-after").map(|s| s * 1000.0))
        .map(|ms| ms.min(u64::MAX as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut parser = Parser::default();
        assert!(parser.push(b"data: {\"a\"").is_empty());
        let events = parser
            .push(b":1}\n\n: ping\n\nevent: message_stop\r\ndata: {}\r\n\r\ndata: [DONE]\n\n");
        assert_eq!(
            events,
            [
                Event {
                    event: None,
                    data: "{\"a\":1}".into()
                },
                Event {
                    event: Some("message_stop".into()),
                    data: "{}".into()
                },
                Event {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
        assert!(!parser.has_partial());
        parser.push(b"data: cut");
        assert!(parser.has_partial());
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let h = |n: &str, v: &str| vec![(n.to_owned(), v.as_bytes().to_vec())];
        assert_eq!(retry_after_ms(&h("Retry-After", "2")), Some(2000));
        assert_eq!(retry_after_ms(&h("retry-after", "0.5")), Some(500));
        assert_eq!(retry_after_ms(&h("retry-after-ms", "20")), Some(20));
        assert_eq!(
            retry_after_ms(&h("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(retry_after_ms(&h("retry-after", "-1")), None);
    }
}
