//! An OpenAI-compatible provider: `POST {baseUrl}/chat/completions` (tools, JSON-schema
//! structured output, SSE streaming with a final usage chunk) and `POST
//! {baseUrl}/embeddings`. OpenRouter, DeepSeek, Ollama and vLLM speak the same format.

use hyyve_sdk::http;
use hyyve_sdk::provider::{
    self, ChatMessage, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, FinishReason, Model,
    ModelKind, Provider, ProviderError, ProviderInfo, Role, TokenUsage, ToolCall, transport_error,
};
use hyyve_sdk::{log, progress, secrets, sse, usage};
use serde::Deserialize;
use serde_json::{Value, json};

struct OpenAi;

/// The provider configuration of an alias target.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default = "default_base_url")]
    base_url: String,
    /// Which declared secret holds the key; absent secret: no `Authorization` (Ollama).
    #[serde(default = "default_key_secret")]
    api_key_secret: String,
    #[serde(default)]
    organization: Option<String>,
}

fn default_base_url() -> String {
    "https://api.openai.com/v1".into()
}

fn default_key_secret() -> String {
    "OPENAI_API_KEY".into()
}

const CONFIG_SCHEMA: &str = r#"{"type":"object","additionalProperties":false,"properties":{
"baseUrl":{"type":"string","description":"API root, e.g. https://api.openai.com/v1, https://openrouter.ai/api/v1, http://localhost:11434/v1","default":"https://api.openai.com/v1"},
"apiKeySecret":{"type":"string","enum":["OPENAI_API_KEY","OPENROUTER_API_KEY","DEEPSEEK_API_KEY"],"default":"OPENAI_API_KEY"},
"organization":{"type":"string"}}}"#;

fn model(id: &str, kind: ModelKind, context: u32, tools: bool) -> Model {
    Model {
        id: id.into(),
        title: id.into(),
        kind,
        context_window: Some(context),
        max_output_tokens: None,
        supports_tools: tools,
    }
}

impl Provider for OpenAi {
    fn describe() -> ProviderInfo {
        ProviderInfo {
            name: "openai".into(),
            title: "OpenAI-compatible".into(),
            description: "Chat completions and embeddings over the OpenAI wire format.".into(),
            config_schema: CONFIG_SCHEMA.into(),
            models: vec![
                model("gpt-4o-mini", ModelKind::Chat, 128_000, true),
                model("gpt-4o", ModelKind::Chat, 128_000, true),
                model("text-embedding-3-small", ModelKind::Embedding, 8_191, false),
            ],
        }
    }

    fn chat(request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let config = config(&request.config)?;
        let body = chat_body(&request)?;
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        if request.stream {
            return stream_chat(&config, &url, &body);
        }
        let response = post(&config, &url, &body)?;
        let answer: Value = parse_json(&response.body)?;
        let usage = usage_of(&answer);
        report(usage.as_ref());
        let choice = &answer["choices"][0];
        if !choice.is_object() {
            return Err(ProviderError::Malformed("no choices in the answer".into()));
        }
        let message = &choice["message"];
        Ok(ChatResponse {
            message: ChatMessage {
                role: Role::Assistant,
                content: message["content"].as_str().unwrap_or_default().to_owned(),
                tool_calls: tool_calls(&message["tool_calls"])?,
                tool_call_id: None,
            },
            finish_reason: finish(choice["finish_reason"].as_str()),
            usage: usage.unwrap_or(TokenUsage {
                input_tokens: 0,
                output_tokens: 0,
            }),
        })
    }

    fn embed(request: EmbedRequest) -> Result<EmbedResponse, ProviderError> {
        let config = config(&request.config)?;
        let url = format!("{}/embeddings", config.base_url.trim_end_matches('/'));
        let body = json!({ "model": request.model, "input": request.inputs });
        let response = post(&config, &url, &body)?;
        let answer: Value = parse_json(&response.body)?;
        let usage = usage_of(&answer);
        report(usage.as_ref());
        let Some(data) = answer["data"].as_array() else {
            return Err(ProviderError::Malformed("no `data` in the answer".into()));
        };
        let mut indexed = Vec::with_capacity(data.len());
        for (position, item) in data.iter().enumerate() {
            let index = item["index"].as_u64().unwrap_or(position as u64);
            let vector: Vec<f32> = serde_json::from_value(item["embedding"].clone())
                .map_err(|e| ProviderError::Malformed(format!("embedding {index}: {e}")))?;
            indexed.push((index, vector));
        }
        indexed.sort_by_key(|(index, _)| *index);
        Ok(EmbedResponse {
            vectors: indexed.into_iter().map(|(_, v)| v).collect(),
            usage: usage.unwrap_or(TokenUsage {
                input_tokens: 0,
                output_tokens: 0,
            }),
        })
    }
}

hyyve_sdk::export_provider!(OpenAi);

fn config(text: &str) -> Result<Config, ProviderError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str(text).map_err(|e| ProviderError::InvalidRequest(format!("config: {e}")))
}

fn chat_body(request: &ChatRequest) -> Result<Value, ProviderError> {
    let messages: Vec<Value> = request.messages.iter().map(message_json).collect();
    let mut body = json!({ "model": request.model, "messages": messages });
    if !request.tools.is_empty() {
        let mut tools = Vec::new();
        for tool in &request.tools {
            tools.push(json!({
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": parse_json::<Value>(tool.parameters.as_bytes())
                        .map_err(|_| ProviderError::InvalidRequest(format!("tool `{}`: parameters are not JSON", tool.name)))?,
                },
            }));
        }
        body["tools"] = Value::Array(tools);
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(n) = request.max_tokens {
        body["max_tokens"] = json!(n);
    }
    if let Some(schema) = &request.response_schema {
        let schema: Value = parse_json(schema.as_bytes())
            .map_err(|_| ProviderError::InvalidRequest("response schema is not JSON".into()))?;
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": { "name": "response", "schema": schema, "strict": true },
        });
    }
    if request.stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({ "include_usage": true });
    }
    Ok(body)
}

fn message_json(m: &ChatMessage) -> Value {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut out = json!({ "role": role, "content": m.content });
    if !m.tool_calls.is_empty() {
        out["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({ "id": c.id, "type": "function",
                        "function": { "name": c.name, "arguments": c.arguments } })
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        out["tool_call_id"] = json!(id);
    }
    out
}

fn headers(config: &Config) -> Result<Vec<(&'static str, Vec<u8>)>, ProviderError> {
    let mut headers = vec![("content-type", b"application/json".to_vec())];
    match secrets::get(&config.api_key_secret) {
        Ok(key) => headers.push(("authorization", format!("Bearer {key}").into_bytes())),
        // A local server (Ollama, vLLM) needs no key.
        Err(secrets::SecretError::NotSet(_)) => {}
        Err(secrets::SecretError::NotGranted(m)) => return Err(ProviderError::Unauthorized(m)),
    }
    if let Some(org) = &config.organization {
        headers.push(("openai-organization", org.clone().into_bytes()));
    }
    Ok(headers)
}

fn send(
    config: &Config,
    url: &str,
    body: &Value,
) -> Result<http::StreamingResponse, ProviderError> {
    let headers = headers(config)?;
    let borrowed: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    http::stream("POST", url, &borrowed, body.to_string().as_bytes()).map_err(transport_error)
}

fn post(config: &Config, url: &str, body: &Value) -> Result<http::Response, ProviderError> {
    let response = send(config, url, body)?;
    let (status, headers) = (response.status, response.headers.clone());
    let mut bytes = Vec::new();
    response
        .read(|chunk| {
            bytes.extend_from_slice(chunk);
            true
        })
        .map_err(transport_error)?;
    let response = http::Response {
        status,
        headers,
        body: bytes,
    };
    check_status(&response)?;
    Ok(response)
}

/// A 2xx answer passes; anything else is the provider error it means.
fn check_status(response: &http::Response) -> Result<(), ProviderError> {
    match response.status {
        200..=299 => Ok(()),
        _ => Err(status_error(response)),
    }
}

fn status_error(response: &http::Response) -> ProviderError {
    provider::status_error(response.status, &response.headers, &response.body)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(bytes).map_err(|e| ProviderError::Malformed(format!("not JSON: {e}")))
}

fn usage_of(answer: &Value) -> Option<TokenUsage> {
    let usage = answer.get("usage").filter(|u| u.is_object())?;
    Some(TokenUsage {
        input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
    })
}

/// What the host meters: the tokens the provider said it charged.
fn report(usage: Option<&TokenUsage>) {
    if let Some(u) = usage {
        usage::report("llm.input-tokens", u.input_tokens);
        usage::report("llm.output-tokens", u.output_tokens);
    }
}

fn finish(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

fn tool_calls(calls: &Value) -> Result<Vec<ToolCall>, ProviderError> {
    let Some(calls) = calls.as_array() else {
        return Ok(Vec::new());
    };
    calls
        .iter()
        .map(|c| {
            Ok(ToolCall {
                id: c["id"].as_str().unwrap_or_default().to_owned(),
                name: c["function"]["name"]
                    .as_str()
                    .ok_or_else(|| ProviderError::Malformed("tool call without a name".into()))?
                    .to_owned(),
                arguments: c["function"]["arguments"]
                    .as_str()
                    .unwrap_or("{}")
                    .to_owned(),
            })
        })
        .collect()
}

/// A tool call assembled from streamed pieces.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Reads the SSE answer, passing each content delta on as it arrives.
fn stream_chat(config: &Config, url: &str, body: &Value) -> Result<ChatResponse, ProviderError> {
    let response = send(config, url, body)?;
    if !(200..300).contains(&response.status) {
        let (status, headers) = (response.status, response.headers.clone());
        let mut bytes = Vec::new();
        let _ = response.read(|c| {
            bytes.extend_from_slice(c);
            bytes.len() < 64 << 10
        });
        return Err(status_error(&http::Response {
            status,
            headers,
            body: bytes,
        }));
    }
    let mut parser = sse::Parser::default();
    let (mut content, mut chunks) = (String::new(), 0u64);
    let mut calls: Vec<PartialCall> = Vec::new();
    let (mut reason, mut usage, mut done) = (None, None, false);
    let mut failure: Option<ProviderError> = None;
    let read = response.read(|bytes| {
        for event in parser.push(bytes) {
            if event.data == "[DONE]" {
                done = true;
                return false;
            }
            let chunk: Value = match serde_json::from_str(&event.data) {
                Ok(v) => v,
                Err(e) => {
                    failure = Some(ProviderError::Malformed(format!("stream chunk: {e}")));
                    return false;
                }
            };
            if let Some(message) = chunk["error"]["message"].as_str() {
                failure = Some(ProviderError::Unavailable(format!(
                    "stream error: {message}"
                )));
                return false;
            }
            if let Some(u) = usage_of(&chunk) {
                usage = Some(u);
            }
            let choice = &chunk["choices"][0];
            if let Some(text) = choice["delta"]["content"].as_str()
                && !text.is_empty()
            {
                content.push_str(text);
                chunks += 1;
                progress::delta(text);
            }
            for piece in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let index = piece["index"].as_u64().unwrap_or(0) as usize;
                if index >= 128 {
                    continue;
                }
                if calls.len() <= index {
                    calls.resize_with(index + 1, PartialCall::default);
                }
                let call = &mut calls[index];
                if let Some(id) = piece["id"].as_str() {
                    call.id = id.to_owned();
                }
                if let Some(name) = piece["function"]["name"].as_str() {
                    call.name.push_str(name);
                }
                if let Some(args) = piece["function"]["arguments"].as_str() {
                    call.arguments.push_str(args);
                }
            }
            if let Some(r) = choice["finish_reason"].as_str() {
                reason = Some(r.to_owned());
            }
        }
        true
    });
    if let Err(e) = read
        && failure.is_none()
    {
        failure = Some(ProviderError::Unavailable(format!(
            "the stream was cut after {chunks} chunks ({e})"
        )));
    }
    let usage = match usage {
        Some(u) => {
            report(Some(&u));
            u
        }
        None => {
            // No usage chunk (a cut stream, or a server ignoring `include_usage`): meter
            // what is known, one token per content chunk, and say so.
            log::warn(&format!(
                "stream gave no usage: metering {chunks} output tokens counted from chunks; \
                 input tokens unknown"
            ));
            usage::report("llm.output-tokens", chunks);
            TokenUsage {
                input_tokens: 0,
                output_tokens: chunks,
            }
        }
    };
    if let Some(failure) = failure {
        return Err(match failure {
            ProviderError::Unavailable(m) => ProviderError::Unavailable(format!(
                "{m}; metered {} output tokens",
                usage.output_tokens
            )),
            other => other,
        });
    }
    if !done {
        return Err(ProviderError::Unavailable(format!(
            "the stream ended before [DONE] after {chunks} chunks; metered {} output tokens",
            usage.output_tokens
        )));
    }
    Ok(ChatResponse {
        message: ChatMessage {
            role: Role::Assistant,
            content,
            tool_calls: calls
                .into_iter()
                .filter(|c| !c.name.is_empty())
                .map(|c| ToolCall {
                    id: c.id,
                    name: c.name,
                    arguments: if c.arguments.is_empty() {
                        "{}".into()
                    } else {
                        c.arguments
                    },
                })
                .collect(),
            tool_call_id: None,
        },
        finish_reason: finish(reason.as_deref()),
        usage,
    })
}
