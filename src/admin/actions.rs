//! The admin actions listener (`admin.actions_listen`, loopback, off unless
//! `admin.actions_enabled`), behind the admin server's TLS, credentials and
//! limits (`admin.tls`, `admin.auth`, `admin.limits`; counted as listener
//! `actions`): `POST /-/reload` reloads the configuration and
//! answers 200 with what changed, 400 when the new file is rejected (the
//! running configuration is kept) or 500 when applying it failed.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::listener::{self, Guard};
use crate::reload::{ReloadError, ReloadHandle};

/// Serves the actions on `listener` behind `guard` (the admin server's TLS,
/// credentials and limits) until `stop`.
pub async fn serve(
    listener: TcpListener,
    guard: Arc<Guard>,
    reload: ReloadHandle,
    stop: CancellationToken,
) {
    let handler = {
        let guard = guard.clone();
        move |request: Request<Incoming>| {
            let (guard, reload) = (guard.clone(), reload.clone());
            async move {
                match guard.authorize(&request) {
                    Some(refused) => refused,
                    None => route(&reload, &request).await,
                }
            }
        }
    };
    listener::serve(listener, guard, handler, stop).await;
}

async fn route(reload: &ReloadHandle, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/-/reload" {
        return json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not found"}),
        );
    }
    if request.method() != Method::POST {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "POST")
            .body(Full::new(Bytes::from_static(b"method not allowed\n")))
            .unwrap_or_default();
    }
    match reload.reload("http").await {
        Ok(report) => json(
            StatusCode::OK,
            &serde_json::json!({"reloaded": true, "changed": report.changed, "rebuilt": report.rebuilt}),
        ),
        Err(error) => {
            let status = match error {
                ReloadError::Rejected(_) => StatusCode::BAD_REQUEST,
                ReloadError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
                ReloadError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            };
            json(
                status,
                &serde_json::json!({"reloaded": false, "error": error.to_string()}),
            )
        }
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut text = body.to_string();
    text.push('\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_default()
}
