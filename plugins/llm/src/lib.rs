//! AI nodes: `llm-chat` asks a model alias for an answer to a templated prompt, with
//! history from an input or from conversation memory in KV, optionally structured by a
//! JSON Schema the host validates; `embed` turns texts into vectors.

use hyyve_sdk::models::{
    self, ChatCall, ChatMessage, FinishReason, ModelError, Role, ToolDefinition,
};
use hyyve_sdk::{Context, Deserialize, Error, JsonSchema, Node, Serialize, Value, kv};

/// Messages kept in a conversation's memory at most (older ones are dropped).
const MAX_MEMORY_MESSAGES: usize = 200;

struct LlmChat;

/// Configuration of `llm-chat`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ChatConfig {
    /// The workspace's model alias to call.
    #[serde(default = "default_chat_alias")]
    alias: String,
    /// System instructions (a template like `prompt`).
    #[serde(default)]
    system: Option<String>,
    /// The user prompt: a Jinja template over the `data` input, e.g. `Answer: {{ question }}`.
    prompt: String,
    /// Sampling temperature.
    #[serde(default)]
    temperature: Option<f32>,
    /// Completion token limit.
    #[serde(default)]
    max_tokens: Option<u32>,
    /// A JSON Schema the answer must satisfy; the parsed answer is emitted on `json`.
    #[serde(default)]
    output_schema: Option<Value>,
    /// Tools the model may call; calls are emitted on `tool_calls`.
    #[serde(default)]
    tools: Vec<Tool>,
    /// Keep the conversation in KV under the `conversation` input, and send it as history.
    #[serde(default)]
    memory: bool,
    /// Messages of memory sent as history at most.
    #[serde(default = "default_memory_window")]
    memory_window: usize,
    /// Stream tokens to the run's event stream as they arrive.
    #[serde(default = "default_true")]
    stream: bool,
}

fn default_chat_alias() -> String {
    "default-chat".into()
}

fn default_memory_window() -> usize {
    20
}

fn default_true() -> bool {
    true
}

/// A tool the model may call.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Tool {
    /// Name the model calls it by.
    name: String,
    /// When to use it.
    #[serde(default)]
    description: String,
    /// JSON Schema of its arguments.
    parameters: Value,
}

/// One message of a conversation history.
#[derive(Deserialize, Serialize, JsonSchema, Clone)]
struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    role: String,
    /// Text.
    content: String,
}

/// Inputs of `llm-chat`.
#[derive(Deserialize, JsonSchema)]
struct ChatInputs {
    /// Variables of the prompt and system templates.
    #[serde(default)]
    data: serde_json::Map<String, Value>,
    /// Earlier messages, oldest first (used instead of memory when given).
    #[serde(default)]
    history: Option<Vec<Message>>,
    /// Conversation id for memory (e.g. a chat id from a channel).
    #[serde(default)]
    conversation: Option<String>,
}

/// Tokens of the call.
#[derive(Serialize, JsonSchema)]
struct Usage {
    /// Prompt tokens.
    input_tokens: u64,
    /// Completion tokens.
    output_tokens: u64,
}

/// A tool call the model asked for.
#[derive(Serialize, JsonSchema)]
struct CallOut {
    /// Call id.
    id: String,
    /// Tool name.
    name: String,
    /// Arguments.
    arguments: Value,
}

/// Outputs of `llm-chat`.
#[derive(Serialize, JsonSchema)]
struct ChatOutputs {
    /// The answer's text.
    text: String,
    /// The answer parsed, when an output schema was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    json: Option<Value>,
    /// Tool calls the model asked for.
    tool_calls: Vec<CallOut>,
    /// `stop`, `length`, `tool-calls`, `content-filter` or `other`.
    finish_reason: String,
    /// Tokens consumed.
    usage: Usage,
}

impl Node for LlmChat {
    const NAME: &'static str = "llm-chat";
    const TITLE: &'static str = "LLM chat";
    const DESCRIPTION: &'static str =
        "Asks a model alias for an answer to a templated prompt, with history or memory.";
    const CATEGORY: &'static str = "ai";
    type Config = ChatConfig;
    type Inputs = ChatInputs;
    type Outputs = ChatOutputs;

    fn run(config: ChatConfig, inputs: ChatInputs, _: &Context) -> Result<ChatOutputs, Error> {
        let data = Value::Object(inputs.data);
        let prompt = render(&config.prompt, &data)?;
        let memory_key = match (config.memory, &inputs.conversation) {
            (true, Some(id)) => Some(format!("conversation/{id}")),
            (true, None) => {
                return Err(Error::invalid_input(
                    "memory is on: the `conversation` input names the conversation",
                ));
            }
            _ => None,
        };
        let history = match (&inputs.history, &memory_key) {
            (Some(history), _) => history.clone(),
            (None, Some(key)) => recall(key)?,
            (None, None) => Vec::new(),
        };
        let mut messages = Vec::new();
        if let Some(system) = &config.system {
            messages.push(models::message(Role::System, render(system, &data)?));
        }
        let window = history.len().saturating_sub(config.memory_window);
        for m in &history[window..] {
            messages.push(chat_message(m)?);
        }
        messages.push(models::message(Role::User, prompt.clone()));
        let call = ChatCall {
            alias: config.alias.clone(),
            messages,
            tools: config
                .tools
                .iter()
                .map(|t| ToolDefinition {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: t.parameters.to_string(),
                })
                .collect(),
            temperature: config.temperature,
            max_tokens: config.max_tokens,
            response_schema: config.output_schema.as_ref().map(Value::to_string),
            stream: config.stream,
        };
        let answer = models::chat(&call).map_err(model_error)?;
        let text = answer.message.content.clone();
        if let Some(key) = &memory_key {
            let mut kept = history;
            kept.push(Message {
                role: "user".into(),
                content: prompt,
            });
            kept.push(Message {
                role: "assistant".into(),
                content: text.clone(),
            });
            remember(key, kept)?;
        }
        let json = match &config.output_schema {
            // The host checked the answer against the schema already.
            Some(_) => Some(serde_json::from_str(&text).map_err(Error::failed)?),
            None => None,
        };
        Ok(ChatOutputs {
            json,
            tool_calls: answer
                .message
                .tool_calls
                .into_iter()
                .map(|c| CallOut {
                    arguments: serde_json::from_str(&c.arguments).unwrap_or(Value::Null),
                    id: c.id,
                    name: c.name,
                })
                .collect(),
            finish_reason: finish_reason(answer.finish_reason).into(),
            usage: Usage {
                input_tokens: answer.usage.input_tokens,
                output_tokens: answer.usage.output_tokens,
            },
            text,
        })
    }
}

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool-calls",
        FinishReason::ContentFilter => "content-filter",
        FinishReason::Other => "other",
    }
}

fn render(template: &str, data: &Value) -> Result<String, Error> {
    let env = minijinja::Environment::new();
    env.render_str(template, minijinja::value::Serde(data))
        .map_err(|e| Error::invalid_input(format!("template: {e}")))
}

fn chat_message(m: &Message) -> Result<ChatMessage, Error> {
    let role = match m.role.as_str() {
        "system" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => return Err(Error::invalid_input(format!("history role `{other}`"))),
    };
    Ok(models::message(role, m.content.clone()))
}

fn recall(key: &str) -> Result<Vec<Message>, Error> {
    match kv::get(key) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(Error::failed),
        Ok(None) => Ok(Vec::new()),
        Err(e) => Err(Error::failed(format!("conversation memory: {e:?}"))),
    }
}

fn remember(key: &str, mut messages: Vec<Message>) -> Result<(), Error> {
    let drop = messages.len().saturating_sub(MAX_MEMORY_MESSAGES);
    messages.drain(..drop);
    let bytes = serde_json::to_vec(&messages).map_err(Error::failed)?;
    kv::set(key, &bytes).map_err(|e| Error::failed(format!("conversation memory: {e:?}")))
}

/// Model errors as node errors: an outage is retryable, a refusal is the input's fault.
fn model_error(e: ModelError) -> Error {
    match e {
        ModelError::Unavailable(m) => Error::Retryable(m),
        ModelError::Rejected(m) | ModelError::UnknownAlias(m) => Error::InvalidInput(m),
        ModelError::NotGranted(m) | ModelError::BudgetExceeded(m) | ModelError::Failed(m) => {
            Error::Failed(m)
        }
    }
}

struct Embed;

/// Configuration of `embed`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EmbedConfig {
    /// The workspace's embedding model alias.
    #[serde(default = "default_embed_alias")]
    alias: String,
}

fn default_embed_alias() -> String {
    "default-embedding".into()
}

/// Inputs of `embed`.
#[derive(Deserialize, JsonSchema)]
struct EmbedInputs {
    /// Texts to embed.
    texts: Vec<String>,
}

/// Outputs of `embed`.
#[derive(Serialize, JsonSchema)]
struct EmbedOutputs {
    /// One vector per text, in order.
    vectors: Vec<Vec<f32>>,
    /// Tokens consumed.
    usage: Usage,
}

impl Node for Embed {
    const NAME: &'static str = "embed";
    const TITLE: &'static str = "Embed";
    const DESCRIPTION: &'static str = "Turns texts into embedding vectors through a model alias.";
    const CATEGORY: &'static str = "ai";
    type Config = EmbedConfig;
    type Inputs = EmbedInputs;
    type Outputs = EmbedOutputs;

    fn run(config: EmbedConfig, inputs: EmbedInputs, _: &Context) -> Result<EmbedOutputs, Error> {
        let answer = models::embed(&config.alias, &inputs.texts).map_err(model_error)?;
        Ok(EmbedOutputs {
            vectors: answer.vectors,
            usage: Usage {
                input_tokens: answer.usage.input_tokens,
                output_tokens: answer.usage.output_tokens,
            },
        })
    }
}

hyyve_sdk::export_nodes!(LlmChat, Embed);
