//! A loaded provider plugin (an AI model adapter): validated, linked, described once,
//! and called in a fresh instance per chat or embeddings request.

use serde::Serialize;
use wasmtime::Store;

use crate::bindings::provider_export::{self as wit, ProviderError};
use crate::bindings::{ProviderPluginPre, llm};
use crate::engine::Runtime;
use crate::error::{InvocationError, LoadError};
use crate::inspect::PluginWorld;
use crate::invoke::{Call, Failure, Fresh, StoreSetup};
use crate::plugin::{Digest, parse_schema};
use crate::schema::Schema;
use crate::state::HostState;

/// One model a provider serves, as it described it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// Provider-side identifier.
    pub id: String,
    /// Human title.
    pub title: String,
    /// `chat`, `embedding`, `image`, `speech` or `transcription`.
    pub kind: &'static str,
    /// Prompt plus completion tokens, when known.
    pub context_window: Option<u32>,
    /// Completion tokens, when known.
    pub max_output_tokens: Option<u32>,
    /// Whether it accepts tool definitions.
    pub supports_tools: bool,
}

/// A provider's self-description, with its config schema parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    /// Identifier, e.g. `openai`.
    pub name: String,
    /// Human title.
    pub title: String,
    /// What the provider is.
    pub description: String,
    /// JSON Schema of its configuration (base URL, ...); keys are secrets, never config.
    pub config_schema: Schema,
    /// Models it lists. A provider of an open-ended catalogue (OpenRouter, Ollama) may
    /// list only examples: the alias names the model it calls.
    pub models: Vec<ModelInfo>,
}

/// A provider component ready to instantiate: compiled, linked, described.
pub struct ProviderPlugin {
    pub(crate) digest: Digest,
    pub(crate) pre: ProviderPluginPre<HostState>,
    pub(crate) info: ProviderInfo,
}

impl ProviderPlugin {
    /// The component's sha256.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// What it described.
    pub fn info(&self) -> &ProviderInfo {
        &self.info
    }
}

impl Runtime {
    /// Validates `bytes` as a provider-plugin component, links it, and asks it to
    /// describe itself (in a fresh, limited instance like any call).
    pub async fn load_provider_plugin(&self, bytes: &[u8]) -> Result<ProviderPlugin, LoadError> {
        let (digest, component) = self.compile(bytes)?;
        self.provider_plugin(digest, &component).await
    }

    /// A compiled component as a provider plugin: linked and described.
    pub(crate) async fn provider_plugin(
        &self,
        digest: Digest,
        component: &wasmtime::component::Component,
    ) -> Result<ProviderPlugin, LoadError> {
        let instance_pre = self.link(component, PluginWorld::Provider)?;
        let pre = ProviderPluginPre::new(instance_pre).map_err(|e| LoadError::WrongWorld {
            expected: "provider-plugin",
            found: format!("{e:#}"),
        })?;
        let raw = self
            .describe_fresh(DescribeProvider(&pre))
            .await
            .map_err(describe_failed)?;
        Ok(ProviderPlugin {
            digest,
            pre,
            info: parse_info(raw)?,
        })
    }

    /// One chat call in a fresh instance of `plugin` under `setup`.
    pub(crate) async fn provider_chat(
        &self,
        plugin: &ProviderPlugin,
        setup: StoreSetup,
        request: wit::ChatRequest,
    ) -> Fresh<Result<llm::ChatResponse, ProviderError>> {
        self.run_fresh(
            setup,
            ProviderChat {
                pre: &plugin.pre,
                request,
            },
        )
        .await
    }

    /// One embeddings call in a fresh instance of `plugin` under `setup`.
    pub(crate) async fn provider_embed(
        &self,
        plugin: &ProviderPlugin,
        setup: StoreSetup,
        request: wit::EmbedRequest,
    ) -> Fresh<Result<llm::EmbedResponse, ProviderError>> {
        self.run_fresh(
            setup,
            ProviderEmbed {
                pre: &plugin.pre,
                request,
            },
        )
        .await
    }
}

/// `describe` of a provider component.
struct DescribeProvider<'a>(&'a ProviderPluginPre<HostState>);

impl Call for DescribeProvider<'_> {
    type Output = wit::ProviderInfo;

    async fn call(self, store: &mut Store<HostState>) -> Result<Self::Output, Failure> {
        let instance = self
            .0
            .instantiate_async(&mut *store)
            .await
            .map_err(Failure::Instantiate)?;
        instance
            .hyyve_plugin_provider()
            .call_describe(store)
            .await
            .map_err(Failure::Call)
    }
}

struct ProviderChat<'a> {
    pre: &'a ProviderPluginPre<HostState>,
    request: wit::ChatRequest,
}

impl Call for ProviderChat<'_> {
    type Output = Result<llm::ChatResponse, ProviderError>;

    async fn call(self, store: &mut Store<HostState>) -> Result<Self::Output, Failure> {
        let instance = self
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(Failure::Instantiate)?;
        instance
            .hyyve_plugin_provider()
            .call_chat(store, &self.request)
            .await
            .map_err(Failure::Call)
    }
}

struct ProviderEmbed<'a> {
    pre: &'a ProviderPluginPre<HostState>,
    request: wit::EmbedRequest,
}

impl Call for ProviderEmbed<'_> {
    type Output = Result<llm::EmbedResponse, ProviderError>;

    async fn call(self, store: &mut Store<HostState>) -> Result<Self::Output, Failure> {
        let instance = self
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(Failure::Instantiate)?;
        instance
            .hyyve_plugin_provider()
            .call_embed(store, &self.request)
            .await
            .map_err(Failure::Call)
    }
}

/// A failed `describe` call as a load error.
pub(crate) fn describe_failed(e: InvocationError) -> LoadError {
    match e {
        InvocationError::Trap(m) => LoadError::Describe(format!("trapped: {m}")),
        other => LoadError::Describe(other.to_string()),
    }
}

/// Models one provider may list; more is not a description but a flood.
const MAX_MODELS: usize = 1_000;

fn parse_info(raw: wit::ProviderInfo) -> Result<ProviderInfo, LoadError> {
    if raw.name.is_empty() {
        return Err(LoadError::Describe("provider name is empty".into()));
    }
    if raw.models.len() > MAX_MODELS {
        return Err(LoadError::Describe(format!(
            "{} models listed; at most {MAX_MODELS}",
            raw.models.len()
        )));
    }
    let models = raw
        .models
        .into_iter()
        .map(|m| ModelInfo {
            kind: match m.kind {
                wit::ModelKind::Chat => "chat",
                wit::ModelKind::Embedding => "embedding",
                wit::ModelKind::Image => "image",
                wit::ModelKind::Speech => "speech",
                wit::ModelKind::Transcription => "transcription",
            },
            id: m.id,
            title: m.title,
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            supports_tools: m.supports_tools,
        })
        .collect();
    Ok(ProviderInfo {
        config_schema: parse_schema(&raw.config_schema, "provider config")?,
        name: raw.name,
        title: raw.title,
        description: raw.description,
        models,
    })
}
