//! The HTTP API: one module per resource, each handler thin over the store, the runtime and
//! the deployer. The OpenAPI document is generated from the handlers' annotations.

pub mod actions;
pub mod billing;
pub mod canary;
mod contract;
pub mod cron;
pub mod databases;
pub mod dependencies;
pub mod deployments;
pub mod functions;
pub mod functions_of;
pub mod images;
pub mod info;
pub mod instances;
pub mod invoices;
pub mod ledger;
pub mod logs;
pub mod metrics;
pub mod problems;
pub mod secrets;
pub mod services;
pub mod tariffs;
pub mod tasks;
pub mod tokens;
pub mod traces;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use tracing::Instrument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, REQUEST_ID};

/// A JSON body whose rejection is a problem document like every other error.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Path parameters whose rejection is a problem document (axum's own is plain text).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// A query string whose rejection is a problem document (axum's own is plain text).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(OpenApi)]
#[openapi(
    info(title = "faas platform API", description = "Services, releases, deployments and images of a faas platform."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(faas_spec::api::Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn routers() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let public = OpenApiRouter::new()
        .routes(routes!(info::info))
        .routes(routes!(info::metrics));
    let v1 = OpenApiRouter::new()
        .routes(routes!(tokens::create_token))
        .routes(routes!(tokens::whoami))
        .routes(routes!(services::list_services, services::create_service))
        .routes(routes!(services::show_service, services::delete_service))
        .routes(routes!(services::list_instances))
        .routes(routes!(instances::restart_instance))
        .routes(routes!(instances::exec_instance))
        .routes(routes!(dependencies::service_address))
        .routes(routes!(traces::show_trace))
        .routes(routes!(functions_of::service_functions))
        .routes(routes!(problems::list_problems))
        .routes(routes!(metrics::service_metrics))
        .routes(routes!(
            deployments::create_deployment,
            deployments::list_deployments
        ))
        .routes(routes!(deployments::show_deployment))
        .routes(routes!(deployments::deployment_events))
        .routes(routes!(deployments::list_releases))
        .routes(routes!(deployments::rollback))
        .routes(routes!(deployments::scale))
        .routes(routes!(canary::canary_status))
        .routes(routes!(canary::promote))
        .routes(routes!(canary::abort))
        .routes(routes!(logs::logs))
        .routes(routes!(
            secrets::set_secrets,
            secrets::list_secrets,
            secrets::unset_secrets
        ))
        .routes(routes!(deployments::delete_environment))
        .routes(routes!(ledger::ledger_write))
        .routes(routes!(ledger::ledger_balances))
        .routes(routes!(ledger::ledger_turnovers))
        .routes(routes!(ledger::ledger_events))
        .routes(routes!(ledger::ledger_export))
        .routes(routes!(tariffs::create_tariff, tariffs::list_tariffs))
        .routes(routes!(tariffs::show_tariff))
        .routes(routes!(tariffs::update_tariff))
        .routes(routes!(tariffs::archive_tariff))
        .routes(routes!(tariffs::make_default))
        .routes(routes!(tariffs::assign_tariff, tariffs::tenant_tariff))
        .routes(routes!(billing::billing_show))
        .routes(routes!(invoices::close_invoices))
        .routes(routes!(invoices::list_invoices))
        .routes(routes!(invoices::list_notifications))
        .routes(routes!(databases::list_databases))
        .routes(routes!(
            databases::show_database,
            databases::destroy_database
        ))
        .routes(routes!(databases::rotate_database))
        .routes(routes!(databases::backup_database))
        .routes(routes!(databases::connect_database))
        .routes(routes!(functions::run_function))
        .routes(routes!(functions::list_runs))
        .routes(routes!(functions::show_run))
        .routes(routes!(functions::cancel_run))
        .routes(routes!(functions::run_logs))
        .routes(routes!(cron::list_cron))
        .routes(routes!(cron::cron_history))
        .routes(routes!(cron::run_cron))
        .routes(routes!(actions::heartbeat))
        .routes(routes!(actions::list_actions))
        .routes(routes!(actions::claim))
        .routes(routes!(actions::post_result))
        .routes(routes!(tasks::run_task, tasks::list_tasks))
        .routes(routes!(tasks::show_task))
        .routes(routes!(tasks::cancel_task))
        .routes(routes!(tasks::approve_step))
        // Image tarballs and database dumps are as large as the disk allows.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(databases::restore_database))
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        // Image tarballs are as large as the disk allows.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(images::load_images))
                .layer(axum::extract::DefaultBodyLimit::disable()),
        );
    (public, v1)
}

/// The OpenAPI document, as committed in platform-api/openapi.json.
pub fn openapi_json() -> String {
    let (public, v1) = routers();
    let (_, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public)
        .merge(v1)
        .split_for_parts();
    let mut doc = serde_json::to_value(&api).unwrap_or_default();
    contract::complete(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// The whole API over the platform's state.
pub fn app(state: AppState) -> Router {
    let (public, v1) = routers();
    let v1 = v1.route_layer(middleware::from_fn_with_state(
        state.clone(),
        crate::auth::require_token,
    ));
    let document = openapi_json();
    let (router, _) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public)
        .merge(v1)
        .split_for_parts();
    router
        .merge(crate::dashboard::routes())
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document,
                    )
                }
            }),
        )
        .fallback(|| async {
            ApiError::not_found("not-found", "no such API endpoint")
                .hint("GET /openapi.json lists the endpoints")
        })
        // A handler that panics (a bug, or one in a library) answers a problem document and
        // the daemon goes on; the panic and its request id are in the log.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    axum::response::IntoResponse::into_response(ApiError::internal(format!(
        "the handler panicked: {what}"
    )))
}

/// Gives every request an id (the caller's X-Request-Id, or a new one), puts it in the log's
/// span, in problem documents, and in the response.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let span = tracing::info_span!("api", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request).instrument(span))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
