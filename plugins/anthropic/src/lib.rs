//! The Anthropic Messages API: `POST {baseUrl}/v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`, a top-level `system`, required `max_tokens`, content
//! blocks `text` / `tool_use`, and SSE streaming (`message_start`, `content_block_*`,
//! `message_delta` with cumulative usage, `message_stop`, `ping`, mid-stream `error`).
//! Structured output is a forced tool call whose input is the answer.

use hyyve_sdk::http;
use hyyve_sdk::provider::{
    ChatMessage, ChatRequest, ChatResponse, FinishReason, Model, ModelKind, Provider,
    ProviderError, ProviderInfo, RateLimit, Role, TokenUsage, ToolCall, status_error,
    transport_error,
};
use hyyve_sdk::{log, progress, secrets, sse, usage};
use serde::Deserialize;
use serde_json::{Value, json};

struct Anthropic;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default = "default_base_url")]
    base_url: String,
    /// `max_tokens` when the call sets none (the API requires one).
    #[serde(default = "default_max_tokens")]
    default_max_tokens: u32,
}

fn default_base_url() -> String {
    "https://api.anthropic.com".into()
}

fn default_max_tokens() -> u32 {
    1024
}

const VERSION: &str = "2023-06-01";
const STRUCTURED_TOOL: &str = "structured_output";
const CONFIG_SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"properties":{
"baseUrl":{"type":"string","default":"https://api.anthropic.com"},
"defaultMaxTokens":{"type":"integer","minimum":1,"default":1024}}}"#;

fn model(id: &str) -> Model {
    Model {
        id: id.into(),
        title: id.into(),
        kind: ModelKind::Chat,
        context_window: Some(200_000),
        max_output_tokens: Some(8_192),
        supports_tools: true,
    }
}

impl Provider for Anthropic {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            name: "anthropic".into(),
            title: "Anthropic".into(),
            description: "Claude models through the Messages API.".into(),
            config_schema: CONFIG_SCHEMA.into(),
            models: vec![model("claude-3-5-haiku-latest"), model("claude-sonnet-4-0")],
        }
    }

    fn chat(request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let config: Config = serde_json::from_str(match request.config.trim() {
            "" => "{}",
            text => text,
        })
        .map_err(|e| ProviderError::InvalidRequest(format!("config: {e}")))?;
        let body = body(&request, &config)?;
        let key = secrets::get("ANTHROPIC_API_KEY")
            .map_err(|e| ProviderError::Unauthorized(format!("ANTHROPIC_API_KEY: {e:?}")))?;
        let url = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        let headers: [(&str, &[u8]); 3] = [
            ("content-type", b"application/json"),
            ("x-api-key", key.as_bytes()),
            ("anthropic-version", VERSION.as_bytes()),
        ];
        let response = http::stream("POST", &url, &headers, body.to_string().as_bytes())
            .map_err(transport_error)?;
        let structured = request.response_schema.is_some();
        if !(200..300).contains(&response.status) {
            let (status, headers) = (response.status, response.headers.clone());
            let mut bytes = Vec::new();
            let _ = response.read(|c| {
                bytes.extend_from_slice(c);
                bytes.len() < 64 << 10
            });
            return Err(status_error(status, &headers, &bytes));
        }
        if request.stream {
            return read_stream(response, structured);
        }
        let mut bytes = Vec::new();
        response
            .read(|c| {
                bytes.extend_from_slice(c);
                true
            })
            .map_err(transport_error)?;
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::Malformed(format!("not JSON: {e}")))?;
        let usage = TokenUsage {
            input_tokens: answer["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: answer["usage"]["output_tokens"].as_u64().unwrap_or(0),
        };
        report(&usage);
        let Some(blocks) = answer["content"].as_array() else {
            return Err(ProviderError::Malformed("no `content` blocks".into()));
        };
        let mut message = assistant();
        for block in blocks {
            match block["type"].as_str() {
                Some("text") => message
                    .content
                    .push_str(block["text"].as_str().unwrap_or_default()),
                Some("tool_use") => message.tool_calls.push(ToolCall {
                    id: block["id"].as_str().unwrap_or_default().to_owned(),
                    name: block["name"].as_str().unwrap_or_default().to_owned(),
                    arguments: block["input"].to_string(),
                }),
                _ => {}
            }
        }
        Ok(finish_message(
            message,
            answer["stop_reason"].as_str(),
            usage,
            structured,
        ))
    }
}

hyyve_sdk::export_provider!(Anthropic);

fn assistant() -> ChatMessage {
    ChatMessage {
        role: Role::Assistant,
        content: String::new(),
        tool_calls: Vec::new(),
        tool_call_id: None,
    }
}

fn body(request: &ChatRequest, config: &Config) -> Result<Value, ProviderError> {
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    // Tool results are user turns; consecutive turns of one role merge into one message.
    let mut messages: Vec<Value> = Vec::new();
    for m in request.messages.iter().filter(|m| m.role != Role::System) {
        let (role, blocks) = blocks_of(m)?;
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(content) = last["content"].as_array_mut() {
                    content.extend(blocks);
                }
            }
            _ => messages.push(json!({ "role": role, "content": blocks })),
        }
    }
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens.unwrap_or(config.default_max_tokens),
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    let mut tools: Vec<Value> = Vec::new();
    for tool in &request.tools {
        tools.push(json!({
            "name": tool.name,
            "description": tool.description,
            "input_schema": json_of(&tool.parameters, "tool parameters")?,
        }));
    }
    if let Some(schema) = &request.response_schema {
        tools.push(json!({
            "name": STRUCTURED_TOOL,
            "description": "Answer with this tool; its input is the answer.",
            "input_schema": json_of(schema, "response schema")?,
        }));
        body["tool_choice"] = json!({ "type": "tool", "name": STRUCTURED_TOOL });
    }
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if request.stream {
        body["stream"] = json!(true);
    }
    Ok(body)
}

fn json_of(text: &str, what: &str) -> Result<Value, ProviderError> {
    serde_json::from_str(text)
        .map_err(|_| ProviderError::InvalidRequest(format!("{what} are not JSON")))
}

fn blocks_of(m: &ChatMessage) -> Result<(&'static str, Vec<Value>), ProviderError> {
    Ok(match m.role {
        Role::Tool => (
            "user",
            vec![json!({ "type": "tool_result",
                         "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                         "content": m.content })],
        ),
        Role::Assistant => {
            let mut blocks = Vec::new();
            if !m.content.is_empty() {
                blocks.push(json!({ "type": "text", "text": m.content }));
            }
            for c in &m.tool_calls {
                blocks.push(json!({ "type": "tool_use", "id": c.id, "name": c.name,
                                    "input": json_of(&c.arguments, "tool call arguments")? }));
            }
            ("assistant", blocks)
        }
        _ => ("user", vec![json!({ "type": "text", "text": m.content })]),
    })
}

fn report(usage: &TokenUsage) {
    usage::report("llm.input-tokens", usage.input_tokens);
    usage::report("llm.output-tokens", usage.output_tokens);
}

/// The answer with its finish reason; a structured answer is the forced tool's input.
fn finish_message(
    mut message: ChatMessage,
    stop: Option<&str>,
    usage: TokenUsage,
    structured: bool,
) -> ChatResponse {
    let mut finish_reason = match stop {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    };
    if structured
        && let Some(i) = message
            .tool_calls
            .iter()
            .position(|c| c.name == STRUCTURED_TOOL)
    {
        message.content = message.tool_calls.remove(i).arguments;
        finish_reason = FinishReason::Stop;
    }
    ChatResponse {
        message,
        finish_reason,
        usage,
    }
}

/// A content block being streamed.
enum Block {
    Text,
    Tool(ToolCall),
    Other,
}

fn read_stream(
    response: http::StreamingResponse,
    structured: bool,
) -> Result<ChatResponse, ProviderError> {
    let mut parser = sse::Parser::default();
    let mut message = assistant();
    let mut blocks: Vec<Block> = Vec::new();
    let mut usage = TokenUsage {
        input_tokens: 0,
        output_tokens: 0,
    };
    let (mut started, mut stopped, mut stop_reason) = (false, false, None::<String>);
    let mut failure: Option<ProviderError> = None;
    let read = response.read(|bytes| {
        for event in parser.push(bytes) {
            let data: Value = match serde_json::from_str(&event.data) {
                Ok(v) => v,
                Err(e) => {
                    failure = Some(ProviderError::Malformed(format!("stream event: {e}")));
                    return false;
                }
            };
            match data["type"].as_str().or(event.event.as_deref()) {
                Some("message_start") => {
                    started = true;
                    let u = &data["message"]["usage"];
                    usage.input_tokens = u["input_tokens"].as_u64().unwrap_or(0);
                    usage.output_tokens = u["output_tokens"].as_u64().unwrap_or(0);
                }
                Some("content_block_start") => {
                    let block = &data["content_block"];
                    blocks.push(match block["type"].as_str() {
                        Some("text") => Block::Text,
                        Some("tool_use") => Block::Tool(ToolCall {
                            id: block["id"].as_str().unwrap_or_default().to_owned(),
                            name: block["name"].as_str().unwrap_or_default().to_owned(),
                            arguments: String::new(),
                        }),
                        _ => Block::Other,
                    });
                }
                Some("content_block_delta") => {
                    let delta = &data["delta"];
                    let index = data["index"].as_u64().unwrap_or(0) as usize;
                    match (blocks.get_mut(index), delta["type"].as_str()) {
                        (Some(Block::Text), Some("text_delta")) => {
                            let text = delta["text"].as_str().unwrap_or_default();
                            message.content.push_str(text);
                            progress::delta(text);
                        }
                        (Some(Block::Tool(call)), Some("input_json_delta")) => {
                            let part = delta["partial_json"].as_str().unwrap_or_default();
                            call.arguments.push_str(part);
                            if structured && call.name == STRUCTURED_TOOL {
                                progress::delta(part);
                            }
                        }
                        _ => {}
                    }
                }
                Some("message_delta") => {
                    if let Some(r) = data["delta"]["stop_reason"].as_str() {
                        stop_reason = Some(r.to_owned());
                    }
                    // Cumulative: the latest count is the total so far.
                    if let Some(n) = data["usage"]["output_tokens"].as_u64() {
                        usage.output_tokens = n;
                    }
                    if let Some(n) = data["usage"]["input_tokens"].as_u64() {
                        usage.input_tokens = n;
                    }
                }
                Some("message_stop") => {
                    stopped = true;
                    return false;
                }
                Some("error") => {
                    let kind = data["error"]["type"].as_str().unwrap_or("error");
                    let text = data["error"]["message"].as_str().unwrap_or_default();
                    let message = format!("stream error {kind}: {text}");
                    failure = Some(match kind {
                        "rate_limit_error" => ProviderError::RateLimited(RateLimit {
                            message,
                            retry_after_ms: None,
                        }),
                        "overloaded_error" | "api_error" => ProviderError::Unavailable(message),
                        _ => ProviderError::InvalidRequest(message),
                    });
                    return false;
                }
                // `ping`, `content_block_stop` and events added later carry nothing needed.
                _ => {}
            }
        }
        true
    });
    // What was charged so far is metered whatever happened next.
    report(&usage);
    if let Err(e) = read
        && failure.is_none()
    {
        failure = Some(transport_error(e));
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    if !started || !stopped {
        log::warn("the stream ended before message_stop; metered the usage reported so far");
        return Err(ProviderError::Unavailable(format!(
            "the stream ended before message_stop; metered {} input and {} output tokens",
            usage.input_tokens, usage.output_tokens
        )));
    }
    for block in blocks {
        if let Block::Tool(mut call) = block {
            if call.arguments.is_empty() {
                call.arguments = "{}".into();
            }
            message.tool_calls.push(call);
        }
    }
    Ok(finish_message(
        message,
        stop_reason.as_deref(),
        usage,
        structured,
    ))
}
