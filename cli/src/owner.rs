//! Who owns a new service when `--owner` is not given: the identity logged in to the context
//! (`faas login` or `FAAS_TOKEN`), else git's `user.email`.

use std::process::{Command, Stdio};

use faas_spec::api::WhoAmI;
use faas_spec::names;

use crate::client::Client;
use crate::credentials;
use crate::session;

/// The owner to use and where it came from, if anything says.
pub fn default_owner(context: Option<&str>) -> Option<(String, String)> {
    if let Some((tenant, context)) = logged_in(context) {
        return Some((
            tenant,
            format!("the identity logged in to context `{context}`"),
        ));
    }
    git_email().map(|email| (email, "git config user.email".to_owned()))
}

/// The tenant of a token someone gave for the context, when its platform answers now (a
/// platform is never started just to ask).
fn logged_in(context: Option<&str>) -> Option<(String, String)> {
    let context = session::context(context).ok()?;
    let token = credentials::login_token(&context)?;
    let name = context.name.clone();
    let client = Client::new(context, Some(token)).ok()?;
    client.info().ok()?;
    let who: WhoAmI = client.get("/v1/whoami").ok()?;
    names::check_email(&who.tenant).ok()?;
    Some((who.tenant, name))
}

fn git_email() -> Option<String> {
    let out = Command::new("git")
        .args(["config", "--get", "user.email"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let email = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    names::check_email(&email).ok().map(|_| email)
}
