//! Errors as OpenAI clients expect them: an HTTP status and
//! `{"error": {"message", "type", "param", "code"}}`.

use crate::llm::LlmError;
use crate::llm::remote::RemoteError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error response in OpenAI's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// One line saying what is wrong.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, `server_error`, ...).
    pub kind: &'static str,
    /// The request field at fault, if one is.
    pub param: Option<&'static str>,
    /// A machine-readable code (`context_length_exceeded`, ...).
    pub code: Option<&'static str>,
    /// Seconds after which a retry may succeed (sent as `Retry-After`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind, param: None, code: None, retry_after: None }
    }

    /// 400: the request is malformed or asks for something impossible.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 blaming one request field.
    pub fn invalid_param(param: &'static str, message: impl Into<String>) -> Self {
        Self { param: Some(param), ..Self::invalid(message) }
    }

    /// The request's body, or the error for one that could not be read
    /// (too large, cut short), with the status axum gives it.
    pub fn read_body(
        body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    ) -> Result<axum::body::Bytes, Self> {
        body.map_err(|rejection| Self {
            status: rejection.status(),
            ..Self::invalid(format!("cannot read the request body: {}", rejection.body_text()))
        })
    }

    /// 401: a missing or wrong API key.
    pub fn unauthorized() -> Self {
        Self {
            code: Some("invalid_api_key"),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "a valid API key is required (Authorization: Bearer KEY)",
            )
        }
    }

    /// 403: refused by the local-server protections.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "invalid_request_error", message)
    }

    /// 404: no such endpoint.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    /// 503 with `Retry-After`: loading, or too many requests waiting.
    pub fn unavailable(message: impl Into<String>, retry_after: u32) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message) }
    }

    /// 500: Workly itself failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The JSON body, also used for an error in the middle of a stream.
    pub fn body(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: Option<&'a str>,
        }
        serde_json::json!({ "error": Inner { message: &self.message, kind: self.kind, param: self.param, code: self.code } })
    }
}

impl From<LlmError> for ApiError {
    fn from(error: LlmError) -> Self {
        match error {
            LlmError::PromptTooLong { .. } => Self {
                param: Some("messages"),
                code: Some("context_length_exceeded"),
                ..Self::invalid(error.to_string())
            },
            LlmError::Template(_) | LlmError::EmptyPrompt => Self::invalid_param("messages", error.to_string()),
            LlmError::Sampling(_) | LlmError::LocalOnly(_) => Self::invalid(error.to_string()),
            // Workly stands in front of the remote back-end: its failures
            // are a gateway's (504 when it went silent, 502 otherwise).
            LlmError::Remote(remote) => {
                let status = match remote {
                    RemoteError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                };
                Self { code: Some(remote.kind()), ..Self::new(status, "server_error", remote.to_string()) }
            }
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<crate::chat::turn::TurnError> for ApiError {
    fn from(error: crate::chat::turn::TurnError) -> Self {
        match error {
            crate::chat::turn::TurnError::Llm(error) => error.into(),
            other => Self::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openais_shape() {
        let error = ApiError::invalid_param("temperature", "too hot");
        assert_eq!(
            error.body(),
            serde_json::json!({"error": {"message": "too hot", "type": "invalid_request_error", "param": "temperature", "code": null}})
        );
    }

    #[test]
    fn engine_errors_map_to_statuses() {
        let long = ApiError::from(LlmError::PromptTooLong { prompt_tokens: 9000, context_size: 8192 });
        assert_eq!((long.status, long.code), (StatusCode::BAD_REQUEST, Some("context_length_exceeded")));
        assert_eq!(ApiError::from(LlmError::Stopped).status, StatusCode::INTERNAL_SERVER_ERROR);
        let silent = RemoteError::Timeout { url: "http://gpu-box:8080/v1".into(), seconds: 120 };
        let gateway = ApiError::from(LlmError::Remote(silent));
        assert_eq!((gateway.status, gateway.code), (StatusCode::GATEWAY_TIMEOUT, Some("timeout")));
        assert!(gateway.message.contains("gpu-box"), "{}", gateway.message);
        let refused = RemoteError::Key { url: String::new(), status: 401 };
        assert_eq!(ApiError::from(LlmError::Remote(refused)).status, StatusCode::BAD_GATEWAY);
        let busy = ApiError::unavailable("busy", 1).into_response();
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
    }
}
