//! A loopback fake of the OpenAI chat-completions / embeddings API and of the Anthropic
//! Messages API, speaking their wire formats (JSON answers, SSE streams over chunked
//! transfer encoding, error bodies, `retry-after`). The model name picks the behaviour:
//!
//! - `ok`, `ok-<tag>` (a tag keeps one test's requests apart): an answer (`Hello!` streamed as `Hel`, `lo`, `!`), usage 12 in / 5 out;
//! - `fail-500`, `malformed`, `unauthorized`: a 500, a 200 that is not JSON, a 401;
//! - `limited-once-<tag>`: a 429 with `retry-after-ms: 50` the first time, then `ok`;
//! - `limited`: always 429 with `retry-after: 30` (past the host's wait);
//! - `cut`: the stream stops after two deltas, without its end (connection closed);
//! - `absurd`: usage of 10^15 tokens;
//! - `json`: the answer `{"answer":42}` (and a check that structured output was asked);
//! - `bad-json`: the answer `{"answer":"no"}`, which breaks a schema asking for an integer;
//! - `tools`, `tools-<tag>`: a tool call `lookup` with `{"q":"x"}` (streamed in pieces
//!   when asked);
//! - `slow`: like `ok`, the first delta after 300 ms (time for an event stream to
//!   subscribe), the next ones 20 ms apart.
//!
//! Requests must carry the test key (`Authorization: Bearer sk-test` / `x-api-key:
//! ak-test` with `anthropic-version: 2023-06-01`), or the fake answers 401.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The OpenAI key the fake accepts.
pub const OPENAI_KEY: &str = "sk-test";
/// The Anthropic key the fake accepts.
pub const ANTHROPIC_KEY: &str = "ak-test";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request path.
    pub path: String,
    /// The JSON body.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

/// The running fake.
pub struct FakeLlm {
    /// Its port on 127.0.0.1.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    first_deltas: FirstDeltas,
}

/// When the first delta of each streamed answer was written, by model.
type FirstDeltas = Arc<Mutex<Vec<(String, Instant)>>>;

impl FakeLlm {
    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// When the fake began writing the first delta of the latest streamed answer for
    /// `model`.
    pub fn last_first_delta(&self, model: &str) -> Option<Instant> {
        let firsts = self.first_deltas.lock().unwrap_or_else(|p| p.into_inner());
        firsts
            .iter()
            .rev()
            .find(|(m, _)| m == model)
            .map(|(_, at)| *at)
    }

    /// Requests for `model` so far, in arrival order.
    pub fn seen(&self, model: &str) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .filter(|s| s.body["model"] == model)
            .cloned()
            .collect()
    }
}

/// The process-wide fake.
pub fn fake_llm() -> &'static FakeLlm {
    static FAKE: OnceLock<FakeLlm> = OnceLock::new();
    FAKE.get_or_init(|| {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let recorded = seen.clone();
        let first_deltas = FirstDeltas::default();
        let firsts = first_deltas.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        std::thread::Builder::new()
            .name("fake-llm".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(handle(stream, recorded.clone(), firsts.clone()));
                    }
                });
            })
            .expect("fake thread");
        FakeLlm {
            port,
            seen,
            first_deltas,
        }
    })
}

struct Request {
    path: String,
    headers: HashMap<String, String>,
    body: Value,
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body_bytes = buf.split_off(head_end);
    let body = match headers.get("content-length") {
        Some(length) => {
            let length: usize = length.parse().ok()?;
            while body_bytes.len() < length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                body_bytes.extend_from_slice(&chunk[..n]);
            }
            body_bytes.truncate(length);
            body_bytes
        }
        // Chunked (what wasi:http sends when the guest gives no length).
        None => loop {
            if let Some(decoded) = dechunk(&body_bytes) {
                break decoded;
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            body_bytes.extend_from_slice(&chunk[..n]);
        },
    };
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(Request {
        path,
        headers,
        body,
    })
}

/// The body of a complete chunked encoding, or `None` while the last chunk is missing.
fn dechunk(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&bytes[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let start = line_end + 2;
        if size == 0 {
            return Some(body);
        }
        if bytes.len() < start + size + 2 {
            return None;
        }
        body.extend_from_slice(&bytes[start..start + size]);
        bytes = &bytes[start + size + 2..];
    }
}

async fn handle(mut stream: TcpStream, seen: Arc<Mutex<Vec<Seen>>>, firsts: FirstDeltas) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let model = request.body["model"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let earlier = {
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        let earlier = seen.iter().filter(|s| s.body["model"] == model).count();
        seen.push(Seen {
            path: request.path.clone(),
            body: request.body.clone(),
            at: Instant::now(),
        });
        earlier
    };
    let anthropic = request.path == "/v1/messages";
    let authorized = match anthropic {
        true => {
            request.headers.get("x-api-key").map(String::as_str) == Some(ANTHROPIC_KEY)
                && request.headers.get("anthropic-version").map(String::as_str)
                    == Some("2023-06-01")
        }
        false => {
            request.headers.get("authorization").map(String::as_str)
                == Some(&*format!("Bearer {OPENAI_KEY}"))
        }
    };
    let scenario = match model.as_str() {
        m if m.starts_with("limited-once-") && earlier == 0 => "limited-once",
        m if m.starts_with("limited-once-") => "ok",
        m if m.starts_with("tools-") => "tools",
        m if m.starts_with("ok-") => "ok",
        m => m,
    };
    let stream_wanted = request.body["stream"] == true;
    let _ = match (authorized, scenario) {
        (false, _) | (_, "unauthorized") => {
            let body = error_body(anthropic, "authentication_error", "invalid api key");
            write_json(&mut stream, 401, &[], &body).await
        }
        (_, "fail-500") => {
            write_json(
                &mut stream,
                500,
                &[],
                &error_body(anthropic, "api_error", "boom"),
            )
            .await
        }
        (_, "limited-once") => {
            let body = error_body(anthropic, "rate_limit_error", "slow down");
            write_json(&mut stream, 429, &[("retry-after-ms", "50")], &body).await
        }
        (_, "limited") => {
            let body = error_body(anthropic, "rate_limit_error", "slow down");
            write_json(&mut stream, 429, &[("retry-after", "30")], &body).await
        }
        (_, "malformed") => write_raw(&mut stream, 200, &[], b"{not json").await,
        _ if request.path == "/v1/embeddings" => {
            let inputs = request.body["input"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .map(|(i, _)| json!({ "object": "embedding", "index": i, "embedding": [i as f32, 0.5] }))
                .collect();
            let body = json!({ "object": "list", "data": data, "model": model,
                               "usage": { "prompt_tokens": 3 * inputs.len(), "total_tokens": 3 * inputs.len() } });
            write_json(&mut stream, 200, &[], &body).await
        }
        _ if anthropic && stream_wanted => anthropic_stream(&mut stream, scenario).await,
        _ if anthropic => write_json(&mut stream, 200, &[], &anthropic_answer(scenario)).await,
        _ if stream_wanted => openai_stream(&mut stream, scenario, &model, &firsts).await,
        _ => write_json(&mut stream, 200, &[], &openai_answer(scenario)).await,
    };
}

fn error_body(anthropic: bool, kind: &str, message: &str) -> Value {
    match anthropic {
        true => json!({ "type": "error", "error": { "type": kind, "message": message } }),
        false => json!({ "error": { "message": message, "type": kind } }),
    }
}

fn content_of(scenario: &str) -> &'static str {
    match scenario {
        "json" => r#"{"answer":42}"#,
        "bad-json" => r#"{"answer":"no"}"#,
        _ => "Hello!",
    }
}

fn usage_of(scenario: &str) -> (u64, u64) {
    match scenario {
        "absurd" => (1_000_000_000_000_000, 5),
        _ => (12, 5),
    }
}

fn openai_answer(scenario: &str) -> Value {
    let (input, output) = usage_of(scenario);
    let message = match scenario {
        "tools" => json!({ "role": "assistant", "content": null, "tool_calls": [
            { "id": "call_1", "type": "function", "function": { "name": "lookup", "arguments": "{\"q\":\"x\"}" } }] }),
        _ => json!({ "role": "assistant", "content": content_of(scenario) }),
    };
    let finish = if scenario == "tools" {
        "tool_calls"
    } else {
        "stop"
    };
    json!({ "id": "chatcmpl-1", "object": "chat.completion", "choices": [
        { "index": 0, "message": message, "finish_reason": finish }],
        "usage": { "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output } })
}

fn anthropic_answer(scenario: &str) -> Value {
    let (input, output) = usage_of(scenario);
    let (content, stop) = match scenario {
        "tools" => (
            json!([{ "type": "tool_use", "id": "toolu_1", "name": "lookup", "input": { "q": "x" } }]),
            "tool_use",
        ),
        "json" | "bad-json" => {
            let input: Value = serde_json::from_str(content_of(scenario)).unwrap();
            (
                json!([{ "type": "tool_use", "id": "toolu_1", "name": "structured_output", "input": input }]),
                "tool_use",
            )
        }
        _ => (
            json!([{ "type": "text", "text": content_of(scenario) }]),
            "end_turn",
        ),
    };
    json!({ "id": "msg_1", "type": "message", "role": "assistant", "content": content,
            "stop_reason": stop, "usage": { "input_tokens": input, "output_tokens": output } })
}

fn deltas(scenario: &str) -> Vec<&'static str> {
    match scenario {
        "json" => vec![r#"{"answer""#, r#":42}"#],
        _ => vec!["Hel", "lo", "!"],
    }
}

async fn openai_stream(
    stream: &mut TcpStream,
    scenario: &str,
    model: &str,
    firsts: &FirstDeltas,
) -> std::io::Result<()> {
    start_chunked(stream, "text/event-stream").await?;
    let (input, output) = usage_of(scenario);
    if scenario == "tools" {
        // A tool call streamed in pieces: id and name first, the arguments in two parts.
        for delta in [
            json!({ "tool_calls": [{ "index": 0, "id": "call_1", "type": "function",
                                     "function": { "name": "lookup", "arguments": "" } }] }),
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "{\"q\":" } }] }),
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "\"x\"}" } }] }),
        ] {
            let chunk = json!({ "id": "c", "choices": [{ "index": 0, "delta": delta, "finish_reason": null }] });
            write_chunk(stream, &format!("data: {chunk}\n\n")).await?;
        }
        let last = json!({ "id": "c", "choices": [{ "index": 0, "delta": {}, "finish_reason": "tool_calls" }],
                           "usage": { "prompt_tokens": input, "completion_tokens": output } });
        write_chunk(stream, &format!("data: {last}\n\n")).await?;
        write_chunk(stream, "data: [DONE]\n\n").await?;
        return end_chunked(stream).await;
    }
    for (i, delta) in deltas(scenario).into_iter().enumerate() {
        if scenario == "cut" && i == 2 {
            // The connection drops mid-answer: no final chunk, no usage, no [DONE].
            return stream.shutdown().await;
        }
        if scenario == "slow" {
            tokio::time::sleep(Duration::from_millis(if i == 0 { 300 } else { 20 })).await;
        }
        let chunk = json!({ "id": "c", "object": "chat.completion.chunk",
                            "choices": [{ "index": 0, "delta": { "content": delta }, "finish_reason": null }] });
        if i == 0 {
            // Taken as the first byte goes out: the host may read it before the write returns.
            let mut firsts = firsts.lock().unwrap_or_else(|p| p.into_inner());
            firsts.push((model.to_owned(), Instant::now()));
        }
        write_chunk(stream, &format!("data: {chunk}\n\n")).await?;
    }
    let last =
        json!({ "id": "c", "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] });
    write_chunk(stream, &format!("data: {last}\n\n")).await?;
    let usage = json!({ "id": "c", "choices": [],
                        "usage": { "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output } });
    write_chunk(stream, &format!("data: {usage}\n\n")).await?;
    write_chunk(stream, "data: [DONE]\n\n").await?;
    end_chunked(stream).await
}

async fn anthropic_stream(stream: &mut TcpStream, scenario: &str) -> std::io::Result<()> {
    start_chunked(stream, "text/event-stream").await?;
    let (input, output) = usage_of(scenario);
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    write_chunk(
        stream,
        &event(
            "message_start",
            json!({ "type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [],
        "usage": { "input_tokens": input, "output_tokens": 1 } } }),
        ),
    )
    .await?;
    write_chunk(stream, &event("ping", json!({ "type": "ping" }))).await?;
    if scenario == "tools" {
        write_chunk(stream, &event("content_block_start", json!({ "type": "content_block_start", "index": 0,
            "content_block": { "type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {} } }))).await?;
        for part in ["{\"q\":", "\"x\"}"] {
            write_chunk(
                stream,
                &event(
                    "content_block_delta",
                    json!({ "type": "content_block_delta", "index": 0,
                "delta": { "type": "input_json_delta", "partial_json": part } }),
                ),
            )
            .await?;
        }
        write_chunk(
            stream,
            &event(
                "content_block_stop",
                json!({ "type": "content_block_stop", "index": 0 }),
            ),
        )
        .await?;
        write_chunk(
            stream,
            &event(
                "message_delta",
                json!({ "type": "message_delta",
            "delta": { "stop_reason": "tool_use" }, "usage": { "output_tokens": output } }),
            ),
        )
        .await?;
        write_chunk(
            stream,
            &event("message_stop", json!({ "type": "message_stop" })),
        )
        .await?;
        return end_chunked(stream).await;
    }
    write_chunk(
        stream,
        &event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0,
        "content_block": { "type": "text", "text": "" } }),
        ),
    )
    .await?;
    for (i, delta) in deltas(scenario).into_iter().enumerate() {
        if scenario == "cut" && i == 2 {
            return stream.shutdown().await;
        }
        if scenario == "overloaded" && i == 1 {
            write_chunk(
                stream,
                &event(
                    "error",
                    json!({ "type": "error",
                "error": { "type": "overloaded_error", "message": "Overloaded" } }),
                ),
            )
            .await?;
            return end_chunked(stream).await;
        }
        if scenario == "slow" && i > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        write_chunk(
            stream,
            &event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 0,
            "delta": { "type": "text_delta", "text": delta } }),
            ),
        )
        .await?;
    }
    write_chunk(
        stream,
        &event(
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": 0 }),
        ),
    )
    .await?;
    write_chunk(stream, &event("message_delta", json!({ "type": "message_delta",
        "delta": { "stop_reason": "end_turn", "stop_sequence": null }, "usage": { "output_tokens": output } }))).await?;
    write_chunk(
        stream,
        &event("message_stop", json!({ "type": "message_stop" })),
    )
    .await?;
    end_chunked(stream).await
}

async fn write_json(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &Value,
) -> std::io::Result<()> {
    write_raw(stream, status, headers, body.to_string().as_bytes()).await
}

async fn write_raw(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

async fn start_chunked(stream: &mut TcpStream, kind: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await
}

async fn write_chunk(stream: &mut TcpStream, data: &str) -> std::io::Result<()> {
    stream
        .write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await?;
    stream.flush().await
}

async fn end_chunked(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(b"0\r\n\r\n").await?;
    stream.shutdown().await
}
