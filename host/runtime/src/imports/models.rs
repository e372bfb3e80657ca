//! `models`: a node asks for a chat completion or embeddings by alias; the host runs the
//! alias's provider in its own fresh instance, under the provider install's grant, so
//! the provider's API key (its secret) never reaches the node.
//!
//! Policy, in order: the alias must be in the node's grant ([`DenialKind::ModelDenied`]
//! otherwise); the workspace must bind it ([`ModelRoutes::targets`]); the workspace's
//! token budget must not be spent ([`ModelRoutes::admit`]). Then the alias's targets are
//! tried in order: a retryable failure (rate limit, outage, timeout) moves on to the
//! next; when all failed that way and one asked to retry after at most
//! [`MAX_RETRY_AFTER`] (and the node's deadline leaves time), the host waits that long
//! and tries the list once more. Every provider invocation is metered on its own record
//! ([`ModelCall`]), billed to the provider install and attributed to the calling node.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyyve_policy::Grant;
use serde_json::Value;
use wasmtime::component::{HasData, Linker};

use crate::bindings::llm::{ChatResponse, EmbedResponse};
use crate::bindings::models::{self, ChatCall, Host, ModelError};
use crate::bindings::provider_export::{ChatRequest, EmbedRequest, ProviderError};
use crate::denial::DenialKind;
use crate::engine::Runtime;
use crate::error::InvocationError;
use crate::invoke::{Fresh, StoreSetup, blame_denial};
use crate::limits::Limits;
use crate::metering::{MeteringRecord, ModelCall};
use crate::provider::ProviderPlugin;
use crate::schema::Schema;
use crate::state::{HostState, InstallScope, Invocation};
use crate::{InvocationIds, ProgressSink};

/// The longest `retry-after` the host waits for before trying an alias's targets again.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Provider invocations one node invocation may make, fallbacks and retries included.
pub const MAX_MODEL_CALLS: u32 = 64;

/// Bytes of a provider's error message kept (the rest is cut): it reaches the node, the
/// run's report and the database.
pub const MAX_PROVIDER_MESSAGE: usize = 4096;

/// Longest alias a node may name (aliases are `[a-z0-9-]`, at most 64 bytes).
const MAX_ALIAS: usize = 64;

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} more bytes]", &text[..end], text.len() - end)
}

/// A future the routes return.
pub type RouteFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One target of an alias: a provider install, the model asked of it, its config.
#[derive(Clone)]
pub struct ModelTarget {
    /// The provider install (`hyyve:openai`): whose grant, secrets and bill.
    pub install: String,
    /// The loaded provider component.
    pub provider: Arc<ProviderPlugin>,
    /// The provider install's grant (its HTTP hosts, its API key secret).
    pub grant: Arc<Grant>,
    /// The model id passed to the provider.
    pub model: String,
    /// The provider configuration (base URL, ...), valid against its config schema.
    pub config: Value,
}

/// Why an alias has no targets to try.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The workspace binds no such alias.
    #[error("the workspace binds no model alias `{0}`")]
    UnknownAlias(String),
    /// The alias is bound but its provider could not be loaded (not installed, store down).
    #[error("model alias `{alias}`: {message}")]
    Unavailable {
        /// The alias.
        alias: String,
        /// What failed.
        message: String,
    },
}

/// A workspace's model aliases and budget, as the platform keeps them.
pub trait ModelRoutes: Send + Sync {
    /// The targets `alias` is bound to in `workspace`, in the order to try them.
    fn targets<'a>(
        &'a self,
        workspace: &'a str,
        alias: &'a str,
    ) -> RouteFuture<'a, Result<Vec<ModelTarget>, RouteError>>;

    /// Whether `workspace` may spend tokens now: `Err` says why not (budget spent).
    fn admit<'a>(&'a self, workspace: &'a str) -> RouteFuture<'a, Result<(), String>>;
}

/// What a node's store holds to make model calls.
#[derive(Clone)]
pub(crate) struct ModelAccess {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) routes: Arc<dyn ModelRoutes>,
}

/// The models capability's state in one store.
pub(crate) struct ModelsState {
    pub(crate) access: Option<ModelAccess>,
    /// When the node's invocation must be done: provider calls end before it.
    pub(crate) deadline: Instant,
    pub(crate) progress: Option<Arc<dyn ProgressSink>>,
}

/// The models capability's view of an invocation.
pub(crate) struct Models<'a> {
    pub(crate) invocation: &'a mut Invocation,
    pub(crate) state: &'a ModelsState,
}

/// Links `hyyve:plugin/models` through [`Models`].
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    models::add_to_linker::<HostState, ModelsCapability>(linker, |s| Models {
        invocation: &mut s.invocation,
        state: &s.models,
    })
}

struct ModelsCapability;

impl HasData for ModelsCapability {
    type Data<'a> = Models<'a>;
}

/// How one provider invocation ended, for the fallback loop.
enum Attempt<T> {
    Done(T),
    /// Try the next target; wait this long before a second pass, if the provider said.
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    Stop(ModelError),
}

impl Host for Models<'_> {
    async fn chat(&mut self, call: ChatCall) -> wasmtime::Result<Result<ChatResponse, ModelError>> {
        let schema = match call.response_schema.as_deref().map(parse_response_schema) {
            Some(Err(e)) => return Ok(Err(e)),
            Some(Ok(schema)) => Some(schema),
            None => None,
        };
        let stream = call.stream;
        let answer = self
            .route(&call.alias.clone(), stream, |target| {
                Request::Chat(ChatRequest {
                    model: target.model.clone(),
                    messages: call.messages.clone(),
                    tools: call.tools.clone(),
                    temperature: call.temperature,
                    max_tokens: call.max_tokens,
                    response_schema: call.response_schema.clone(),
                    stream,
                    config: target.config.to_string(),
                })
            })
            .await;
        Ok(match answer {
            Ok(Answer::Chat(response)) => match &schema {
                Some(schema) => check_structured(response, schema),
                None => Ok(response),
            },
            Ok(Answer::Embed(_)) => Err(ModelError::Failed("provider answered embeddings".into())),
            Err(e) => Err(e),
        })
    }

    async fn embed(
        &mut self,
        alias: String,
        inputs: Vec<String>,
    ) -> wasmtime::Result<Result<EmbedResponse, ModelError>> {
        let answer = self
            .route(&alias, false, |target| {
                Request::Embed(EmbedRequest {
                    model: target.model.clone(),
                    inputs: inputs.clone(),
                    config: target.config.to_string(),
                })
            })
            .await;
        Ok(match answer {
            Ok(Answer::Embed(response)) if response.vectors.len() == inputs.len() => Ok(response),
            Ok(Answer::Embed(response)) => Err(ModelError::Failed(format!(
                "provider answered {} vectors for {} inputs",
                response.vectors.len(),
                inputs.len()
            ))),
            Ok(Answer::Chat(_)) => Err(ModelError::Failed("provider answered a chat".into())),
            Err(e) => Err(e),
        })
    }
}

enum Request {
    Chat(ChatRequest),
    Embed(EmbedRequest),
}

enum Answer {
    Chat(ChatResponse),
    Embed(EmbedResponse),
}

impl Models<'_> {
    /// Checks the grant, resolves the alias, admits the budget, then tries the targets.
    async fn route(
        &mut self,
        alias: &str,
        stream: bool,
        request: impl Fn(&ModelTarget) -> Request,
    ) -> Result<Answer, ModelError> {
        self.invocation.host_call();
        if alias.len() > MAX_ALIAS {
            return Err(self.deny(format!(
                "model alias `{}` is longer than {MAX_ALIAS} bytes",
                clip(alias, MAX_ALIAS)
            )));
        }
        let Some(access) = self.state.access.clone() else {
            return Err(self.deny(format!(
                "model alias `{alias}`: model calls are not available to this plugin"
            )));
        };
        let granted = &self.invocation.grant.models;
        if !(granted.contains(alias) || granted.contains(hyyve_policy::ANY_MODEL_ALIAS)) {
            return Err(self.deny(format!("model alias `{alias}` is not granted")));
        }
        let workspace = self.invocation.scope.workspace.clone();
        let targets = match access.routes.targets(&workspace, alias).await {
            Ok(targets) if targets.is_empty() => {
                return Err(ModelError::UnknownAlias(format!(
                    "model alias `{alias}` has no targets"
                )));
            }
            Ok(targets) => targets,
            Err(e @ RouteError::UnknownAlias(_)) => {
                return Err(ModelError::UnknownAlias(e.to_string()));
            }
            Err(e @ RouteError::Unavailable { .. }) => {
                return Err(ModelError::Unavailable(e.to_string()));
            }
        };
        if let Err(why) = access.routes.admit(&workspace).await {
            return Err(ModelError::BudgetExceeded(why));
        }
        let progress = if stream {
            self.state.progress.clone()
        } else {
            None
        };
        let mut failures = Vec::new();
        for pass in 0..2 {
            let mut wait: Option<Duration> = None;
            for target in &targets {
                let attempt = self
                    .attempt(&access.runtime, alias, target, request(target), &progress)
                    .await;
                match attempt {
                    Attempt::Done(answer) => return Ok(answer),
                    Attempt::Stop(error) => return Err(error),
                    Attempt::Retry {
                        message,
                        retry_after,
                    } => {
                        failures.push(format!("{} ({}): {message}", target.install, target.model));
                        if let Some(after) = retry_after {
                            wait = Some(wait.map_or(after, |w| w.min(after)));
                        }
                    }
                }
            }
            let remaining = self
                .state
                .deadline
                .saturating_duration_since(Instant::now());
            match wait {
                Some(after) if pass == 0 && after <= MAX_RETRY_AFTER && after < remaining => {
                    tokio::time::sleep(after).await;
                }
                _ => break,
            }
        }
        Err(ModelError::Unavailable(format!(
            "every target of `{alias}` failed: {}",
            failures.join("; ")
        )))
    }

    fn deny(&mut self, detail: String) -> ModelError {
        self.invocation
            .denials
            .record(DenialKind::ModelDenied, detail.clone());
        ModelError::NotGranted(detail)
    }

    /// One provider invocation, metered on its own record.
    async fn attempt(
        &mut self,
        runtime: &Runtime,
        alias: &str,
        target: &ModelTarget,
        request: Request,
        progress: &Option<Arc<dyn ProgressSink>>,
    ) -> Attempt<Answer> {
        let seq = self.invocation.meter.model_calls.len() as u32 + 1;
        if seq > MAX_MODEL_CALLS {
            return Attempt::Stop(ModelError::Failed(format!(
                "more than {MAX_MODEL_CALLS} provider calls in one invocation"
            )));
        }
        let remaining = self
            .state
            .deadline
            .saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Attempt::Stop(ModelError::Unavailable(
                "the node's deadline passed before the provider could be called".into(),
            ));
        }
        let mut limits = Limits::granted(&target.grant.limits);
        limits.timeout = limits.timeout.min(remaining);
        let ids = &self.invocation.ids;
        let mut setup = StoreSetup::new(
            limits,
            InvocationIds {
                run_id: ids.run_id.clone(),
                node_id: format!("{}/models/{seq}", ids.node_id),
                attempt: ids.attempt,
            },
            InstallScope {
                workspace: self.invocation.scope.workspace.clone(),
                install: target.install.clone(),
            },
            target.grant.clone(),
        );
        setup.progress = progress.clone();
        let (outcome, mut metering) = match request {
            Request::Chat(request) => {
                let Fresh { result, metering } = runtime
                    .provider_chat(&target.provider, setup, request)
                    .await;
                (outcome_of(result, &limits, Answer::Chat), metering)
            }
            Request::Embed(request) => {
                let Fresh { result, metering } = runtime
                    .provider_embed(&target.provider, setup, request)
                    .await;
                (outcome_of(result, &limits, Answer::Embed), metering)
            }
        };
        metering.failure = match &outcome {
            Ok(_) => None,
            Err(failure) => Some(failure.kind().to_owned()),
        };
        let attempt = match outcome {
            Ok(answer) => Attempt::Done(answer),
            Err(failure) => failure.attempt(&target.install, &metering),
        };
        self.invocation.meter.model_calls.push(ModelCall {
            seq,
            alias: alias.to_owned(),
            provider: target.install.clone(),
            model: target.model.clone(),
            metering,
        });
        attempt
    }
}

/// Why a provider invocation produced no answer.
enum ProviderFailure {
    /// The invocation itself failed (trap, limit, denial, deadline).
    Invocation(InvocationError),
    /// The provider answered with an error.
    Provider(ProviderError),
    /// The answer is larger than the provider's output limit.
    TooLarge { size: u64, limit: u64 },
}

impl ProviderFailure {
    /// The record's failure kind.
    fn kind(&self) -> &'static str {
        match self {
            Self::Invocation(e) => e.kind(),
            Self::Provider(ProviderError::InvalidRequest(_)) => "provider_invalid_request",
            Self::Provider(ProviderError::Unauthorized(_)) => "provider_unauthorized",
            Self::Provider(ProviderError::RateLimited(_)) => "provider_rate_limited",
            Self::Provider(ProviderError::Unavailable(_)) => "provider_unavailable",
            Self::Provider(ProviderError::Malformed(_)) => "provider_malformed",
            Self::Provider(ProviderError::Unsupported(_)) => "provider_unsupported",
            Self::TooLarge { .. } => "output_too_large",
        }
    }

    fn attempt<T>(self, install: &str, metering: &MeteringRecord) -> Attempt<T> {
        let named = |m: String| format!("provider `{install}`: {}", clip(&m, MAX_PROVIDER_MESSAGE));
        match self {
            Self::Invocation(e @ InvocationError::DeadlineExceeded { .. }) => Attempt::Retry {
                message: e.to_string(),
                retry_after: None,
            },
            Self::Invocation(e) => Attempt::Stop(ModelError::Failed(named(
                blame_denial(e, metering).to_string(),
            ))),
            Self::Provider(ProviderError::RateLimited(limit)) => Attempt::Retry {
                message: format!(
                    "rate limited: {}",
                    clip(&limit.message, MAX_PROVIDER_MESSAGE)
                ),
                retry_after: limit.retry_after_ms.map(Duration::from_millis),
            },
            Self::Provider(ProviderError::Unavailable(m)) => Attempt::Retry {
                message: clip(&m, MAX_PROVIDER_MESSAGE),
                retry_after: None,
            },
            Self::Provider(
                ProviderError::InvalidRequest(m)
                | ProviderError::Unauthorized(m)
                | ProviderError::Unsupported(m),
            ) => Attempt::Stop(ModelError::Rejected(named(m))),
            Self::Provider(ProviderError::Malformed(m)) => {
                Attempt::Stop(ModelError::Failed(named(format!("malformed answer: {m}"))))
            }
            Self::TooLarge { size, limit } => Attempt::Stop(ModelError::Failed(named(format!(
                "answer of {size} bytes; at most {limit}"
            )))),
        }
    }
}

/// Bytes of an answer, for the output limit: what the node will be handed.
trait AnswerSize {
    fn size(&self) -> u64;
}

impl AnswerSize for ChatResponse {
    fn size(&self) -> u64 {
        let calls: usize = self
            .message
            .tool_calls
            .iter()
            .map(|c| c.id.len() + c.name.len() + c.arguments.len())
            .sum();
        (self.message.content.len() + calls) as u64
    }
}

impl AnswerSize for EmbedResponse {
    fn size(&self) -> u64 {
        self.vectors.iter().map(|v| v.len() as u64 * 4).sum()
    }
}

fn outcome_of<T: AnswerSize>(
    result: Result<Result<T, ProviderError>, InvocationError>,
    limits: &Limits,
    wrap: fn(T) -> Answer,
) -> Result<Answer, ProviderFailure> {
    match result {
        Err(e) => Err(ProviderFailure::Invocation(e)),
        Ok(Err(e)) => Err(ProviderFailure::Provider(e)),
        Ok(Ok(answer)) if answer.size() > limits.output_bytes => Err(ProviderFailure::TooLarge {
            size: answer.size(),
            limit: limits.output_bytes,
        }),
        Ok(Ok(answer)) => Ok(wrap(answer)),
    }
}

fn parse_response_schema(text: &str) -> Result<Schema, ModelError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ModelError::Rejected(format!("response schema is not JSON: {e}")))?;
    Schema::compile(value).map_err(|e| ModelError::Rejected(format!("response schema: {e}")))
}

/// A structured answer must be JSON satisfying the schema the node asked for.
fn check_structured(response: ChatResponse, schema: &Schema) -> Result<ChatResponse, ModelError> {
    let value: Value = serde_json::from_str(&response.message.content).map_err(|e| {
        ModelError::Failed(format!(
            "the answer is not the JSON the schema asks for: {e}"
        ))
    })?;
    match schema.violation(&value) {
        Some(v) => Err(ModelError::Failed(format!(
            "the answer does not satisfy the response schema at `{}`: {}",
            v.field, v.message
        ))),
        None => Ok(response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_messages_are_clipped_on_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        let long = "é".repeat(10);
        let clipped = clip(&long, 5);
        assert!(clipped.starts_with("éé…"), "{clipped}");
        assert!(clipped.ends_with("[16 more bytes]"), "{clipped}");
    }

    #[tokio::test]
    async fn a_node_without_routes_or_grant_is_denied_without_calling_anything() {
        let mut invocation = Invocation::for_test(Grant::default());
        let state = ModelsState {
            access: None,
            deadline: Instant::now() + Duration::from_secs(1),
            progress: None,
        };
        let mut models = Models {
            invocation: &mut invocation,
            state: &state,
        };
        let refused = models
            .embed("default".into(), vec!["x".into()])
            .await
            .unwrap();
        assert!(
            matches!(refused, Err(ModelError::NotGranted(_))),
            "{refused:?}"
        );
        let long = "a".repeat(10_000);
        let refused = models.embed(long, Vec::new()).await.unwrap();
        let Err(ModelError::NotGranted(message)) = refused else {
            panic!("a long alias was not refused")
        };
        assert!(
            message.len() < 200,
            "the denial does not echo 10 KB: {message}"
        );
        assert_eq!(
            invocation.denied(),
            [DenialKind::ModelDenied, DenialKind::ModelDenied]
        );
    }
}
