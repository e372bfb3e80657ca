//! A loaded channel plugin (a messaging adapter): validated, linked, described once.
//! Webhook verification, parsing and sending run through it in fresh instances.

use serde::Serialize;
use wasmtime::Store;

use crate::bindings::ChannelPluginPre;
use crate::bindings::channel_export as wit;
use crate::engine::Runtime;
use crate::error::LoadError;
use crate::inspect::PluginWorld;
use crate::invoke::{Call, Failure};
use crate::plugin::{Digest, parse_schema};
use crate::provider::describe_failed;
use crate::schema::Schema;
use crate::state::HostState;

/// A channel's self-description, with its config schema parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelInfo {
    /// Identifier, e.g. `whatsapp`.
    pub name: String,
    /// Human title.
    pub title: String,
    /// What the channel is.
    pub description: String,
    /// JSON Schema of its configuration; tokens are secrets, never config.
    pub config_schema: Schema,
}

/// A channel component ready to instantiate: compiled, linked, described.
pub struct ChannelPlugin {
    pub(crate) digest: Digest,
    #[allow(dead_code)] // Called by the webhook and send paths of the channels work.
    pub(crate) pre: ChannelPluginPre<HostState>,
    pub(crate) info: ChannelInfo,
}

impl ChannelPlugin {
    /// The component's sha256.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// What it described.
    pub fn info(&self) -> &ChannelInfo {
        &self.info
    }
}

impl Runtime {
    /// Validates `bytes` as a channel-plugin component, links it, and asks it to
    /// describe itself.
    pub async fn load_channel_plugin(&self, bytes: &[u8]) -> Result<ChannelPlugin, LoadError> {
        let (digest, component) = self.compile(bytes)?;
        self.channel_plugin(digest, &component).await
    }

    /// A compiled component as a channel plugin: linked and described.
    pub(crate) async fn channel_plugin(
        &self,
        digest: Digest,
        component: &wasmtime::component::Component,
    ) -> Result<ChannelPlugin, LoadError> {
        let instance_pre = self.link(component, PluginWorld::Channel)?;
        let pre = ChannelPluginPre::new(instance_pre).map_err(|e| LoadError::WrongWorld {
            expected: "channel-plugin",
            found: format!("{e:#}"),
        })?;
        let raw = self
            .describe_fresh(DescribeChannel(&pre))
            .await
            .map_err(describe_failed)?;
        if raw.name.is_empty() {
            return Err(LoadError::Describe("channel name is empty".into()));
        }
        let info = ChannelInfo {
            config_schema: parse_schema(&raw.config_schema, "channel config")?,
            name: raw.name,
            title: raw.title,
            description: raw.description,
        };
        Ok(ChannelPlugin { digest, pre, info })
    }
}

/// `describe` of a channel component.
struct DescribeChannel<'a>(&'a ChannelPluginPre<HostState>);

impl Call for DescribeChannel<'_> {
    type Output = wit::ChannelInfo;

    async fn call(self, store: &mut Store<HostState>) -> Result<Self::Output, Failure> {
        let instance = self
            .0
            .instantiate_async(&mut *store)
            .await
            .map_err(Failure::Instantiate)?;
        instance
            .hyyve_plugin_channel()
            .call_describe(store)
            .await
            .map_err(Failure::Call)
    }
}
