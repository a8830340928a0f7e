//! The engine's HTTP API. Every answer, including actix's own errors, is JSON.

pub mod admin;
pub mod balances;
pub mod dashboard;
pub mod error;
pub mod exchange_events;
pub mod exchange_faults;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod positions;
pub mod prices;
pub mod stream;
pub mod trading;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, Next};
use actix_web::{web, HttpResponse};

use crate::app::AppState;
use crate::error::ErrorBody;
use error::AppError;

/// Mounts every route, with extractor errors turned into the API's JSON errors.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| AppError::InvalidRequest(e.to_string()).into()),
    )
    .app_data(web::PathConfig::default().error_handler(|_, _| AppError::NotFound.into()))
    .configure(ops::routes)
    .configure(admin::routes)
    .configure(orders::routes)
    .configure(balances::routes)
    .configure(positions::routes)
    .configure(trading::routes)
    .configure(exchange_events::routes)
    .configure(stream::routes)
    .configure(prices::routes)
    .configure(exchange_faults::routes)
    .configure(dashboard::routes)
    .configure(openapi::routes);
}

/// Counts every answer by route pattern and status (`orderkeeper_http_requests_total`). A path no
/// route matches counts as "unmatched", so strangers' paths cannot grow the series without end.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        state
            .engine
            .metrics()
            .http_request(route, res.status().as_u16());
    }
    Ok(res)
}

pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// Rewrites any error answer that is not already JSON (actix's 404/405 and the like) as the API's
/// JSON error shape.
pub fn json_errors<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(to_json_error)
}

fn to_json_error<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let body = match AppError::from_status(status) {
        Some(error) => error.body(),
        None => {
            let reason = status.canonical_reason().unwrap_or("error");
            let body = ErrorBody::new(&reason.to_lowercase().replace(' ', "_"), reason);
            serde_json::to_string(&body).unwrap_or_default()
        }
    };
    let (req, _) = res.into_parts();
    let mut response = HttpResponse::build(status);
    response.content_type("application/json");
    if status == actix_web::http::StatusCode::METHOD_NOT_ALLOWED {
        let pattern = req.match_pattern().unwrap_or_default();
        response.insert_header((header::ALLOW, openapi::allowed_methods(&pattern)));
    }
    let response = response.body(body);
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}
