//! A local server is still a door: the checks every request passes.
//!
//! - **Host.** A web page on another site can make the browser send requests to
//!   `127.0.0.1` through a hostname it controls (DNS rebinding); the `Host`
//!   header then names that site. Unless Workly was exposed on purpose (which
//!   needs an API key), only loopback names and addresses are answered.
//! - **Origin.** Browsers name the page that sent a request. Pages from other
//!   origins than loopback ones (or this server) are refused, WebSocket
//!   upgrades and CORS pre-flights included, so a site cannot drive Kira.
//! - **API key.** Binding to a non-loopback address needs `--api-key`; then
//!   every API request must carry it as a Bearer token (a browser's
//!   WebSocket, which cannot, offers it as a subprotocol instead).

use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// The server was asked to listen where it must not.
#[derive(Debug, thiserror::Error)]
#[error("refusing to listen on {host} without --api-key: only loopback addresses may be left open")]
pub struct ExposedWithoutKey {
    /// The address asked for.
    pub host: IpAddr,
}

crate::classed!(BadInput: ExposedWithoutKey);

/// What the checks need to know.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The API key clients must send, if one is set.
    pub api_key: Option<String>,
    /// Whether the server listens beyond loopback (then any `Host` is allowed:
    /// the API key guards it).
    pub exposed: bool,
}

impl Policy {
    /// The policy for listening on `host`; refuses a non-loopback address
    /// without an API key.
    pub fn new(host: IpAddr, api_key: Option<String>) -> Result<Self, ExposedWithoutKey> {
        let exposed = !host.is_loopback();
        let api_key = api_key.filter(|key| !key.is_empty());
        if exposed && api_key.is_none() {
            return Err(ExposedWithoutKey { host });
        }
        Ok(Self { api_key, exposed })
    }
}

/// The host part of a `Host` header or an origin's authority (no port, no
/// brackets), lower-cased.
fn host_name(authority: &str) -> String {
    let authority = authority.trim().to_ascii_lowercase();
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    authority.split(':').next().unwrap_or_default().to_owned()
}

/// Whether `host` (as [`host_name`] gives it) is this machine.
fn is_loopback_name(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a browser `origin` may use the server reached as `host_header`:
/// loopback pages, and the server's own page.
fn origin_allowed(origin: &str, host_header: Option<&str>) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    if scheme != "http" && scheme != "https" {
        return false;
    }
    is_loopback_name(&host_name(authority)) || host_header.is_some_and(|host| host.eq_ignore_ascii_case(authority))
}

/// Compares without stopping at the first difference, so timing does not
/// reveal how much of a guessed key was right.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// The subprotocol that carries the key of a WebSocket opened by a browser
/// (which cannot send an `Authorization` header): `workly-key.` and the key's
/// bytes in hex, so that any key makes a valid protocol token.
const KEY_PROTOCOL: &str = "workly-key.";

fn authorized(headers: &HeaderMap, key: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| same_secret(given.trim().as_bytes(), key.as_bytes()));
    bearer
        || headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|protocol| protocol.trim().strip_prefix(KEY_PROTOCOL))
            .filter_map(|given| hex::decode(given).ok())
            .any(|given| same_secret(&given, key.as_bytes()))
}

/// Paths anyone who passed the host and origin checks may read without the
/// key: the health probe and the page (which asks for the key itself).
fn needs_key(path: &str) -> bool {
    path.starts_with("/v1/") || path == "/metrics"
}

/// The middleware: refuses what the policy forbids, answers CORS pre-flights
/// from allowed origins, and marks allowed cross-origin responses.
pub async fn guard(State(policy): State<Arc<Policy>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).map(str::to_owned);
    if !policy.exposed {
        let name = host.as_deref().map(host_name).unwrap_or_default();
        if !is_loopback_name(&name) {
            return ApiError::forbidden(format!(
                "host {name:?} is not allowed: Workly answers loopback names only (DNS rebinding protection)"
            ))
            .into_response();
        }
    }
    let origin = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()).map(str::to_owned);
    if let Some(origin) = &origin
        && !origin_allowed(origin, host.as_deref())
    {
        return ApiError::forbidden(format!("origin {origin:?} is not allowed to use this Workly")).into_response();
    }
    if request.method() == Method::OPTIONS && origin.is_some() {
        return with_cors(StatusCode::NO_CONTENT.into_response(), origin.as_deref());
    }
    if let Some(key) = &policy.api_key
        && needs_key(request.uri().path())
        && !authorized(headers, key)
    {
        return ApiError::unauthorized().into_response();
    }
    with_cors(next.run(request).await, origin.as_deref())
}

fn with_cors(mut response: Response, origin: Option<&str>) -> Response {
    if let Some(origin) = origin.and_then(|origin| HeaderValue::from_str(origin).ok()) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses() {
        for host in ["localhost:8080", "LOCALHOST", "127.0.0.1:80", "127.9.9.9", "[::1]:8080", "app.localhost"] {
            assert!(is_loopback_name(&host_name(host)), "{host}");
        }
        for host in ["evil.com", "127.0.0.1.evil.com", "192.168.1.2:8080", "[fe80::1]", "", "localhost.evil.com"] {
            assert!(!is_loopback_name(&host_name(host)), "{host}");
        }
    }

    #[test]
    fn origins() {
        assert!(origin_allowed("http://localhost:3000", Some("127.0.0.1:8080")));
        assert!(origin_allowed("http://192.168.1.5:8080", Some("192.168.1.5:8080")));
        assert!(!origin_allowed("https://evil.com", Some("127.0.0.1:8080")));
        assert!(!origin_allowed("null", Some("127.0.0.1:8080")));
        assert!(!origin_allowed("file://localhost", Some("127.0.0.1:8080")));
    }

    #[test]
    fn exposing_needs_a_key() {
        assert!(Policy::new("0.0.0.0".parse().unwrap(), None).is_err());
        assert!(Policy::new("0.0.0.0".parse().unwrap(), Some(String::new())).is_err());
        assert!(Policy::new("0.0.0.0".parse().unwrap(), Some("k".into())).unwrap().exposed);
        assert!(!Policy::new("::1".parse().unwrap(), None).unwrap().exposed);
    }

    #[test]
    fn bearer_keys() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, "secret"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        assert!(authorized(&headers, "secret"));
        assert!(!authorized(&headers, "secreT"));
        assert!(!authorized(&headers, "secret2"));
    }

    #[test]
    fn websocket_keys_come_as_a_hex_subprotocol() {
        let offer = |protocols: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocols));
            headers
        };
        // "sécret" in UTF-8: any key makes a valid token.
        assert!(authorized(&offer("workly, workly-key.73c3a963726574"), "sécret"));
        assert!(!authorized(&offer("workly, workly-key.73c3a9637265"), "sécret"));
        assert!(!authorized(&offer("workly, workly-key.not-hex"), "sécret"));
        assert!(!authorized(&offer("workly"), "sécret"));
    }
}
