//! The HTTP side: AWS JSON 1.0 (`POST /`, `X-Amz-Target: AWSStepFunctions.<Operation>`,
//! `application/x-amz-json-1.0`), each request handed to the [`Engine`], each error
//! answered as AWS does (`{"__type": …, "message": …}`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::engine::{ApiError, Engine};
use crate::http::Server;

/// The endpoint, served on its port until dropped.
pub struct Endpoint {
    server: Server,
}

impl Endpoint {
    /// Serves `engine` on `addr` (port 0: a free one).
    pub async fn bind(engine: Arc<Engine>, addr: SocketAddr) -> std::io::Result<Self> {
        Self::serve(engine, tokio::net::TcpListener::bind(addr).await?)
    }

    /// Serves `engine` on `listener`, bound already (so that its URL could be given to
    /// the functions before the engine was made).
    pub fn serve(engine: Arc<Engine>, listener: tokio::net::TcpListener) -> std::io::Result<Self> {
        Ok(Self {
            server: Server::serve(listener, engine, route)?,
        })
    }

    /// The endpoint URL, as `AWS_ENDPOINT_URL_SFN` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }
}

fn reply(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    r
}

fn error(e: &ApiError) -> Response<Full<Bytes>> {
    reply(e.status, &json!({"__type": e.kind, "message": e.message}))
}

async fn route(
    req: Request<Incoming>,
    engine: Arc<Engine>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match answer(req, &engine).await {
        Ok(v) => reply(200, &v),
        Err(e) => {
            if e.status >= 500 {
                tracing::warn!("states endpoint: {}: {}", e.kind, e.message);
            }
            error(&e)
        }
    })
}

async fn answer(req: Request<Incoming>, engine: &Arc<Engine>) -> Result<Value, ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError::new(
            "UnknownOperationException",
            "AWS JSON 1.0: POST / with X-Amz-Target",
        ));
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Some(op) = target.strip_prefix("AWSStepFunctions.") else {
        return Err(ApiError::new(
            "UnknownOperationException",
            format!("X-Amz-Target {target:?}: expected AWSStepFunctions.<Operation>"),
        ));
    };
    let bytes = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::new("SerializationException", e.to_string()))?
        .to_bytes();
    let body: Value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                "SerializationException",
                format!("the body is not JSON: {e}"),
            )
        })?
    };
    if !body.is_object() {
        return Err(ApiError::new(
            "SerializationException",
            "the body is not a JSON object",
        ));
    }
    engine.call(op, &body).await
}
