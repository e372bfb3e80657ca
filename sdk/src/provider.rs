//! Write provider plugins (AI model adapters): implement [`Provider`], then call
//! [`export_provider!`](crate::export_provider) once.
//!
//! A provider reads its API key through [`crate::secrets`], calls its API through
//! [`crate::http`] (streaming with [`crate::http::stream`]), passes streamed deltas on
//! through [`crate::progress`], and reports the tokens it was charged through
//! [`crate::usage`] (`llm.input-tokens`, `llm.output-tokens`): that report, not the
//! answer, is what the host meters.

pub use crate::__private::bindings::hyyve::plugin::llm::{
    ChatMessage, ChatResponse, EmbedResponse, FinishReason, Role, TokenUsage, ToolCall,
    ToolDefinition,
};
pub use crate::__private::provider_bindings::exports::hyyve::plugin::provider::{
    ChatRequest, EmbedRequest, Model, ModelKind, ProviderError, ProviderInfo, RateLimit,
};

/// An AI provider adapter.
pub trait Provider {
    /// The provider and its models. Must be pure.
    fn describe() -> ProviderInfo;
    /// Complete a chat.
    fn chat(request: ChatRequest) -> Result<ChatResponse, ProviderError>;
    /// Embed texts; unsupported unless implemented.
    fn embed(request: EmbedRequest) -> Result<EmbedResponse, ProviderError> {
        Err(ProviderError::Unsupported(format!(
            "embeddings (model `{}`)",
            request.model
        )))
    }
}

/// Exports the [`Provider`] type as this component's provider.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        #[doc(hidden)]
        pub struct __HyyveProvider;

        impl $crate::__private::ProviderGuest for __HyyveProvider {
            fn describe() -> $crate::provider::ProviderInfo {
                <$provider as $crate::provider::Provider>::describe()
            }
            fn chat(
                request: $crate::provider::ChatRequest,
            ) -> ::std::result::Result<$crate::provider::ChatResponse, $crate::provider::ProviderError>
            {
                <$provider as $crate::provider::Provider>::chat(request)
            }
            fn embed(
                request: $crate::provider::EmbedRequest,
            ) -> ::std::result::Result<$crate::provider::EmbedResponse, $crate::provider::ProviderError>
            {
                <$provider as $crate::provider::Provider>::embed(request)
            }
            fn generate_image(
                _: $crate::__private::ImageRequest,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::__private::Media>, $crate::__private::PluginError>
            {
                ::std::result::Result::Err($crate::__private::not_offered("image generation"))
            }
            fn synthesize_speech(
                _: $crate::__private::SpeechRequest,
            ) -> ::std::result::Result<$crate::__private::Media, $crate::__private::PluginError> {
                ::std::result::Result::Err($crate::__private::not_offered("speech synthesis"))
            }
            fn transcribe(
                _: $crate::__private::TranscriptionRequest,
            ) -> ::std::result::Result<::std::string::String, $crate::__private::PluginError> {
                ::std::result::Result::Err($crate::__private::not_offered("transcription"))
            }
        }

        $crate::__private::export_provider!(__HyyveProvider with_types_in $crate::__private::provider_bindings);
    };
}
