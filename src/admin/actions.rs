//! The admin actions listener (`admin.actions_listen`, loopback, off unless
//! `admin.actions_enabled`): `POST /-/reload` reloads the configuration and
//! answers 200 with what changed, 400 when the new file is rejected (the
//! running configuration is kept) or 500 when applying it failed.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept;
use crate::reload::{ReloadError, ReloadHandle};

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the actions on `listener` until `stop`.
pub async fn serve(listener: TcpListener, reload: ReloadHandle, stop: CancellationToken) {
    while let Some((stream, peer)) = accept::next_or_stop(&listener, &stop, "admin actions").await {
        let reload = reload.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let reload = reload.clone();
            async move { Ok::<_, Infallible>(route(&reload, &request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = connection => if let Err(error) = result {
                    tracing::debug!(%error, %peer, "admin actions connection ended with an error");
                },
                () = stop.cancelled() => {}
            }
        });
    }
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
