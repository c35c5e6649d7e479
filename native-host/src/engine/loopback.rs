//! The engine's loopback HTTP endpoint on 127.0.0.1.
//!
//! It serves the extension's WebSockets (see [`super::sockets`], which
//! check their own origin and token) and the links from the mail: `GET
//! /confirm/<token>` shows a page with a button, and only the `POST` that
//! button sends confirms, so a link preview or prefetch can never confirm a
//! node by itself. Every request must name this endpoint in its `Host`
//! header (no DNS rebinding), and a `POST` must come from this endpoint's
//! own page (`Origin`), so no web page can drive it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::Engine;
use crate::enroll::Proof;

/// Binds 127.0.0.1, preferring the port used before.
pub async fn bind(preferred: Option<u16>) -> std::io::Result<(TcpListener, u16)> {
    if let Some(port) = preferred {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return Ok((listener, port));
        }
        tracing::warn!(port, "the loopback port is taken; links in older confirmation mails will not work");
    }
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

pub async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    let app = Router::new()
        .route("/confirm/{token}", get(confirm_page).post(confirm))
        .route("/approve/{token}", get(confirm_page).post(approve))
        .route("/remove/{token}", get(confirm_page).post(remove))
        .route("/oauth/callback", get(sign_in_answer))
        .route("/mesh", get(super::sockets::mesh_socket))
        .route("/bulk", get(super::sockets::bulk_socket))
        .route("/call", get(super::calls::call_socket))
        .with_state(engine);
    // Small messages (signaling, chat frames for the data channels) must
    // not wait for Nagle's algorithm to meet the browser's delayed ACKs.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("the loopback endpoint stopped: {e}");
    }
}

/// True if the request is addressed to this endpoint and, when it carries an
/// `Origin`, comes from it.
fn from_here(headers: &HeaderMap, port: u16) -> bool {
    let allowed = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    let host_ok =
        headers.get(header::HOST).and_then(|h| h.to_str().ok()).is_some_and(|h| allowed.iter().any(|a| a == h));
    let origin_ok = match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => allowed.iter().any(|a| origin == format!("http://{a}")),
    };
    host_ok && origin_ok
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:560px;margin:60px auto;padding:0 16px;color:#1d2330}}\
         button{{font:inherit;padding:8px 18px;border-radius:6px;border:0;background:#2756c5;color:#fff;cursor:pointer}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    // Our pages must not be framed by other sites (clickjacking the button).
    response.headers_mut().insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn refused() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Not allowed",
        "<p>This address only answers the mailmesh confirmation link opened on this device.</p>",
    )
}

async fn approve(State(engine): State<Arc<Engine>>, headers: HeaderMap, Path(token): Path<String>) -> Response {
    if !from_here(&headers, engine.loopback_port) {
        return refused();
    }
    match engine.node.confirm_join(&token).await {
        Ok(()) => page(
            StatusCode::OK,
            "Device approved",
            "<p id=\"result\" data-ok=\"true\">Approved. Your other device will welcome this one into your network in a moment.</p>",
        ),
        Err(e) => page(StatusCode::BAD_REQUEST, "Not approved", &format!("<p id=\"result\" data-ok=\"false\">{}</p>", html_escape(&e))),
    }
}

async fn remove(State(engine): State<Arc<Engine>>, headers: HeaderMap, Path(token): Path<String>) -> Response {
    if !from_here(&headers, engine.loopback_port) {
        return refused();
    }
    match engine.node.confirm_removal(Proof::Token(&token)).await {
        Ok(()) => page(StatusCode::OK, "Device removed", "<p id=\"result\" data-ok=\"true\">Removed. Your other devices get a new network key; the removed one gets nothing new.</p>"),
        Err(e) => page(StatusCode::BAD_REQUEST, "Not removed", &format!("<p id=\"result\" data-ok=\"false\">{}</p>", html_escape(&e))),
    }
}

/// What the issuer's answer to a sign-in carries (RFC 6749 4.1.2).
#[derive(serde::Deserialize)]
struct SignInAnswer {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The browser comes back from the issuer: the sign-in is finished, the
/// account set up, and the page says how it went. Only an answer with the
/// `state` of a sign-in this engine started is taken.
async fn sign_in_answer(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    axum::extract::Query(answer): axum::extract::Query<SignInAnswer>,
) -> Response {
    if !from_here(&headers, engine.loopback_port) {
        return refused();
    }
    let outcome = match answer {
        SignInAnswer { error: Some(error), error_description, .. } => {
            Err(format!("the sign-in was refused: {}", error_description.unwrap_or(error)))
        }
        SignInAnswer { code: Some(code), state: Some(state), .. } => engine.node.finish_sign_in(&state, code).await,
        _ => Err("this is not an answer to a sign-in".into()),
    };
    match outcome {
        Ok(view) => page(
            StatusCode::OK,
            "Signed in",
            &format!(
                "<p id=\"result\" data-ok=\"true\">Signed in as {}. {}</p><p>You can close this tab.</p>",
                html_escape(view.email.as_deref().unwrap_or("")),
                if view.state == "awaiting_approval" {
                    "This device asked to join your network: approve it on one of your devices."
                } else {
                    "A confirmation mail is on its way to you."
                }
            ),
        ),
        Err(e) => {
            tracing::warn!("sign-in not finished: {e}");
            page(
                StatusCode::BAD_REQUEST,
                "Not signed in",
                &format!("<p id=\"result\" data-ok=\"false\">{}</p>", html_escape(&e)),
            )
        }
    }
}

async fn confirm_page(State(engine): State<Arc<Engine>>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if !from_here(&headers, engine.loopback_port) {
        return refused();
    }
    let device = engine.node.read(|state| state.config.device_name.clone()).await;
    let fingerprint = engine.secrets.node_id().fingerprint();
    let action = html_escape(uri.path());
    page(
        StatusCode::OK,
        "Confirm this device",
        &format!(
            "<p>Confirm that <b>{}</b> (fingerprint <code>{fingerprint}</code>) is your device and may join your mailmesh network.</p>\
             <form method=\"post\" action=\"{action}\"><button id=\"confirm\" type=\"submit\">Confirm this device</button></form>",
            html_escape(&device)
        ),
    )
}

async fn confirm(State(engine): State<Arc<Engine>>, headers: HeaderMap, Path(token): Path<String>) -> Response {
    if !from_here(&headers, engine.loopback_port) {
        return refused();
    }
    match engine.node.confirm(Proof::Token(&token)).await {
        Ok(view) => page(
            StatusCode::OK,
            "Device confirmed",
            &format!(
                "<p id=\"result\" data-ok=\"true\">This device is confirmed. Network <code>{}</code>.</p><p>You can close this tab.</p>",
                html_escape(view.network_id.as_deref().unwrap_or(""))
            ),
        ),
        Err(e) => {
            tracing::warn!("confirmation by link refused: {e}");
            page(
                StatusCode::BAD_REQUEST,
                "Not confirmed",
                &format!("<p id=\"result\" data-ok=\"false\">{}</p>", html_escape(&e.to_string())),
            )
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
