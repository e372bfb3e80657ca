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
