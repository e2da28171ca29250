//! `faas platform start|stop|status`: the local platform.

use serde_json::json;

use crate::client::Client;
use crate::config::{Config, LOCAL};
use crate::error::CliResult;
use crate::local::Local;
use crate::printer::Printer;

pub fn start(printer: &Printer, args: crate::cli::PlatformStartArgs) -> CliResult {
    let local = Local::new();
    let started = match args.runtime {
        None => local.start()?,
        Some(runtime) => {
            let mut flags = vec!["--runtime".to_owned(), runtime];
            if let Some(path) = args.kubeconfig {
                let path = std::path::absolute(&path).unwrap_or(path);
                flags.extend(["--kubeconfig".to_owned(), path.display().to_string()]);
            }
            if let Some(context) = args.kube_context {
                flags.extend(["--context".to_owned(), context]);
            }
            if let Some(ns) = args.namespace {
                flags.extend(["--namespace".to_owned(), ns]);
            }
            if local.answers() {
                printer.warn(
                    "the local platform runs already: `faas platform stop` first to change its runtime",
                );
            }
            local.start_with_args(flags)?
        }
    };
    if started {
        printer.status(
            "Started",
            format!(
                "the local platform at {} (router {})",
                local.url(),
                local.router
            ),
        );
    } else {
        printer.info(format!(
            "the local platform is running already at {}",
            local.url()
        ));
    }
    Ok(())
}

pub fn stop(printer: &Printer) -> CliResult {
    let local = Local::new();
    if local.stop()? {
        printer.status(
            "Stopped",
            "the local platform; its services' containers keep running",
        );
    } else {
        printer.info("the local platform is not running");
    }
    Ok(())
}

pub fn status(printer: &Printer, json: bool) -> CliResult {
    let local = Local::new();
    let context = Config::load()?.resolve(Some(LOCAL))?;
    let info = if local.answers() {
        Client::new(context, None)?.info().ok()
    } else {
        None
    };
    let running = info.is_some();
    if json {
        printer.json(&json!({
            "running": running,
            "pid": local.pid(),
            "api": local.url(),
            "router": format!("http://{}", local.router),
            "data_dir": local.data_dir,
            "log": local.log_file(),
            "info": info,
        }));
        return Ok(());
    }
    match info {
        Some(info) => {
            printer.result(format!(
                "running     yes (pid {})",
                local.pid().map_or("?".into(), |p| p.to_string())
            ));
            printer.result(format!("api         {}", local.url()));
            printer.result(format!(
                "router      http://{} (services at http://<name>.{}:{})",
                info.router,
                info.domain,
                info.router.rsplit(':').next().unwrap_or("")
            ));
            printer.result(format!("data        {}", local.data_dir.display()));
            printer.result(format!("log         {}", local.log_file().display()));
            printer.result(format!(
                "docker      {}",
                if info.docker.available {
                    format!("Docker Engine {}", info.docker.version.unwrap_or_default())
                } else {
                    format!("not answering: {}", info.docker.error.unwrap_or_default())
                }
            ));
            printer.result(format!("version     {}", info.version));
        }
        None => {
            printer.result("running     no");
            printer.result(format!("api         {} (when started)", local.url()));
            printer.result(format!("data        {}", local.data_dir.display()));
            printer.info("start it with `faas platform start` (commands aimed at the local context start it by themselves)");
        }
    }
    Ok(())
}
