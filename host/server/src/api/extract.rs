//! Body and query extractors whose rejections are [`ApiError`]s in the API's JSON error
//! form (axum's own answer plain text).

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON object body: malformed JSON, anything but an object, wrong types and unknown
/// fields are 400 naming the field; a body over the limit is 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::TooLarge(crate::MAX_JSON_BODY));
            }
            Err(rejection) => return Err(ApiError::BadRequest(rejection.body_text())),
        };
        // serde would also read a struct from an array of its fields; an API body is an
        // object or nothing.
        if !value.is_object() {
            return Err(ApiError::BadRequest(
                "invalid type: the body must be a JSON object".into(),
            ));
        }
        let mut value = value;
        if let Some(field) = text_with_nul(&value, String::new()) {
            return Err(nul_refused(&field));
        }
        integral_floats_as_integers(&mut value);
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))
    }
}

/// Query parameters: unknown or malformed ones are 400.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if has_encoded_nul(parts.uri.query().unwrap_or("")) {
            return Err(nul_refused("query"));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// Path parameters: a segment that does not parse (a number out of range, invalid
/// percent-encoding) is 400 in the API's JSON error form.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if has_encoded_nul(parts.uri.path()) {
            return Err(nul_refused("path"));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParams(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// For an optional query value: `?kind=` (empty) is the same as leaving `kind` out.
pub fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::Deserialize as _;
    use serde::de::IntoDeserializer as _;
    match Option::<String>::deserialize(deserializer)?.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => T::deserialize(text.into_deserializer()).map(Some),
    }
}

/// `5.0` is the integer 5 in JSON Schema; serde reads it as a float, which an integer
/// field refuses. Whole floats within i64/u64 become integers before parsing.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64() else { return };
            // 2^63 and 2^64: the first floats past i64 and u64.
            let integer = if f.fract() != 0.0 {
                None
            } else if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                Some(serde_json::Number::from(f as i64))
            } else if (0.0..1.844_674_407_370_955_2e19).contains(&f) {
                Some(serde_json::Number::from(f as u64))
            } else {
                None
            };
            if let Some(integer) = integer {
                *n = integer;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// The JSON Pointer of the first string (value or key) holding U+0000, if any.
fn text_with_nul(value: &serde_json::Value, at: String) -> Option<String> {
    match value {
        serde_json::Value::String(text) => text.contains('\0').then_some(at),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| text_with_nul(item, format!("{at}/{i}"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let here = format!("{at}/{key}");
            match key.contains('\0') {
                true => Some(here),
                false => text_with_nul(item, here),
            }
        }),
        _ => None,
    }
}

fn has_encoded_nul(uri_part: &str) -> bool {
    uri_part.to_ascii_lowercase().contains("%00")
}

/// Text with U+0000 is refused before it reaches a store: PostgreSQL cannot hold it in
/// a text column, and both backends must answer alike.
fn nul_refused(field: &str) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_text".into(),
        message: format!("{field}: text may not contain NUL (U+0000)"),
        details: serde_json::json!({ "field": field }),
    }
}

/// Whether `text` is only what the documented pattern `\S` counts as space: JSON
/// Schema patterns are ECMA-262 regexes, whose `\s` is narrower than Rust's `trim`
/// (U+0085, for one, is a character there).
pub fn blank(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(
            c,
            '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200a}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{202f}'
                    | '\u{205f}'
                    | '\u{3000}'
                    | '\u{feff}'
        )
    })
}
