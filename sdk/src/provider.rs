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

/// The provider error an HTTP failure means: a request the host refused is
/// `unauthorized` (its grant does not cover the URL), a bad URL `invalid-request`, and
/// anything on the way (DNS, connection, TLS, a body cut short) `unavailable`.
pub fn transport_error(e: crate::http::HttpError) -> ProviderError {
    use crate::http::HttpError;
    match e {
        HttpError::Denied => ProviderError::Unauthorized(
            "the host's capability policy refused the request (is the base URL granted?)".into(),
        ),
        HttpError::InvalidUrl(m) => ProviderError::InvalidRequest(m),
        other => ProviderError::Unavailable(other.to_string()),
    }
}

/// The provider error a non-2xx answer means: 401 / 403 `unauthorized`, 429
/// `rate-limited` with its `retry-after`, 408 and 5xx (529 overloaded among them)
/// `unavailable`, any other status `invalid-request`. The message carries the status
/// and the body's `error.message` (the field OpenAI and Anthropic both use), or the
/// body's start.
pub fn status_error(status: u16, headers: &[(String, Vec<u8>)], body: &[u8]) -> ProviderError {
    let detail = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let message = format!("HTTP {status}: {detail}");
    match status {
        401 | 403 => ProviderError::Unauthorized(message),
        429 => ProviderError::RateLimited(RateLimit {
            message,
            retry_after_ms: crate::sse::retry_after_ms(headers),
        }),
        408 | 500..=599 => ProviderError::Unavailable(message),
        _ => ProviderError::InvalidRequest(message),
    }
}

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
